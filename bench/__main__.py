"""`make bench`: every benchmark, one table, ratios against baselines from the same run.

Writes bench/results.json: {"machine": {...}, "started_at": ISO time, "figures": [...]}.
Exits 0 when every benchmark ran, whether or not its goals were met (the table and the
file say which); non-zero only when one could not run.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import ROOT, Row, machine

SUITES = [
    "bench.token_bench",
    "bench.proxy_bench",
    "bench.single_flight_bench",
    "bench.refresher_bench",
    "bench.growth_bench",
    "bench.memory_bench",
]
RESULTS = ROOT / "bench" / "results.json"


def print_table(rows: list[Row], title_note: str = "") -> None:
    title = "authprofiles benchmarks (baseline measured in the same run)"
    table = Table(title=f"{title}\n{title_note}" if title_note else title)
    for column in ("benchmark", "value", "baseline", "ratio", "goal", "met"):
        table.add_column(column, justify="left" if column in ("benchmark", "goal") else "right")
    for row in rows:
        baseline = f"{row.baseline:,.2f} {row.unit}"
        if row.baseline_name:
            baseline = f"{row.baseline_name}: {baseline}"
        table.add_row(
            row.name,
            f"{row.value:,.2f} {row.unit}",
            baseline,
            f"{row.ratio:.2f}x" if row.ratio == row.ratio else "-",
            row.goal,
            ("yes" if row.passed else "NO") if row.judged else "-",
        )
    Console(width=200).print(table)


def main() -> None:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    began = time.monotonic()
    info: dict[str, Any] = machine()
    rows: list[Row] = []
    failed: list[str] = []
    only = sys.argv[1:]  # `python -m bench token_bench`: some suites only
    for name in SUITES:
        if only and name.split(".")[-1] not in only:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        try:
            suite_began = time.monotonic()
            rows += module.run()
            print(f"{name}: {time.monotonic() - suite_began:.0f} s", file=sys.stderr)
            info.update(getattr(module, "MACHINE", {}))
        except Exception:
            traceback.print_exc()
            failed.append(name)
    note = (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB, Python {info['python']}"
        + (f", PostgreSQL {info['postgres']}" if "postgres" in info else "")
    )
    print_table(rows, note)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": info,
                "started_at": started_at,
                "seconds": round(time.monotonic() - began),
                "figures": [row.as_json() for row in rows],
                "could_not_run": failed,
            },
            indent=2,
        )
        + "\n"
    )
    met = sum(1 for r in rows if r.judged and r.passed)
    judged = sum(1 for r in rows if r.judged)
    print(f"{met} of {judged} goals met; {RESULTS.relative_to(ROOT)} written", file=sys.stderr)
    if failed:
        print(f"could not run: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
