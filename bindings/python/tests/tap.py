"""Run unittest modules and report every test case in TAP (for `meson test`, protocol 'tap').

Usage: python3 tap.py MODULE [MODULE ...]   (module names of this directory, e.g. test_net)

With no numpy on this interpreter the whole program is skipped ("1..0 # SKIP ..."). A module that
fails to import (the library cannot be loaded, for example) is a failure, not a skip.
"""
import os
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class TapResult(unittest.TestResult):
    """Prints one TAP line per test method (sub-tests fold into their method)."""

    def __init__(self, stream=sys.stdout):
        super().__init__()
        self.stream = stream
        self.number = 0
        self.current = None

    def _name(self, test):
        return test.id().split(".", 1)[-1]

    def startTest(self, test):
        super().startTest(test)
        self.current = {"problems": [], "skip": None, "start": time.monotonic()}

    def _problem(self, kind, test, err):
        text = self._exc_info_to_string(err, test)
        self.current["problems"].append((kind, text))

    def addError(self, test, err):
        super().addError(test, err)
        self._problem("error", test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._problem("failure", test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._problem(f"failure in {subtest._subDescription()}", test, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.current["skip"] = reason

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.current["problems"].append(("unexpected success", ""))

    def stopTest(self, test):
        super().stopTest(test)
        self.number += 1
        cur = self.current
        name = self._name(test)
        secs = time.monotonic() - cur["start"]
        if cur["problems"]:
            self.stream.write(f"not ok {self.number} - {name}\n")
            for kind, text in cur["problems"]:
                self.stream.write(f"# {kind}:\n")
                for line in text.rstrip().splitlines():
                    self.stream.write(f"#   {line}\n")
        elif cur["skip"] is not None:
            self.stream.write(f"ok {self.number} - {name} # SKIP {cur['skip']}\n")
        else:
            self.stream.write(f"ok {self.number} - {name} ({secs:.2f}s)\n")
        self.stream.flush()


def main(argv):
    try:
        import numpy  # noqa: F401
    except ImportError:
        print(f"1..0 # SKIP numpy is not available to {sys.executable}")
        return 0
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.dirname(HERE))  # the mominit package
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    broken = []
    for name in argv[1:]:
        try:
            suite.addTests(loader.loadTestsFromName(name))
        except Exception:  # an import error is a failure of the whole module
            broken.append((name, traceback.format_exc()))
    total = suite.countTestCases() + len(broken)
    print(f"1..{total}", flush=True)
    result = TapResult()
    for name, text in broken:
        result.number += 1
        print(f"not ok {result.number} - {name} (import)")
        for line in text.rstrip().splitlines():
            print(f"#   {line}")
    suite.run(result)
    ok = result.wasSuccessful() and not broken
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
