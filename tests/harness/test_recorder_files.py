"""The attempts writer: columns, flush cadence (fake clock), Parquet compaction, crash-safety, no tokens."""

import csv
import itertools
import math
import subprocess
import sys
import textwrap

import pandas as pd

from chatload.contracts import ATTEMPTS_COLUMNS as COLUMNS
from chatload.contracts import ATTEMPTS_CONTRACT_COLUMNS
from chatload.harness.recorder import Recorder, flush_forever, new_row


def row(i: int, **kw) -> dict:
    return new_row(
        "StartChatContact",
        "ok",
        t_start=1000.0 + i,
        latency_ms=2.5,
        http_status=200,
        t_intended=1000.0 + i - 0.001,
        stage="s",
        chat=f"c{i}",
        contact_id=f"id{i}",
        **kw,
    )


def test_columns_follow_the_contract_then_extras():
    contract = (
        "t_intended",
        "t_start",
        "latency_ms",
        "operation",
        "outcome",
        "http_status",
        "error_code",
        "attempts",
        "stage",
        "worker",
        "chat",
        "contact_id",
    )  # architecture.md section 3, in order
    assert tuple(ATTEMPTS_CONTRACT_COLUMNS) == contract
    assert COLUMNS[: len(contract)] == contract
    assert COLUMNS[len(contract) :] == ("first_outcome", "start_lag_ms", "client_token")
    r = row(1)
    assert r["first_outcome"] == "ok" and math.isclose(r["start_lag_ms"], 1.0)
    assert math.isnan(new_row("StopContact", "ok", t_start=1.0)["start_lag_ms"])


def test_rows_reach_the_csv_only_on_flush(tmp_path):
    seen = []
    rec = Recorder(tmp_path, "local", sink=seen.append)
    rec.record(row(1))
    assert not rec.csv_path.exists() and len(seen) == 1 and seen[0]["worker"] == "local"
    assert rec.flush() == 1
    rec.record(row(2))
    rec.flush()
    with open(rec.csv_path) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["chat"] for r in rows] == ["c1", "c2"]
    assert list(rows[0]) == list(COLUMNS)


def test_flusher_flushes_every_interval_on_a_fake_clock(tmp_path):
    clock = [0.0]
    rec = Recorder(tmp_path, "w0", clock=lambda: clock[0])
    flushes = []

    def fake_sleep(seconds):
        clock[0] += seconds
        rec.record(row(int(clock[0] * 10)))  # a row arrives during every sleep
        flushes.append(clock[0])
        if len(flushes) == 6:
            rec.close(compact=False)

    flush_forever(rec, fake_sleep, interval_s=0.5)
    assert flushes == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert all(b - a <= 1.0 for a, b in itertools.pairwise(flushes))
    assert len(pd.read_csv(rec.csv_path)) == 6


def test_close_compacts_to_parquet(tmp_path):
    rec = Recorder(tmp_path, "local")
    rec.record(row(1))
    rec.record(new_row("StartChatContact", "dropped", t_start=5.0, attempts=0, t_intended=4.9, stage="s"))
    rec.record(
        new_row(
            "DisconnectParticipant",
            "throttled_tps",
            t_start=6.0,
            latency_ms=1.0,
            http_status=429,
            error_code="ThrottlingException",
            stage="s",
            chat="c1",
            contact_id="id1",
        )
    )
    path = rec.close()
    assert path == tmp_path / "local.parquet" and not rec.csv_path.exists()
    assert not list(tmp_path.glob("*.tmp"))
    frame = pd.read_parquet(path)
    assert list(frame.columns) == list(COLUMNS)
    assert frame["outcome"].tolist() == ["ok", "dropped", "throttled_tps"]
    assert frame["http_status"].dtype == "int64" and frame["attempts"].tolist() == [1, 0, 1]
    assert math.isnan(frame["latency_ms"][1]) and frame["error_code"][0] == ""
    assert rec.close() == path  # twice is fine


def test_no_token_or_extra_key_reaches_the_file(tmp_path):
    rec = Recorder(tmp_path, "local")
    r = row(1)
    r["ParticipantToken"] = "secret-participant-token"
    r["connection_token"] = "secret-connection-token"
    rec.record(r)
    rec.close(compact=False)
    text = rec.csv_path.read_text()
    assert "secret" not in text and "Token" not in text


def test_a_killed_writer_leaves_a_readable_csv(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(tmp_path.parent)!r})
        from chatload.harness.recorder import Recorder, new_row
        rec = Recorder({str(tmp_path)!r}, "w3")
        for i in range(100):
            rec.record(new_row("StartChatContact", "ok", t_start=float(i), http_status=200, chat=str(i)))
        rec.flush()
        rec.record(new_row("StartChatContact", "ok", t_start=999.0, chat="lost"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env={"PYTHONPATH": str(root)}, timeout=60)
    assert done.returncode == -9
    frame = pd.read_csv(tmp_path / "w3.csv")
    assert len(frame) == 100 and "lost" not in frame["chat"].astype(str).tolist()
