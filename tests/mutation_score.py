"""Mutation score per module from mutmut's results (`make mutation` prints it after `mutmut run`).

    python tests/mutation_score.py            # the table
    python tests/mutation_score.py --survivors core.common.atomic   # that module's surviving mutants

Killed: a test failed on the mutant (or it timed out). Survived: every test passed. No tests: no selected
test runs that code (counted as survived: a line no test reaches is a line no test protects). Mutants
not checked yet (an interrupted run) are left out.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict

KILLED = {"killed", "timeout"}
NAME = re.compile(r"^\s*(?P<name>[\w.ǁ]+__mutmut_\d+): (?P<status>[\w ]+)$")


def results() -> list[tuple[str, str, str]]:
    """(module, mutant, status) for every mutant mutmut knows."""
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True
    )
    found = []
    for line in done.stdout.splitlines():
        match = NAME.match(line)
        if match:
            name = match["name"]
            module = re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]
            found.append((module, name, match["status"].strip()))
    return found


def main(argv: list[str]) -> int:
    rows = results()
    if len(argv) == 2 and argv[0] == "--survivors":
        for module, name, status in rows:
            if module == argv[1] and status not in KILLED:
                print(f"{name}: {status}")
        return 0
    by_module: dict[str, Counter] = defaultdict(Counter)
    for module, _, status in rows:
        if status != "not checked":  # an interrupted run: counted when it is checked
            by_module[module]["killed" if status in KILLED else "survived"] += 1
    total = Counter()
    print(f"{'module':40} {'killed':>7} {'survived':>9} {'score':>6}")
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        score = counts["killed"] / sum(counts.values())
        print(f"{module:40} {counts['killed']:>7} {counts['survived']:>9} {score:>6.0%}")
    print(f"{'all':40} {total['killed']:>7} {total['survived']:>9} {total['killed'] / sum(total.values()):>6.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
