"""Shared by the PyTorch benchmark scripts: get an interpreter that can import torch.

Debian's python3-torch loads only in Debian's own /usr/bin/python3, which may not be the first
python3 on PATH. require_torch() imports torch here if it can; otherwise it re-executes the calling
script under another interpreter that can (MOM_TORCH_PYTHON, /usr/bin/python3, python3 on PATH,
/usr/local/bin/python3), or exits with status 77 (meson's "skipped") and a message saying why.
"""
import os
import shutil
import subprocess
import sys

SKIP = 77


def find_torch_python():
    """Return (path of another interpreter that can import torch or None, list tried)."""
    here = os.path.realpath(sys.executable) if sys.executable else ""
    seen = set()
    tried = []
    for cand in (os.environ.get("MOM_TORCH_PYTHON"), "/usr/bin/python3",
                 shutil.which("python3"), "/usr/local/bin/python3"):
        if not cand or not os.path.exists(cand):
            continue
        real = os.path.realpath(cand)
        if real == here or real in seen:
            continue
        seen.add(real)
        tried.append(cand)
        try:
            ok = subprocess.run([cand, "-c", "import torch"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=120).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return cand, tried
    return None, tried


def require_torch(script):
    """Return the torch module, re-executing `script` (with the same arguments) under an
    interpreter that has it, or exit with status 77."""
    try:
        import torch
        return torch
    except ImportError:
        pass
    if os.environ.get("MOM_TORCH_REEXEC"):
        print("SKIP: the interpreter found cannot import torch after all", flush=True)
        sys.exit(SKIP)
    py, tried = find_torch_python()
    if py is None:
        print("SKIP: no Python interpreter with PyTorch found (this one: %s; also tried: %s). "
              "On Debian: apt-get install python3-torch (it loads in /usr/bin/python3), or set "
              "MOM_TORCH_PYTHON." % (sys.executable, ", ".join(tried) or "none"), flush=True)
        sys.exit(SKIP)
    os.environ["MOM_TORCH_REEXEC"] = "1"
    os.execv(py, [py, os.path.abspath(script)] + sys.argv[1:])
