"""Edge cases: each builds a complete report (or fails with one line and exit 2), never a traceback."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from chatload.analysis.report import build_report, main

ROOT = Path(__file__).resolve().parents[2]
SCC = "StartChatContact"
OUTPUTS = (
    "report.html",
    "report.md",
    "summary.json",
    "junit.xml",
    "tables/per_second.csv",
    "tables/per_stage.csv",
    "tables/per_operation.csv",
    "plots/offered_vs_accepted.png",
    "plots/outcomes.png",
    "plots/latency.png",
    "plots/active_chats.png",
    "plots/saturation.png",
    "plots/arrivals.png",
)


def assert_outputs(run_dir: Path) -> dict:
    for name in OUTPUTS:
        assert (run_dir / name).is_file(), name
    return json.loads((run_dir / "summary.json").read_text())


def test_empty_run_header_only(make_run, capsys):
    run_dir = make_run({"w1": []})
    assert main([str(run_dir)]) == 2
    summary = assert_outputs(run_dir)
    assert summary["valid"] is False
    assert summary["invalid_reasons"] == ["no StartChatContact calls were made"]
    assert summary["calls"]["StartChatContact"]["total"] == 0
    assert summary["findings"]["peak_active_chats"] == 0
    assert "INVALID" in capsys.readouterr().out


def test_run_without_attempts_folder(make_run):
    run_dir = make_run(None)
    summary = build_report(run_dir)
    assert summary["valid"] is False and any("no attempts/" in n for n in summary["notes"])
    assert_outputs(run_dir)


def test_only_throttles(make_run, attempt_row):
    # 10 arrivals at 2/s over 5 s, every one TPS-throttled (5 ms)
    rows = [
        attempt_row(0.5 * i, SCC, "throttled_tps", 5, t_intended=0.5 * i, stage="only", chat=f"c{i}") for i in range(10)
    ]
    run_dir = make_run(
        {"w1": rows},
        ended_at=1005.0,
        scenario={
            "name": "t",
            "stages": [{"name": "only", "duration_s": 5, "target_rate": 2}],
            "thresholds": {"max_p95_ms": 100},
        },
    )
    assert main([str(run_dir)]) == 1  # valid run; p95 of ok calls has nothing to measure -> fails
    summary = assert_outputs(run_dir)
    assert summary["valid"] is True
    found = summary["findings"]
    assert found["max_sustained_accepted_rate"] == 0
    assert found["tps_throttle_onset_rate"] == pytest.approx(2.0)  # 10 arrivals / 5 s, 100 % throttled
    assert found["burst_absorbed"] == 0  # no ok call before the first throttle at 0.0
    assert found["peak_active_chats"] == 0
    assert found["littles_law"]["mean_chat_duration_s"] is None
    p95 = next(t for t in summary["thresholds"] if t["name"] == "max_p95_ms")
    assert p95["observed"] is None and p95["passed"] is False


def test_dropped_arrivals_make_the_run_invalid(make_run, attempt_row):
    # 10 arrivals, 3 dropped: 0.3 > max_dropped_share 0.01
    rows = [
        attempt_row(
            0.5 * i + 0.01,
            SCC,
            "dropped" if i % 3 == 0 and i else "ok",
            20,
            t_intended=0.5 * i,
            stage="only",
            chat=f"c{i}",
        )
        for i in range(10)
    ]
    run_dir = make_run({"w1": rows})
    assert main([str(run_dir)]) == 2
    summary = assert_outputs(run_dir)
    assert summary["valid"] is False
    assert len(summary["invalid_reasons"]) == 1 and "dropped share" in summary["invalid_reasons"][0]
    assert summary["arrivals"] == {
        "scheduled": 10,
        "started": 7,
        "dropped": 3,
        "process": "uniform",  # meta.json without "arrivals": an old run, evenly spaced
        "seed": None,
        # seconds 0..4 hold 2 arrivals, 5..9 none: mean 1, squares 10 over 9 degrees of freedom
        "dispersion_index": pytest.approx(10 / 9),
    }
    dropped = next(t for t in summary["thresholds"] if t["name"] == "max_dropped_share")
    assert dropped["observed"] == pytest.approx(0.3) and dropped["passed"] is False


def test_cut_short_with_truncated_csv_line(make_run, attempt_row):
    rows = [attempt_row(float(i), SCC, "ok", 10, t_intended=float(i), stage="only", chat=f"c{i}") for i in range(4)]
    run_dir = make_run({"w1": rows}, ended_at=None)
    path = run_dir / "attempts" / "w1.csv"
    path.write_text(path.read_text() + "1004.0,1004.0,10.0,StartChat")  # killed mid-line
    assert main([str(run_dir)]) == 2
    summary = assert_outputs(run_dir)
    assert summary["cut_short"] is True
    assert any("cut short" in r for r in summary["invalid_reasons"])
    assert any("partial last line" in n for n in summary["notes"])
    assert summary["calls"]["StartChatContact"]["total"] == 4
    # end = last attempt's return: 3.0 + 0.010 s
    assert summary["duration_s"] == pytest.approx(3.01)
    assert "cut short" in (run_dir / "report.md").read_text()


def test_lost_worker_and_contacts_not_ended_are_shown(make_run, attempt_row):
    rows = [attempt_row(float(i), SCC, "ok", 10, t_intended=float(i), stage="only", chat=f"c{i}") for i in range(5)]
    run_dir = make_run(
        {"w1": rows},
        workers=["w1", "w2"],
        lost_workers=[{"worker": "w2", "at": 1003.0}],
        clean_up={"ended": 3, "still_active": 2, "not_ended": ["contact-c3", "contact-c4"]},
    )
    assert main([str(run_dir)]) == 0
    summary = assert_outputs(run_dir)
    assert summary["lost_workers"] == [{"worker": "w2", "at": 1003.0}]
    assert any("lost" in n for n in summary["notes"]) and any("not ended" in n for n in summary["notes"])
    page = (run_dir / "report.html").read_text()
    assert "w2 at 1970-01-01 00:16:43 UTC" in page and "contact-c4" in page
    assert "contact-c4" in (run_dir / "report.md").read_text()


def test_parquet_wins_over_csv_of_the_same_stem(make_run, attempt_row, tmp_path):
    from_parquet = [
        attempt_row(float(i), SCC, "ok", 10, t_intended=float(i), stage="only", chat=f"a{i}") for i in range(3)
    ]
    stale_csv = [
        attempt_row(float(i), SCC, "ok", 10, t_intended=float(i), stage="only", chat=f"x{i}") for i in range(7)
    ]
    other_csv = [attempt_row(0.5, SCC, "throttled_tps", 5, t_intended=0.5, stage="only", worker="w2", chat="b0")]
    run_dir = make_run({"w1": from_parquet}, kind="parquet")
    conftest_rows = {"w1": stale_csv, "w2": other_csv}
    import pandas as pd  # the CSVs written the way the recorder writes them

    for name, rows in conftest_rows.items():
        pd.DataFrame(rows).to_csv(run_dir / "attempts" / f"{name}.csv", index=False, na_rep="")
    summary = build_report(run_dir)
    start = summary["calls"]["StartChatContact"]
    assert (start["total"], start["ok"], start["throttled_tps"]) == (4, 3, 1)  # w1.parquet + w2.csv
    assert summary["attempt_files"] == ["w1.parquet", "w2.csv"]


def test_unpaced_rows_count_offered_by_t_start_and_missing_columns_default(make_run, tmp_path):
    run_dir = make_run(None)
    (run_dir / "attempts").mkdir()
    # minimal file: only the required columns; worker = file stem, attempts = 1, t_intended missing
    (run_dir / "attempts" / "solo.csv").write_text(
        "t_start,operation,outcome,latency_ms\n1000.5,StartChatContact,ok,12\n1001.5,StartChatContact,ok,14\n"
    )
    summary = build_report(run_dir)
    per_second = (run_dir / "tables" / "per_second.csv").read_text().splitlines()
    assert summary["calls"]["StartChatContact"]["attempts"] == 2
    assert per_second[1].split(",")[3] == "1" and per_second[2].split(",")[3] == "1"  # offered s0, s1


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such run folder"),
        ("no_meta", "meta.json: missing"),
        ("bad_meta", "not valid JSON"),
        ("bad_columns", "missing column(s) t_start"),
        ("bad_parquet", "unreadable Parquet"),
        ("bad_csv_value", "unreadable CSV"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(make_run, tmp_path, capsys, setup, message):
    run_dir = make_run(None)
    attempts = run_dir / "attempts"
    attempts.mkdir()
    if setup == "missing":
        run_dir = tmp_path / "nope"
    elif setup == "no_meta":
        (run_dir / "meta.json").unlink()
    elif setup == "bad_meta":
        (run_dir / "meta.json").write_text("{not json")
    elif setup == "bad_columns":
        (attempts / "w1.csv").write_text("time,operation,outcome\n1,StartChatContact,ok\n")
    elif setup == "bad_parquet":
        (attempts / "w1.parquet").write_bytes(b"PAR1 this is not parquet")
    elif setup == "bad_csv_value":
        (attempts / "w1.csv").write_text("t_start,operation,outcome\nsoon,StartChatContact,ok\n")
    assert main([str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_flag_is_exit_2(make_run, capsys):
    assert main([str(make_run(None)), "--target-peak-rate", "-1"]) == 2
    assert "--target-peak-rate" in capsys.readouterr().err


def test_command_line_never_imports_gevent_or_locust(make_run, attempt_row):
    rows = [attempt_row(0.1, SCC, "ok", 10, t_intended=0.1, stage="only", chat="c1")]
    run_dir = make_run({"w1": rows})
    code = (
        "import sys\n"
        "from chatload.analysis.report import main\n"
        "from chatload.analysis.compare import main as compare\n"
        f"rc = main([{str(run_dir)!r}])\n"
        f"rc2 = compare([{str(run_dir)!r}, {str(run_dir)!r}])\n"
        "bad = [m for m in ('gevent', 'locust', 'boto3') if m in sys.modules]\n"
        "print(rc, rc2, bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "0 0 []", proc.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "chatload.analysis.report", str(run_dir / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0


def test_summary_has_no_nan(make_run, attempt_row):
    rows = [attempt_row(0.1, SCC, "client_error", 10, t_intended=0.1, stage="only", chat="c1")]
    summary = build_report(make_run({"w1": rows}))
    text = json.dumps(summary)
    assert "NaN" not in text and "Infinity" not in text
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in summary["stages"][0].values())
