#!/usr/bin/env python3
"""Pinned constants of the public headers: every enumerator and every integer MOM_ macro.

abidiff cannot see them: the API passes enum values as `int`, so no enum type is reachable from
an exported function and none is recorded in the abidw baseline. This script closes that gap.

    constants.py dump INCLUDE_DIR            print "NAME VALUE" lines, sorted
    constants.py check BASELINE INCLUDE_DIR  every baseline constant must still exist with the
                                             same value (new constants are allowed)

Version numbers are not pinned (they change by design): macros whose name contains VERSION or
ends in _MAJOR, _MINOR or _PATCH are left out.

Exit status of check: 0 ok, 1 a constant was removed or renumbered.
"""
import os
import re
import sys

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_ENUM = re.compile(r"\benum\b\s*\w*\s*\{(.*?)\}", re.S)
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(MOM_[A-Z0-9_]+)[ \t]+(.+?)[ \t]*$", re.M)
_UNPINNED = re.compile(r"VERSION|_(MAJOR|MINOR|PATCH)$")
_INT_EXPR = re.compile(r"^[\s()0-9a-fA-FxX<>|&+\-~*uUlL]*$")


def _value(text, known):
    """An integer from a C constant expression made of literals and known names, else None."""
    expr = text.strip()
    for name in sorted(known, key=len, reverse=True):
        expr = re.sub(r"\b%s\b" % re.escape(name), "(%d)" % known[name], expr)
    expr = re.sub(r"(?<=[0-9a-fA-F])[uUlL]+\b", "", expr)
    if not expr or not _INT_EXPR.match(expr):
        return None
    try:
        return int(eval(expr, {"__builtins__": {}}, {}))  # digits and operators only
    except Exception:
        return None


def constants(incdir):
    found = {}
    for fname in sorted(os.listdir(incdir)):
        if not fname.endswith(".h"):
            continue
        with open(os.path.join(incdir, fname), encoding="utf-8") as f:
            text = _COMMENT.sub(" ", f.read())
        for body in _ENUM.findall(text):
            nxt = 0
            for item in body.split(","):
                item = item.strip()
                if not item:
                    continue
                name, _, expr = item.partition("=")
                name = name.strip()
                if expr.strip():
                    v = _value(expr, found)
                    if v is None:
                        raise SystemExit(f"{fname}: cannot evaluate {name} = {expr.strip()}")
                else:
                    v = nxt
                found[name] = v
                nxt = v + 1
        for name, expr in _DEFINE.findall(text):
            v = _value(expr, found)
            if v is not None:
                found[name] = v
    return found


def main(argv):
    if len(argv) == 3 and argv[1] == "dump":
        for name, v in sorted(constants(argv[2]).items()):
            if not _UNPINNED.search(name):
                print(name, v)
        return 0
    if len(argv) == 4 and argv[1] == "check":
        base = {}
        with open(argv[2], encoding="utf-8") as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    name, v = line.split()
                    base[name] = int(v)
        now = {k: v for k, v in constants(argv[3]).items() if not _UNPINNED.search(k)}
        bad = []
        for name, v in sorted(base.items()):
            if name not in now:
                bad.append(f"  removed:    {name} (was {v})")
            elif now[name] != v:
                bad.append(f"  renumbered: {name} {v} -> {now[name]}")
        added = sorted(set(now) - set(base))
        if bad:
            print("FAIL: pinned constants changed (values are pinned forever, docs/abi.md):")
            print("\n".join(bad))
            return 1
        print(f"ok: {len(base)} pinned constants unchanged"
              + (f"; {len(added)} added: {' '.join(added)}" if added else ""))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
