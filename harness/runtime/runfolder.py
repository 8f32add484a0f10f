"""The run folder `reports/<run-id>/`: meta.json, the emulator's quotas, Locust's own outputs and
the report step (analysis in a child process; its exit code is the run's exit code).

Only the master or local runner touches meta.json and Locust's outputs; every process writes its
own `attempts/<worker>.*` (harness.recorder).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from chatload.contracts import EXIT_INVALID, EXIT_OK, EXIT_THRESHOLD

REPORT_TIMEOUT_S = 600
# A worker that lost its master leaves master-lost-<worker>.json in the run folder (on its own disk).
MASTER_LOST_PREFIX = "master-lost-"


def create(out: str | Path, run_id: str) -> Path:
    """Make reports/<run-id>/ and its attempts/ folder; a run id already used gets a suffix."""
    base = Path(out) / run_id
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}.{n}")
    (folder / "attempts").mkdir(parents=True)
    return folder


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename), so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("chatload", "locust", "boto3", "botocore"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "unknown"
    return found


# ---------------------------------------------------------------- Locust's own outputs


class LocustOutputs:
    """locust_stats.csv, locust_stats_history.csv (full history), locust_failures.csv,
    locust_exceptions.csv and locust.html in the run folder, for any run (headless or web UI).

    start() runs Locust's own CSV writer for the run (it appends the history every 2 s);
    finish() stops it, writes the final tables and the HTML report.
    """

    def __init__(self, environment: Any, folder: Path) -> None:
        self.environment = environment
        self.folder = folder
        self._writer: Any = None
        self._greenlet: Any = None

    def start(self) -> None:
        import gevent
        from locust import stats

        self._writer = stats.StatsCSVFileWriter(
            self.environment, stats.PERCENTILES_TO_REPORT, str(self.folder / "locust"), full_history=True
        )
        self._greenlet = gevent.spawn(self._writer.stats_writer)

    def finish(self) -> None:
        from locust import stats
        from locust.html import get_html_report

        if self._writer is not None:
            self._greenlet.kill(block=True)
            writer = self._writer
            self._writer = None
            writer._stats_history_data_rows(writer.stats_history_csv_writer, time.time())
            writer.close_files()
            final = stats.StatsCSV(self.environment, stats.PERCENTILES_TO_REPORT)
            for name, write in (
                ("locust_stats.csv", final.requests_csv),
                ("locust_failures.csv", final.failures_csv),
                ("locust_exceptions.csv", final.exceptions_csv),
            ):
                with open(self.folder / name, "w", newline="", encoding="utf-8") as handle:
                    write(csv.writer(handle))
        html = get_html_report(self.environment, show_download_link=False)
        (self.folder / "locust.html").write_text(html, encoding="utf-8")


# ---------------------------------------------------------------- the report


def report_command(run_dir: Path, baseline: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "chatload.analysis.report", str(run_dir)]
    return command if baseline is None else [*command, "--baseline", str(baseline)]


def analysis_available() -> bool:
    return importlib.util.find_spec("chatload.analysis.report") is not None


def exit_code_of(returncode: int | None) -> int:
    """The run's exit code from the report's: 0 and 1 pass through, anything else is 2."""
    return returncode if returncode in (EXIT_OK, EXIT_THRESHOLD) else EXIT_INVALID


def run_report(run_dir: Path, timeout_s: float = REPORT_TIMEOUT_S, baseline: Path | None = None) -> tuple[int, str]:
    """Build the run's report in a child process (never in the gevent process); returns
    (exit code 0/1/2, a line for the log)."""
    if not analysis_available():
        return EXIT_INVALID, f"chatload: no report for {run_dir}: the analysis package (chatload.analysis) is missing"
    try:
        done = subprocess.run(report_command(run_dir, baseline), timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return EXIT_INVALID, f"chatload: the report for {run_dir} took longer than {timeout_s:.0f} s"
    code = exit_code_of(done.returncode)
    verdict = {EXIT_OK: "thresholds passed", EXIT_THRESHOLD: "a threshold failed"}.get(code, "invalid run")
    return code, f"chatload: report {run_dir}: {verdict} (exit {code})"
