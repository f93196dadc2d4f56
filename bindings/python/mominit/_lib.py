"""Loading libmominit and declaring the C prototypes (ctypes; nothing is compiled).

Where the library comes from, in order:
  1. the environment variable MOMINIT_LIBRARY (a path to libmominit.so.0 or any file name the
     dynamic loader accepts); if it is set, nothing else is tried;
  2. MESON_BUILD_ROOT/lib/libmominit.so.0 when MESON_BUILD_ROOT is set (meson run targets;
     ``meson devenv`` sets MOMINIT_LIBRARY itself, see bindings/python/meson.build);
  3. ctypes.util.find_library("mominit"), then the standard loader with "libmominit.so.0"
     (LD_LIBRARY_PATH, the ld.so cache, the default directories).
"""
import ctypes
import ctypes.util
import os

from ctypes import (POINTER, c_char_p, c_double, c_float, c_int, c_size_t, c_uint32, c_uint64,
                    c_void_p)

SONAME = "libmominit.so.0"
#: The library version the binding was written for; older libraries are refused.
MIN_VERSION_NUMBER = 600  # 0.6.0: the NAG look-ahead form (checkpoint user data is from 0.5.0)
ABI_MAJOR = 0


class mom_allocator(ctypes.Structure):
    """struct mom_allocator (frozen)."""
    _fields_ = [
        ("alloc", ctypes.CFUNCTYPE(c_void_p, c_void_p, c_size_t)),
        ("realloc", ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_size_t)),
        ("free", ctypes.CFUNCTYPE(None, c_void_p, c_void_p)),
        ("user", c_void_p),
    ]


ALLOC_FN = mom_allocator._fields_[0][1]
REALLOC_FN = mom_allocator._fields_[1][1]
FREE_FN = mom_allocator._fields_[2][1]


class mom_batch(ctypes.Structure):
    """struct mom_batch (frozen). Array members are plain addresses."""
    _fields_ = [
        ("n", c_size_t),
        ("steps", c_size_t),
        ("inputs", c_void_p),
        ("targets", c_void_p),
        ("mask", c_void_p),
        ("lengths", c_void_p),
    ]


#: mom_sched_fn: double (*)(uint64_t t, void *user_data)
SCHED_FN = ctypes.CFUNCTYPE(c_double, c_uint64, c_void_p)
REDUCE_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_size_t, c_int, c_int, c_void_p)
#: mom_ckpt_write_fn: int (*)(const void *data, size_t size, void *user_data)
CKPT_WRITE_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_size_t, c_void_p)
#: mom_ckpt_read_fn: int (*)(void *buf, size_t size, size_t *got, void *user_data)
CKPT_READ_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_size_t, POINTER(c_size_t), c_void_p)

_h = c_void_p          # any opaque handle
_p = c_void_p          # any array (address of the first element)
_pd = POINTER(c_double)
_pz = POINTER(c_size_t)
_pi = POINTER(c_int)
_pa = POINTER(mom_allocator)
_pb = POINTER(mom_batch)
_pp = POINTER(c_void_p)

# name: (restype, argtypes)
PROTOTYPES = {
    # common.h
    "mom_strerror": (c_char_p, [c_int]),
    "mom_status_name": (c_char_p, [c_int]),
    "mom_version_number": (ctypes.c_uint, []),
    "mom_version_string": (c_char_p, []),
    # rng.h
    "mom_rng_create": (c_int, [_pp, c_uint64, c_uint64, _pa]),
    "mom_rng_destroy": (None, [_h]),
    "mom_rng_errmsg": (c_char_p, [_h]),
    "mom_rng_reseed": (None, [_h, c_uint64, c_uint64]),
    "mom_rng_u32": (c_uint32, [_h]),
    "mom_rng_u64": (c_uint64, [_h]),
    "mom_rng_below": (c_uint64, [_h, c_uint64]),
    "mom_rng_uniform": (c_double, [_h]),
    "mom_rng_uniformf": (c_float, [_h]),
    "mom_rng_normal": (c_double, [_h]),
    "mom_rng_fill_normal": (c_int, [_h, _p, c_size_t, c_double, c_double]),
    "mom_rng_fill_uniform": (c_int, [_h, _p, c_size_t, c_double, c_double]),
    "mom_rng_sample": (c_int, [_h, _p, c_size_t, c_size_t]),
    "mom_rng_get_state": (None, [_h, _p]),
    "mom_rng_set_state": (c_int, [_h, _p]),
    # net.h
    "mom_net_create_ff": (c_int, [_pp, c_size_t, _p, _p, c_int, _pa]),
    "mom_net_create_rnn": (c_int, [_pp, c_size_t, c_size_t, c_size_t, c_int, c_int, c_uint32,
                                   _pa]),
    "mom_net_destroy": (None, [_h]),
    "mom_net_errmsg": (c_char_p, [_h]),
    "mom_net_kind_of": (c_int, [_h]),
    "mom_net_num_params": (c_size_t, [_h]),
    "mom_net_num_inputs": (c_size_t, [_h]),
    "mom_net_num_outputs": (c_size_t, [_h]),
    "mom_net_output": (c_int, [_h]),
    "mom_net_num_layers": (c_size_t, [_h]),
    "mom_net_layer_size": (c_size_t, [_h, c_size_t]),
    "mom_net_layer_act": (c_int, [_h, c_size_t]),
    "mom_net_params": (c_void_p, [_h]),
    "mom_net_num_blocks": (c_size_t, [_h]),
    "mom_net_block": (c_int, [_h, c_size_t, _pi, _pz, _pz, _pz, _pz]),
    "mom_net_find_block": (c_int, [_pz, _h, c_int, c_size_t]),
    "mom_net_set": (c_int, [_h, c_int, c_double]),
    "mom_net_get": (c_int, [_pd, _h, c_int]),
    "mom_net_reserve": (c_int, [_h, c_size_t, c_size_t]),
    "mom_net_workspace_bytes": (c_size_t, [_h]),
    "mom_net_loss": (c_int, [_pd, _h, _pb, _p]),
    "mom_net_loss_grad": (c_int, [_pd, _p, _h, _pb, _p]),
    "mom_net_fisher_diag": (c_int, [_p, _h, _pb, _p]),
    "mom_net_gv_begin": (c_int, [_h, _pb, _p]),
    "mom_net_gv": (c_int, [_p, _h, _p, c_double]),
    "mom_net_forward": (c_int, [_p, _h, _pb, _p, c_size_t]),
    "mom_net_metric": (c_int, [_pd, _h, _pb, _p, c_int, c_double]),
    "mom_net_check_grad": (c_int, [_pd, _h, _pb, c_size_t, c_double]),
    "mom_net_check_gv": (c_int, [_pd, _h, _pb, c_size_t, c_uint64]),
    # init.h
    "mom_init_create": (c_int, [_pp, c_int, _pa]),
    "mom_init_destroy": (None, [_h]),
    "mom_init_errmsg": (c_char_p, [_h]),
    "mom_init_set": (c_int, [_h, c_int, c_double]),
    "mom_init_get": (c_int, [_pd, _h, c_int]),
    "mom_init_apply": (c_int, [_h, _h, _h]),
    "mom_init_apply_block": (c_int, [_h, _h, c_size_t, _h]),
    "mom_init_output_bias": (c_int, [_h, _pb]),
    "mom_init_preset_ff": (c_int, [_h, c_uint64]),
    "mom_init_preset_rnn": (c_int, [_h, c_double, c_uint64, _pb]),
    "mom_spectral_radius": (c_int, [_pd, _p, c_size_t, _pa]),
    # sched.h
    "mom_sched_create_const": (c_int, [_pp, c_double, _pa]),
    "mom_sched_create_paper_momentum": (c_int, [_pp, c_double, c_uint64, _pa]),
    "mom_sched_create_piecewise": (c_int, [_pp, c_size_t, _p, _p, _pa]),
    "mom_sched_create_final_phase": (c_int, [_pp, _h, c_uint64, c_uint64, c_double, c_int, _pa]),
    "mom_sched_create_anneal": (c_int, [_pp, c_double, c_double, c_double, _pa]),
    "mom_sched_create_callback": (c_int, [_pp, SCHED_FN, c_void_p, _pa]),
    "mom_sched_destroy": (None, [_h]),
    "mom_sched_value": (c_double, [_h, c_uint64]),
    "mom_sched_kind_of": (c_int, [_h]),
    # optim.h
    "mom_optim_create": (c_int, [_pp, c_int, c_size_t, _pa]),
    "mom_optim_destroy": (None, [_h]),
    "mom_optim_errmsg": (c_char_p, [_h]),
    "mom_optim_kind_of": (c_int, [_h]),
    "mom_optim_set_lr": (c_int, [_h, _h]),
    "mom_optim_set_momentum": (c_int, [_h, _h]),
    "mom_optim_set_cg_decay": (c_int, [_h, _h]),
    "mom_optim_set": (c_int, [_h, c_int, c_double]),
    "mom_optim_get": (c_int, [_pd, _h, c_int]),
    "mom_optim_begin": (c_int, [_pp, _h, _p]),
    "mom_optim_end": (c_int, [_h, _p, c_double, _p]),
    "mom_optim_cancel": (c_int, [_h]),
    "mom_optim_step_net": (c_int, [_pd, _h, _h, _pb]),
    "mom_optim_step_hf": (c_int, [_pd, _h, _h, _pb, _pb]),
    "mom_optim_steps": (c_uint64, [_h]),
    "mom_optim_momentum": (c_double, [_h]),
    "mom_optim_lr": (c_double, [_h]),
    "mom_optim_velocity": (c_void_p, [_h]),
    "mom_optim_num_params": (c_size_t, [_h]),
    "mom_optim_reset": (c_int, [_h]),
    "mom_optim_set_reduce": (c_int, [_h, REDUCE_FN, c_void_p]),
    "mom_optim_set_lookahead": (c_int, [_h, _p, c_int]),
    "mom_optim_get_theta": (c_int, [_p, _h, _p]),
    # ckpt.h
    "mom_ckpt_create": (c_int, [_pp, _pa]),
    "mom_ckpt_destroy": (None, [_h]),
    "mom_ckpt_errmsg": (c_char_p, [_h]),
    "mom_ckpt_format_version": (c_uint32, []),
    "mom_ckpt_capture": (c_int, [_h, _h, _h, _pp, c_size_t]),
    "mom_ckpt_size": (c_size_t, [_h]),
    "mom_ckpt_save_file": (c_int, [_h, c_char_p]),
    "mom_ckpt_save_buffer": (c_int, [_p, c_size_t, _h]),
    "mom_ckpt_save_stream": (c_int, [_h, CKPT_WRITE_FN, c_void_p]),
    "mom_ckpt_load_file": (c_int, [_h, c_char_p]),
    "mom_ckpt_load_buffer": (c_int, [_h, _p, c_size_t]),
    "mom_ckpt_load_stream": (c_int, [_h, CKPT_READ_FN, c_void_p]),
    "mom_ckpt_net_kind": (c_int, [_h]),
    "mom_ckpt_optim_kind": (c_int, [_h]),
    "mom_ckpt_num_params": (c_size_t, [_h]),
    "mom_ckpt_num_rngs": (c_size_t, [_h]),
    "mom_ckpt_restore_new": (c_int, [_pp, _pp, _pp, c_size_t, _h]),
    "mom_ckpt_restore": (c_int, [_h, _h, _h, _pp, c_size_t]),
    "mom_ckpt_set_user_data": (c_int, [_h, _p, c_size_t]),
    "mom_ckpt_user_data": (c_int, [_pp, _pz, _h]),
}


def _try_load(path):
    return ctypes.CDLL(path)


def _load():
    env = os.environ.get("MOMINIT_LIBRARY")
    if env:
        try:
            return _try_load(env), env
        except OSError as e:
            raise ImportError(f"mominit: cannot load the library named by MOMINIT_LIBRARY={env!r}: "
                              f"{e}") from e
    tried = []
    root = os.environ.get("MESON_BUILD_ROOT")
    if root:
        path = os.path.join(root, "lib", SONAME)
        if os.path.exists(path):
            return _try_load(path), path
        tried.append(path)
    names = []
    found = ctypes.util.find_library("mominit")
    if found:
        names.append(found)
    names.append(SONAME)
    errors = []
    for name in names:
        try:
            return _try_load(name), name
        except OSError as e:
            tried.append(name)
            errors.append(str(e))
    raise ImportError("mominit: libmominit was not found (tried: " + ", ".join(tried) + "). "
                      "Set MOMINIT_LIBRARY to the path of libmominit.so.0, install the library, "
                      "or add its directory to LD_LIBRARY_PATH. Last error: "
                      + (errors[-1] if errors else "none"))


lib, path = _load()

_missing = []
for _name, (_res, _args) in PROTOTYPES.items():
    try:
        _fn = getattr(lib, _name)
    except AttributeError:
        _missing.append(_name)
        continue
    _fn.restype = _res
    _fn.argtypes = _args
if _missing:
    raise ImportError(f"mominit: {path} lacks symbols the binding needs: {', '.join(_missing)} "
                      "(a library older than the binding?)")

version_number = int(lib.mom_version_number())
version_string = lib.mom_version_string().decode()
if version_number < MIN_VERSION_NUMBER or version_number // 10000 != ABI_MAJOR:
    raise ImportError(f"mominit: {path} is version {version_string}; this binding needs "
                      f"{ABI_MAJOR}.x with x >= {MIN_VERSION_NUMBER // 100 % 100}")
