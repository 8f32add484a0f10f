"""`python -m analysis.report RUN_DIR`: build every report file in a run folder.

Exit codes: 0 all thresholds passed, 1 a threshold failed, 2 invalid run or bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from chatload.analysis import junit, plots, render_html, render_md
from chatload.analysis.console import summary_lines
from chatload.analysis.gate import GateMismatch, apply_regression
from chatload.analysis.load import RunError
from chatload.analysis.pipeline import Analysis, analyze
from chatload.contracts import EXIT_INVALID, EXIT_OK, EXIT_THRESHOLD

# Tables with one row per chat can have millions of rows: Parquet only.
PARQUET_ONLY = ("chats",)


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
        if name not in PARQUET_ONLY:
            frame.to_csv(folder / f"{name}.csv", index=False)


def write_outputs(result: Analysis) -> None:
    run_dir, summary = result.run.run_dir, result.summary
    write_tables(result.tables(), run_dir / "tables")
    little = summary["findings"]["littles_law"]
    figures = plots.render_all(
        result.per_second,
        result.per_stage,
        little["concurrency_quota"],
        little["rate_quota"],
        summary["findings"]["outages"],
        result.traffic,
        result.run.schedule_t0,
        result.delivery,
    )
    paths = plots.save(figures, run_dir / "plots")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (run_dir / "junit.xml").write_text(junit.render(summary), encoding="utf-8")
    relative = {name: f"plots/{path.name}" for name, path in paths.items()}
    tables = (result.run.meta, result.per_stage, result.per_operation, result.errors)
    (run_dir / "report.md").write_text(render_md.render(summary, *tables, relative), encoding="utf-8")
    (run_dir / "report.html").write_text(render_html.render(summary, *tables, paths), encoding="utf-8")


def build_report(run_dir: Path, target_peak_rate: float | None = None, baseline: Path | None = None) -> dict[str, Any]:
    """Analyse the run folder, write report.html, report.md, summary.json, junit.xml, tables/, plots/
    into it, and return the summary (what summary.json holds). With `baseline` (another run folder of
    the same scenario) the run is also gated by its [thresholds.regression] (analysis/gate.py).
    Raises RunError for a bad folder, GateMismatch for runs that cannot be compared."""
    result = analyze(Path(run_dir), target_peak_rate)
    if baseline is not None:
        apply_regression(result, analyze(Path(baseline)))
    write_outputs(result)
    return result.summary


def exit_code(summary: dict[str, Any]) -> int:
    if not summary["valid"]:
        return EXIT_INVALID
    return EXIT_OK if summary["passed"] else EXIT_THRESHOLD


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chatload report", description="Build the report of a run folder.")
    parser.add_argument("run_dir", type=Path, help="run folder (reports/<run-id>)")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a run folder of the same scenario to gate this run on ([thresholds.regression])",
    )
    parser.add_argument(
        "--target-peak-rate",
        type=float,
        default=None,
        help="chats/s for the Little's-law projection (default: the run's peak offered rate)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return EXIT_OK if exc.code == 0 else EXIT_INVALID
    if args.target_peak_rate is not None and not args.target_peak_rate > 0:
        print("chatload report: --target-peak-rate must be a number > 0", file=sys.stderr)
        return EXIT_INVALID
    try:
        summary = build_report(args.run_dir, args.target_peak_rate, args.baseline)
    except (RunError, GateMismatch) as exc:
        print(f"chatload report: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"chatload report: cannot write into {args.run_dir}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print("\n".join(summary_lines(summary, args.run_dir)))
    return exit_code(summary)


if __name__ == "__main__":
    sys.exit(main())
