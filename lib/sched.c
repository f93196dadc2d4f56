/* placeholder: implemented in its own issue */
#include "net_internal.h"
