#!/usr/bin/env python3
"""Count individual test cases in a meson testlog.json and print one closing line:
"N passed, N failed, N skipped". TAP programs count each case; other tests count once."""
import json
import re
import sys

passed = failed = skipped = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        t = json.loads(line)
        out = t.get("stdout") or ""
        result = t.get("result", "")
        cases = re.findall(r"^(ok|not ok) \d+.*$", out, re.M)
        if re.search(r"^1\.\.\d+", out, re.M) and cases:
            for c in re.findall(r"^(?:ok|not ok) \d+.*$", out, re.M):
                if c.startswith("not ok"):
                    failed += 1
                elif re.search(r"#\s*SKIP", c, re.I):
                    skipped += 1
                else:
                    passed += 1
            if result not in ("OK", "EXPECTEDFAIL") and not any(c == "not ok" for c in cases):
                failed += 1  # the program itself failed (crash, leak, timeout)
        elif result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
