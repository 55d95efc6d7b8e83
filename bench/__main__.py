"""`make bench`: every benchmark, one table, ratios against baselines from the same run."""

from __future__ import annotations

import importlib
import sys

from rich.console import Console
from rich.table import Table

from bench.common import Row

SUITES = ["bench.token_bench", "bench.proxy_bench"]


def print_table(rows: list[Row]) -> None:
    table = Table(title="authprofiles benchmarks (baseline measured in the same run)")
    for column in ("benchmark", "value", "baseline", "ratio", "goal", "met"):
        table.add_column(column, justify="left" if column in ("benchmark", "goal") else "right")
    for row in rows:
        table.add_row(
            row.name,
            f"{row.value:,.2f} {row.unit}",
            f"{row.baseline:,.2f} {row.unit}",
            f"{row.ratio:.2f}x",
            row.goal,
            "yes" if row.passed else "NO",
        )
    Console().print(table)


def main() -> None:
    rows: list[Row] = []
    for name in SUITES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        rows += module.run()
    print_table(rows)
    if not all(r.passed for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
