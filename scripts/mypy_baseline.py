"""mypy over the package (config: pyproject [tool.mypy]) against a shrinking baseline of known errors.

The baseline (scripts/mypy-baseline.txt) holds one line per known error: its file, error code and message,
without the line number (lines move as code is edited). The check fails when an error appears that the
baseline does not hold (a new error, or one more of a kind), so the count can only fall. Fixing errors leaves
stale lines: the check says so, and `python scripts/mypy_baseline.py --update` rewrites the file (commit it
with the fix).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scripts" / "mypy-baseline.txt"
ERROR = re.compile(r"^(?P<path>[^:]+):\d+(?::\d+)?: error: (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$")


def current() -> tuple[Counter[str], str]:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-pretty", "--no-error-summary", "--show-error-codes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        sys.exit(f"mypy failed:\n{result.stdout}{result.stderr}")
    errors: Counter[str] = Counter()
    for line in result.stdout.splitlines():
        if match := ERROR.match(line):
            errors[f"{match['path']}: [{match['code'] or 'misc'}] {match['message']}"] += 1
    if result.returncode == 1 and not errors:  # failed without an error of the code (no mypy in this python)
        sys.exit(f"mypy did not run:\n{result.stdout}{result.stderr}")
    return errors, result.stdout


def main() -> int:
    errors, output = current()
    if "--update" in sys.argv[1:]:
        BASELINE.write_text("".join(f"{key}\n" for key in sorted(errors.elements())))
        print(f"mypy: {sum(errors.values())} errors written to {BASELINE.relative_to(ROOT)}")
        return 0
    known = Counter(BASELINE.read_text().splitlines()) if BASELINE.exists() else Counter()
    new = errors - known
    fixed = known - errors
    print(f"mypy: {sum(errors.values())} errors (baseline {sum(known.values())})")
    if new:
        print(f"{sum(new.values())} new (fix them; the baseline only shrinks):")
        keys = set(new)
        for line in output.splitlines():
            match = ERROR.match(line)
            if match and f"{match['path']}: [{match['code'] or 'misc'}] {match['message']}" in keys:
                print(f"  {line}")
        return 1
    if fixed:
        print(
            f"{sum(fixed.values())} fixed: run `python scripts/mypy_baseline.py --update` and commit "
            "scripts/mypy-baseline.txt"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
