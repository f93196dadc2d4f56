/*
 * libmominit: train deep and recurrent networks with sparse / echo-state initialization and
 * momentum (classical and Nesterov), as in Sutskever, Martens, Dahl & Hinton (ICML 2013).
 * Umbrella header: includes every public module header. Each also compiles on its own.
 */
#ifndef MOMINIT_MOMINIT_H
#define MOMINIT_MOMINIT_H

#include "mominit/common.h"
#include "mominit/rng.h"
#include "mominit/net.h"
#include "mominit/init.h"
#include "mominit/sched.h"
#include "mominit/optim.h"
#include "mominit/ckpt.h"

#endif
