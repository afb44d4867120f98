"""Coverage per package (`make coverage`): statements and branches of each of strato's
packages (core, cli, jobspec, shell, plugins, plugins.sched_graph, strato), from the
combined data of the test run and every process it started."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import coverage

REPO = Path(__file__).resolve().parents[1]


def package_of(path: Path) -> str:
    rel = path.relative_to(REPO).parent
    return ".".join(rel.parts) or "."


def main() -> int:
    cov = coverage.Coverage(data_file=str(REPO / ".coverage"))
    cov.load()
    data = cov.get_data()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for name in sorted(data.measured_files()):
        path = Path(name)
        if REPO not in path.parents or "tests" in path.relative_to(REPO).parts:
            continue
        analysis = cov._analyze(name)  # the public API prints; this one counts
        n = analysis.numbers
        t = totals[package_of(path)]
        t[0] += n.n_statements
        t[1] += n.n_executed
        t[2] += n.n_branches
        t[3] += n.n_branches - n.n_missing_branches
    print(f"{'package':<20} {'stmts':>7} {'lines%':>7} {'branches':>9} {'branch%':>8}")
    all4 = [0, 0, 0, 0]
    for pkg, (s, e, b, bh) in sorted(totals.items()):
        print(f"{pkg:<20} {s:>7} {100 * e / max(s, 1):>6.1f}% {b:>9} {100 * bh / max(b, 1):>7.1f}%")
        all4 = [x + y for x, y in zip(all4, (s, e, b, bh), strict=True)]
    s, e, b, bh = all4
    print(f"{'total':<20} {s:>7} {100 * e / max(s, 1):>6.1f}% {b:>9} {100 * bh / max(b, 1):>7.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
