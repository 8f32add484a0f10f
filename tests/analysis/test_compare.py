"""chatload compare: side-by-side table and overlays of two runs (before / after a quota increase)."""

from __future__ import annotations

import json

from chatload.analysis.compare import main

SCC = "StartChatContact"


def _run(make_run, attempt_row, accepted_every: int, run_id: str):
    # 20 arrivals at 4/s over 5 s; every `accepted_every`-th is ok, the rest TPS-throttled
    rows = [
        attempt_row(
            0.25 * i,
            SCC,
            "ok" if i % accepted_every == 0 else "throttled_tps",
            10,
            t_intended=0.25 * i,
            stage="only",
            chat=f"c{i}",
        )
        for i in range(20)
    ]
    return make_run(
        {"w1": rows},
        run_id=run_id,
        ended_at=1005.0,
        scenario={"name": "cmp", "stages": [{"name": "only", "duration_s": 5, "target_rate": 4}]},
    )


def test_compare_before_and_after(make_run, attempt_row, capsys):
    before = _run(make_run, attempt_row, 2, "run-before")  # 10 ok of 20
    after = _run(make_run, attempt_row, 1, "run-after")  # 20 ok of 20
    assert main([str(before), str(after)]) == 0
    out = after / "compare-run-before"
    for name in ("compare.html", "compare.md", "compare.json", "plots/accepted.png", "plots/saturation.png"):
        assert (out / name).is_file(), name
    result = json.loads((out / "compare.json").read_text())
    assert result["runs"] == {"A": "run-before", "B": "run-after"}
    rows = {m["metric"]: m for m in result["metrics"]}
    assert rows["arrival process"]["A"] == "uniform" and rows["arrival process"]["change"] is None
    # accepted 10 vs 20 over 5 s -> 2/s vs 4/s; change +2
    assert rows["mean accepted rate /s"]["A"] == 2.0 and rows["mean accepted rate /s"]["B"] == 4.0
    assert rows["mean accepted rate /s"]["change"] == 2.0
    assert rows["TPS throttle share"]["A"] == 0.5 and rows["TPS throttle share"]["B"] == 0.0
    assert result["stages"][0]["accepted_rate A"] == 2.0 and result["stages"][0]["accepted_rate B"] == 4.0
    assert "data:image/png;base64," in (out / "compare.html").read_text()
    assert "| mean accepted rate /s | 2 | 4 | 2 |" in (out / "compare.md").read_text()
    assert "compare.html" in capsys.readouterr().out


def test_compare_out_flag_and_bad_input(make_run, attempt_row, tmp_path, capsys):
    a = _run(make_run, attempt_row, 2, "a")
    assert main([str(a), str(a), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "compare.md").is_file()
    assert main([str(a), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "no such run folder" in err and "Traceback" not in err
