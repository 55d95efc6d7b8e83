"""bench/results.json as a Markdown table, for the README's "Benchmarks" section.

.venv/bin/python -m bench.results
"""

from __future__ import annotations

import json

from bench.common import ROOT


def markdown() -> str:
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    m = results["machine"]
    lines = [
        f"Measured {results['started_at']} on {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gb']} GB, {m['os']}, Python {m['python']}"
        + (f", PostgreSQL {m['postgres']}" if "postgres" in m else "")
        + ".",
        "",
        "| benchmark | value | baseline | ratio | goal | met |",
        "|---|--:|--:|--:|---|:-:|",
    ]
    for f in results["figures"]:
        unit = f["unit"]
        baseline = f"{f['baseline_value']:,.2f} {unit}"
        if f["baseline"]:
            baseline = f"{f['baseline']}: {baseline}"
        ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x"
        met = "-" if f["met"] is None else ("yes" if f["met"] else "**no**")
        lines.append(
            f"| {f['name']} | {f['value']:,.2f} {unit} | {baseline} | {ratio} "
            f"| {f['goal'] or '(reported)'} | {met} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
