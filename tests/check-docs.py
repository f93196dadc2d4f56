#!/usr/bin/env python3
"""Compile and run the complete programs of the documentation (the 'docs' suite).

Which blocks are programs
  The documents are README.md, docs/*.md and bindings/python/README.md (or the files given on
  the command line). In them:
  - a fenced block whose language (info string) is c, cpp, c++ or cxx and that contains `int main(`
    is a complete program. It is compiled with the build's compiler, `-std=c11` (C++:
    `-std=c++11`) `-Wall -Wextra -Werror`, against the build tree's headers, linked with the
    build's shared library and -lm, and run in an empty temporary directory with a time limit
    (--timeout, 60 s). It passes if the compiler prints nothing and succeeds and the program
    exits with status 0;
  - a ```python block with a line `import mominit...` or `from mominit import ...` is a complete
    Python program. It is run like the python suite runs its tests (MOMINIT_LIBRARY set to the
    build's shared library, PYTHONPATH to bindings/python) by an interpreter that can import
    numpy (this one, /usr/bin/python3 or the python3 on PATH), in an empty temporary directory
    with a time limit of its own (--py-timeout, 300 s: the README's addition run takes 30 s on
    an idle machine, and a good deal more on a loaded one); skipped when there is no such
    interpreter, and in sanitizer builds;
  - every other block (declarations, fragments, shell sessions, output) is not a test.
  In a sanitizer build (--sanitize) the programs are compiled with the same -fsanitize= and their
  time limit is 4 times longer.
  To keep a block that looks complete from being run, put the HTML comment
      <!-- no-test -->
  on the last non-blank line before its opening fence. The comment does not show in rendered
  Markdown; the block is reported as skipped.

Output
  TAP, one test per program, named by the document and the line of the opening fence
  (`ok 3 - docs/optim.md:66`). A failure carries the command and the compiler's or the program's
  output as TAP comments.

Usage
  check-docs.py --root SRCDIR --include DIR [--include DIR]... --lib LIBRARY.so --cc=CMD...
                [--cxx=CMD...] [--pythonpath=DIR] [--sanitize=LIST] [--timeout=SECONDS]
                [--py-timeout=SECONDS] [FILE.md]...
  --cc and --cxx are repeated once per word of the compiler command (meson's cmd_array()).
  Relative FILE arguments are taken relative to SRCDIR; with --root pointing at a copy of the
  documents, the check runs on the copy (--pythonpath then still names the real binding).
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

NO_TEST = "<!-- no-test -->"
C_LANGS = {"c": "c", "cpp": "cpp", "c++": "cpp", "cxx": "cpp"}
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
PY_IMPORT = re.compile(r"^\s*(import\s+mominit\b|from\s+mominit\b)", re.M)
OUTPUT_LINES = 60  # at most this many lines of compiler or program output per test


class Block:
    def __init__(self, doc, line, lang, text, no_test):
        self.doc = doc          # path relative to the root, for the report
        self.line = line        # 1-based line of the opening fence
        self.lang = lang        # 'c', 'cpp' or 'python'
        self.text = text
        self.no_test = no_test

    @property
    def name(self):
        return "%s:%d" % (self.doc, self.line)


def fenced_blocks(path):
    """Yield (line of the opening fence, info word, text, marked no-test) for each fenced block."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    last_text = ""  # the last non-blank line outside a block
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                last_text = lines[i].strip()
            i += 1
            continue
        start, indent, fence = i, len(m.group("indent")), m.group("fence")
        info = m.group("info").lower()
        body = []
        i += 1
        while i < len(lines):
            s = lines[i].strip()
            if s and s[0] == fence[0] and s == fence[0] * len(s) and len(s) >= len(fence):
                break
            # CommonMark: drop up to the fence's own indentation from each content line
            line = lines[i]
            k = 0
            while k < indent and k < len(line) and line[k] == " ":
                k += 1
            body.append(line[k:])
            i += 1
        yield start + 1, info, "\n".join(body) + "\n", last_text == NO_TEST
        last_text = ""
        i += 1  # past the closing fence (or the end of the file)


def programs(root, docs):
    out = []
    for doc in docs:
        path = doc if os.path.isabs(doc) else os.path.join(root, doc)
        rel = os.path.relpath(path, root)
        if rel.startswith(".."):
            rel = path
        for line, info, text, no_test in fenced_blocks(path):
            if info in C_LANGS and "int main(" in text:
                out.append(Block(rel, line, C_LANGS[info], text, no_test))
            elif info in ("python", "py", "python3") and PY_IMPORT.search(text):
                out.append(Block(rel, line, "python", text, no_test))
    return out


def default_docs(root):
    docs = ["README.md"]
    docs += sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md")))
    docs.append(os.path.join("bindings", "python", "README.md"))
    return [d for d in docs if os.path.isfile(os.path.join(root, d))]


def run(cmd, cwd, env, timeout):
    """Run cmd; return (exit status or None on timeout, combined output, seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        out, _ = proc.communicate()
        status = None
    return status, out.decode("utf-8", errors="replace"), time.monotonic() - start


def comment(text):
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    if len(lines) > OUTPUT_LINES:
        skipped = len(lines) - OUTPUT_LINES
        half = OUTPUT_LINES // 2
        lines = lines[:half] + ["... (%d lines)" % skipped] + lines[-half:]
    return "".join("#   %s\n" % l for l in lines)


def doc_lines(text, src, b):
    """Point the compiler's and Python's references to the extracted source at the document."""
    text = re.sub(re.escape(src) + r":(\d+)",
                  lambda m: "%s:%d" % (b.doc, b.line + int(m.group(1))), text)
    text = re.sub(r'File "' + re.escape(src) + r'", line (\d+)',
                  lambda m: 'File "%s", line %d' % (b.doc, b.line + int(m.group(1))), text)
    return text.replace(src, b.doc)


def quote(cmd):
    return " ".join(c if re.match(r"^[\w@%+=:,./-]+$", c) else "'" + c.replace("'", "'\\''") + "'"
                    for c in cmd)


def numpy_python():
    cands = [sys.executable, "/usr/bin/python3", shutil.which("python3")]
    seen = set()
    for c in cands:
        if not c or c in seen or not os.path.isfile(c):
            continue
        seen.add(c)
        try:
            r = subprocess.run([c, "-c", "import ctypes, numpy"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return c
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="source root the documents are found under")
    ap.add_argument("--include", action="append", default=[], help="include directory (repeat)")
    ap.add_argument("--lib", required=True, help="the built shared library")
    ap.add_argument("--cc", action="append", default=[], help="one word of the C compiler command")
    ap.add_argument("--cxx", action="append", default=[],
                    help="one word of the C++ compiler command")
    ap.add_argument("--pythonpath", help="the Python binding's directory "
                    "(default: ROOT/bindings/python)")
    ap.add_argument("--sanitize", default="none", help="meson's b_sanitize of the build")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per C or C++ program")
    ap.add_argument("--py-timeout", type=float, default=300.0, help="seconds per Python program")
    ap.add_argument("docs", nargs="*", help="Markdown files (default: README.md, docs/*.md, "
                    "bindings/python/README.md)")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    if not args.cc:
        ap.error("--cc is required")

    root = os.path.abspath(args.root)
    lib = os.path.abspath(args.lib)
    libdir = os.path.dirname(lib)
    docs = args.docs or default_docs(root)
    blocks = programs(root, docs)
    sanitized = args.sanitize not in ("", "none")
    if sanitized:  # the HF program of docs/hf.md ran 6 s plain, 37 s under address,undefined
        args.timeout *= 4

    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = libdir + (":" + env["LD_LIBRARY_PATH"]
                                       if env.get("LD_LIBRARY_PATH") else "")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    py_env = dict(env)
    py_env["MOMINIT_LIBRARY"] = lib
    py_env["PYTHONDONTWRITEBYTECODE"] = "1"
    pydir = os.path.abspath(args.pythonpath or os.path.join(root, "bindings", "python"))
    py_env["PYTHONPATH"] = pydir + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")

    python = None
    py_skip = None
    if any(b.lang == "python" and not b.no_test for b in blocks):
        if sanitized:
            py_skip = "sanitizer build: the instrumented library cannot be loaded into python"
        else:
            python = numpy_python()
            if python is None:
                py_skip = "no python3 that can import numpy (Debian: apt-get install python3-numpy)"

    flags = ["-Wall", "-Wextra", "-Werror"] + ["-I" + d for d in args.include]
    if sanitized:
        flags.append("-fsanitize=" + args.sanitize)
    link = [lib, "-lm"]

    print("1..%d" % len(blocks))
    if not blocks:
        print("# no complete programs found in: %s" % ", ".join(docs))
    failed = 0
    tmp = tempfile.mkdtemp(prefix="mominit-docs-")
    try:
        for n, b in enumerate(blocks, 1):
            if b.no_test:
                print("ok %d - %s # SKIP marked %s" % (n, b.name, NO_TEST))
                continue
            if b.lang == "cpp" and not args.cxx:
                print("ok %d - %s # SKIP no C++ compiler in this build" % (n, b.name))
                continue
            if b.lang == "python" and py_skip:
                print("ok %d - %s # SKIP %s" % (n, b.name, py_skip))
                continue
            work = os.path.join(tmp, str(n))
            os.mkdir(work)
            if b.lang == "python":
                src = os.path.join(work, "sample.py")
                with open(src, "w", encoding="utf-8") as f:
                    f.write(b.text)
                cmd = [python, src]
                limit = args.py_timeout
                status, out, seconds = run(cmd, work, py_env, limit)
            else:
                ext, std, cc = (".c", "-std=c11", args.cc) if b.lang == "c" else \
                               (".cpp", "-std=c++11", args.cxx)
                src = os.path.join(work, "sample" + ext)
                exe = os.path.join(work, "sample")
                with open(src, "w", encoding="utf-8") as f:
                    f.write(b.text)
                ccmd = cc + [std] + flags + [src, "-o", exe] + link
                cstatus, cout, _ = run(ccmd, work, env, 300)
                if cstatus != 0 or cout.strip():
                    failed += 1
                    why = "compiler timed out" if cstatus is None else \
                          "compile failed" if cstatus != 0 else "compiler printed diagnostics"
                    print("not ok %d - %s" % (n, b.name))
                    sys.stdout.write("# %s (%s): %s\n%s" % (why, b.name, quote(ccmd),
                                                             comment(doc_lines(cout, src, b))))
                    continue
                cmd = [exe]
                limit = args.timeout
                status, out, seconds = run(cmd, work, env, limit)
            if status == 0:
                print("ok %d - %s" % (n, b.name))
                print("# %s ran in %.1f s" % (b.name, seconds))
                continue
            failed += 1
            print("not ok %d - %s" % (n, b.name))
            if status is None:
                why = "timed out after %g s" % limit
            elif status < 0:
                why = "killed by signal %d" % -status
            else:
                why = "exit status %d" % status
            sys.stdout.write("# %s (%s): %s\n%s" % (why, b.name, quote(cmd),
                                                     comment(doc_lines(out, src, b))))
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print("# %d of %d documentation programs failed" % (failed, len(blocks)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
