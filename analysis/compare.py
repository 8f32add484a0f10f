"""`python -m analysis.compare RUN_A RUN_B [--out DIR]`: two runs side by side (e.g. before and after a
quota increase) as compare.html (self-contained), compare.md, compare.json and overlay plots.

Default output folder: RUN_B/compare-<run id of A>/. Exit codes: 0 written, 2 bad input.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from chatload.analysis import compare_plots, junit, plots
from chatload.analysis.gate import GateMismatch, apply_regression, lines
from chatload.analysis.load import RunError
from chatload.analysis.pipeline import Analysis, analyze
from chatload.analysis.render_html import embed_png, html_table, page
from chatload.analysis.render_md import md_table
from chatload.analysis.summary import jsonable
from chatload.contracts import EXIT_INVALID, EXIT_OK, EXIT_THRESHOLD, START_CHAT


def _get(summary: dict[str, Any], *path: str) -> Any:
    value: Any = summary
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _start(summary: dict[str, Any], outcome: str) -> Any:
    return _get(summary, "calls", START_CHAT, outcome)


def _share(summary: dict[str, Any], outcome: str) -> float | None:
    calls = _start(summary, "total")
    return _start(summary, outcome) / calls if calls else None


def _process(summary: dict[str, Any]) -> str:
    """ "uniform", or "poisson, seed 7" (text: a change of seed is not a number to subtract)."""
    process, seed = _get(summary, "arrivals", "process") or "uniform", _get(summary, "arrivals", "seed")
    return process if seed is None else f"{process}, seed {seed}"


def metrics(result: Analysis) -> dict[str, Any]:
    """The figures compared, in display order (StartChatContact unless named otherwise)."""
    s = result.summary
    start = result.per_operation[result.per_operation["operation"] == START_CHAT]
    first = start.iloc[0] if len(start) else None
    little = _get(s, "findings", "littles_law") or {}
    return {
        "valid": s["valid"],
        "thresholds passed": s["passed"],
        "duration s": s["duration_s"],
        "arrival process": _process(s),
        "dispersion index": _get(s, "arrivals", "dispersion_index"),
        "arrivals": _get(s, "arrivals", "scheduled"),
        "dropped": _get(s, "arrivals", "dropped"),
        "calls": _start(s, "total"),
        "ok": _start(s, "ok"),
        "schedule s": _get(s, "schedule", "duration_s"),
        "mean offered rate /s": _get(s, "schedule", "offered_rate"),
        "mean accepted rate /s": _get(s, "schedule", "accepted_rate"),
        "max sustained accepted rate /s": _get(s, "findings", "max_sustained_accepted_rate"),
        "peak offered rate /s": _get(s, "findings", "peak_offered_rate"),
        "TPS throttle onset (offered /s)": _get(s, "findings", "tps_throttle_onset_rate"),
        "burst absorbed (calls)": _get(s, "findings", "burst_absorbed"),
        "ok share": _share(s, "ok"),
        "TPS throttle share": _share(s, "throttled_tps"),
        "concurrency throttle share": _share(s, "throttled_concurrency"),
        "peak active chats": _get(s, "findings", "peak_active_chats"),
        "concurrency quota hit": _get(s, "findings", "concurrency_quota_hit"),
        "ok p50 ms": None if first is None else first["ok_p50_ms"],
        "ok p95 ms": None if first is None else first["ok_p95_ms"],
        "ok p99 ms": None if first is None else first["ok_p99_ms"],
        "retry amplification": _get(s, "findings", "retry_amplification"),
        "mean chat duration s": little.get("mean_chat_duration_s"),
        "rate quota /s (known)": little.get("rate_quota"),
        "concurrency quota (known)": little.get("concurrency_quota"),
    }


def side_by_side(a: Analysis, b: Analysis) -> pd.DataFrame:
    """metric, A, B, change (B - A where both are numbers)."""
    ma, mb = jsonable(metrics(a)), jsonable(metrics(b))

    def change(x: Any, y: Any) -> float | None:
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        return y - x if numbers else None

    return pd.DataFrame(
        [{"metric": k, "A": ma[k], "B": mb[k], "change": change(ma[k], mb[k])} for k in ma],
        columns=["metric", "A", "B", "change"],
    ).astype({"A": "object", "B": "object", "change": "object"})


def stages_side_by_side(a: Analysis, b: Analysis) -> pd.DataFrame:
    columns = [
        "stage",
        "target_rate",
        "offered_rate",
        "accepted_rate",
        "tps_throttle_share",
        "concurrency_throttle_share",
        "ok_p95_ms",
    ]
    pa_, pb = a.per_stage[columns].round(4), b.per_stage[columns].round(4)
    return pa_.merge(pb, on="stage", how="outer", suffixes=(" A", " B"), sort=False)


def default_out(run_a: Path, run_b: Path, id_a: str) -> Path:
    return run_b / f"compare-{id_a}"


def write(a: Analysis, b: Analysis, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    table, stages = side_by_side(a, b), stages_side_by_side(a, b)
    figures = compare_plots.render_all({"A": a.per_second, "B": b.per_second}, {"A": a.per_stage, "B": b.per_stage})
    paths = plots.save(figures, out / "plots")
    ids = {"A": a.run.run_id, "B": b.run.run_id}
    title = f"chatload compare: A {ids['A']} vs B {ids['B']}"
    headlines = [f"{k}: {v.summary['findings']['headline']}" for k, v in (("A", a), ("B", b))]
    body = [
        f"<h1>{html.escape(title)}</h1>",
        *[f"<p>{html.escape(h)}</p>" for h in headlines],
        "<h2>Side by side</h2>",
        html_table(table),
        "<h2>Stages</h2>",
        html_table(stages),
        "<h2>Overlays</h2>",
        *[embed_png(p) for p in paths.values()],
    ]
    (out / "compare.html").write_text(page(title, body), encoding="utf-8")
    markdown = [
        f"# {title}",
        "",
        *[f"- {h}" for h in headlines],
        "",
        "## Side by side",
        "",
        md_table(table),
        "## Stages",
        "",
        md_table(stages),
        "## Overlays",
        "",
        *[f"![{name}](plots/{p.name})\n" for name, p in paths.items()],
    ]
    (out / "compare.md").write_text("\n".join(markdown), encoding="utf-8")
    result = jsonable({"runs": ids, "metrics": table.to_dict("records"), "stages": stages.to_dict("records")})
    (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatload compare", description="Compare two run folders.")
    parser.add_argument("run_a", type=Path, help="first run folder (A, e.g. before a quota increase)")
    parser.add_argument("run_b", type=Path, help="second run folder (B)")
    parser.add_argument("--out", type=Path, help="output folder (default: RUN_B/compare-<run id of A>)")
    parser.add_argument(
        "--gate",
        action="store_true",
        help="gate B on A (the baseline) by B's [thresholds.regression]: exit 1 on a regression",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_INVALID
    try:
        a, b = analyze(args.run_a), analyze(args.run_b)
        out = args.out or default_out(args.run_a, args.run_b, a.run.run_id)
        checks = apply_regression(b, a)["checks"] if args.gate else None
        write(a, b, out)
        if checks is not None:
            write_gate(b, out)
    except (RunError, GateMismatch) as exc:
        print(f"chatload compare: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"chatload compare: cannot write the comparison: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"A {a.run.run_id}: {a.summary['findings']['headline']}")
    print(f"B {b.run.run_id}: {b.summary['findings']['headline']}")
    print(f"comparison: {out / 'compare.html'}")
    if checks is None:
        return EXIT_OK
    print("\n".join(lines(checks)))
    failed = [c for c in checks if not c["passed"]]
    verdict = f"FAILED, {len(failed)} check(s)" if failed else "passed"
    print(f"regression gate: {verdict} ({out / 'gate.xml'})")
    return EXIT_THRESHOLD if failed else EXIT_OK


def write_gate(run: Analysis, out: Path) -> None:
    """gate.json (the checks) and gate.xml (junit: one test case a check) beside the comparison."""
    regression = run.summary["regression"]
    (out / "gate.json").write_text(json.dumps(jsonable(regression), indent=2) + "\n", encoding="utf-8")
    gated = {**run.summary, "thresholds": [t for t in run.summary["thresholds"] if t["name"].startswith("regression ")]}
    (out / "gate.xml").write_text(junit.render(gated), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
