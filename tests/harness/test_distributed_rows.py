"""Unit tests of how workers' rows reach the master (harness.shipping), how the master notes lost
workers (harness.workers) and the final meta.json with a lost worker (harness.finish)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pandas as pd
import pytest

from chatload.contracts import ATTEMPTS_COLUMNS as COLUMNS
from chatload.harness.pacer import Schedule
from chatload.harness.recorder import Recorder, new_row
from chatload.harness.runtime import shipping
from chatload.harness.runtime.coordinator import Run, write_final_meta
from chatload.harness.runtime.workers import STATE_MISSING, awaited, note_lost, share_of
from chatload.harness.scenario.model import Stage

STATE_RUNNING = "running"


def rows(n: int, worker: str = "w1") -> list[dict]:
    out = []
    for i in range(n):
        row = new_row("StartChatContact", "ok" if i % 3 else "throttled_tps", t_start=100.0 + i, latency_ms=2.5,
                      http_status=200 if i % 3 else 429, t_intended=99.5 + i, stage="s", chat=f"c{i}",
                      contact_id=f"id-{i}")  # fmt: skip
        row["worker"] = worker
        out.append(row)
    out.append({**new_row("StartChatContact", "dropped", t_start=200.0, attempts=0), "worker": worker})
    return out


def test_the_token_decides_whether_a_worker_ships(tmp_path):
    token = shipping.write_token(tmp_path)
    assert len(token) == 32 and (tmp_path / shipping.TOKEN_FILE).read_text() == token
    assert shipping.must_ship(tmp_path, token, environ={}) is False  # same filesystem
    assert shipping.must_ship(tmp_path, "another run's token", environ={}) is True
    assert shipping.must_ship(tmp_path / "elsewhere", token, environ={}) is True  # not there
    assert shipping.must_ship(tmp_path, None, environ={}) is True
    assert shipping.must_ship(tmp_path, token, environ={shipping.SHIP_ENV: "1"}) is True  # forced
    assert shipping.write_token(tmp_path) != token  # a new run, a new token
    shipping.remove_token(tmp_path)
    shipping.remove_token(tmp_path)  # twice is fine
    assert not (tmp_path / shipping.TOKEN_FILE).exists()


def test_rows_survive_the_wire_in_column_order(monkeypatch):
    monkeypatch.setattr(shipping, "MAX_ROWS_PER_MESSAGE", 4)
    sent = rows(9)
    payloads = list(shipping.rows_messages("run-1", "w1", sent))
    assert [len(p["rows"]) for p in payloads] == [4, 4, 2]
    assert all(p["run_id"] == "run-1" and p["worker"] == "w1" for p in payloads)
    assert payloads[0]["rows"][0][COLUMNS.index("operation")] == "StartChatContact"
    back = []
    for payload in payloads:  # through msgpack as Locust's messages (locust.rpc.protocol.Message) use it
        wire = msgpack.dumps(("chatload_rows", payload, "node"))
        data = msgpack.loads(wire, raw=False, strict_map_key=False)[1]
        back += shipping.rows_of(data)
    assert len(back) == len(sent)
    for mine, theirs in zip(sent, back, strict=True):
        assert list(theirs) == list(COLUMNS)
        for column in COLUMNS:
            a, b = mine[column], theirs[column]
            assert (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == b, (column, a, b)


@pytest.mark.parametrize("data", [{}, {"rows": "x"}, {"rows": [[1, 2]]}, {"rows": [None]}])
def test_a_malformed_rows_message_is_refused(data):
    with pytest.raises(ValueError):
        shipping.rows_of(data)


def test_a_shipping_recorder_writes_no_file_and_keeps_rows_it_could_not_send(tmp_path):
    batches: list[list[dict]] = []
    fail = [True]

    def ship(batch: list[dict]) -> None:
        if fail[0]:
            raise OSError("no master")
        batches.append(batch)

    rec = Recorder(tmp_path / "attempts", "w0", ship=ship)
    for row in rows(3):
        rec.record(row)
    assert rec.flush() == 0 and rec.pending == 4 and rec.ship_failures == 1
    fail[0] = False
    rec.record(rows(1)[0])
    assert rec.flush() == 5 and rec.pending == 0
    rec.record(rows(1)[0])
    assert rec.close() is None
    assert [len(b) for b in batches] == [5, 1] and rec.rows_written == 6
    assert all(r["worker"] == "w0" for b in batches for r in b)
    assert not (tmp_path / "attempts").exists()  # the worker wrote nothing itself


def test_the_inbox_appends_each_message_and_compacts_at_the_end(tmp_path):
    (tmp_path / "attempts").mkdir()
    inbox = shipping.Inbox(tmp_path)
    first, second = rows(5, "w1"), rows(2, "w1")
    for batch in (first, second):
        (payload,) = shipping.rows_messages("run", "w1", batch)
        inbox.receive(payload)
    csv_path = tmp_path / "attempts" / "w1.csv"
    assert len(pd.read_csv(csv_path)) == 9  # on disk at once: a master that dies keeps them
    (payload,) = shipping.rows_messages("run", "w0", rows(1, "w0"))
    inbox.receive(payload)
    inbox.close()
    assert sorted(p.name for p in (tmp_path / "attempts").iterdir()) == ["w0.parquet", "w1.parquet"]
    frame = pd.read_parquet(tmp_path / "attempts" / "w1.parquet")
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 9
    assert frame["latency_ms"].isna().sum() == 2 and (frame["worker"] == "w1").all()
    assert inbox.receive(payload) == 0  # after the end: not kept
    with pytest.raises(ValueError):
        inbox.receive({**payload, "worker": "../meta"})


@dataclass
class Node:
    id: str
    state: str = STATE_RUNNING


class FakeMaster:
    def __init__(self, *ids: str) -> None:
        self.clients = {i: Node(i) for i in ids}

    def get_worker_index(self, client_id: str) -> int:
        return int(client_id.removeprefix("node"))


def a_run(tmp_path: Path) -> Run:
    schedule = Schedule((Stage("s", 10.0, 5.0),))
    run = Run(None, "run", tmp_path, 10, 0.0, schedule)  # type: ignore[arg-type]
    run.meta = {"run_id": "run", "ended_at": None}
    return run


def test_a_missing_worker_is_noted_once_and_not_waited_for(tmp_path):
    master, run = FakeMaster("node0", "node1"), a_run(tmp_path)
    run.workers = ["w0", "w1"]
    known = {"node0", "node1"}
    assert note_lost(master, run, known, clock=lambda: 5.0) == known and run.lost_workers == []
    master.clients["node1"].state = STATE_MISSING
    assert note_lost(master, run, known, clock=lambda: 7.0) == {"node0"}
    assert note_lost(master, run, known, clock=lambda: 8.0) == {"node0"}
    assert run.lost_workers == [{"worker": "w1", "at": 7.0}]
    assert awaited(master, run) == {"w0"}
    run.done["w0"] = {"worker": "w0"}
    assert awaited(master, run) == set()
    del master.clients["node0"]  # gone before it reported: noted, not waited for
    run.done.clear()
    assert awaited(master, run) == set() and [w["worker"] for w in run.lost_workers] == ["w1", "w0"]


def test_share_messages():
    share = share_of({"index": 1, "count": 3, "t0": 0.0})
    assert share.fraction == pytest.approx(1 / 3) and share.phase == pytest.approx(2 / 3)


def test_final_meta_names_every_worker_and_the_lost_one(tmp_path):
    run = a_run(tmp_path)
    run.workers = ["w0"]  # after the loss only w0 had a share
    run.lose("w1", 12.5)
    run.done["w0"] = {"worker": "w0", "clean_up": {"ended": 3, "still_active": 0, "not_ended": []},
                      "arrivals": {"scheduled": 10, "started": 10, "dropped": 0}}  # fmt: skip
    write_final_meta(run)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["workers"] == ["w0", "w1"] and meta["lost_workers"] == [{"worker": "w1", "at": 12.5}]
    assert meta["clean_up"] == {"ended": 3, "still_active": 0, "not_ended": [], "unreported_workers": ["w1"]}
    assert meta["ended_at"] is not None and "shipped_rows" not in meta


@pytest.mark.e2e
def test_the_missing_state_is_locusts():
    import subprocess
    import sys

    code = (
        "import locust.runners as r, chatload.harness.runtime.workers as w; assert r.STATE_MISSING == w.STATE_MISSING"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2], timeout=60)


def test_rows_go_to_the_run_they_name_and_the_token_goes_at_the_end(tmp_path, caplog):
    run = a_run(tmp_path)
    (tmp_path / "attempts").mkdir()
    run.token, run.inbox = shipping.write_token(tmp_path), shipping.Inbox(tmp_path)
    (payload,) = shipping.rows_messages("run", "w3", rows(2, "w3"))
    shipping.deliver((None, run), payload)
    shipping.deliver((run,), {**payload, "run_id": "another run"})  # logged, not kept
    shipping.deliver((run,), {**payload, "rows": [[1]]})  # malformed: logged, not kept
    shipping.deliver((run,), "not a dict")
    assert "unknown run another run" in caplog.text and "not kept" in caplog.text
    shipping.close_run(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attempts"]  # token removed
    assert len(pd.read_parquet(tmp_path / "attempts" / "w3.parquet")) == 3


def test_a_lost_workers_share_goes_to_the_others_only_after_it_has_stopped(tmp_path):
    """A worker cut off from the master keeps offering its share until it notices the silence (5 s):
    the master hands that share to the others only LOSS_REBALANCE_DELAY_S after noting the loss, so
    the target never gets more than the plan. A worker that joins gets its share at once."""
    from chatload.harness.runtime.workers import LOSS_REBALANCE_DELAY_S, watch_workers

    master, run = FakeMaster("node0", "node1"), a_run(tmp_path)
    run.t0 = 0.0
    sent: list[tuple[float, dict, str]] = []
    clock = {"t": 0.0}
    master.send_message = lambda kind, data, client_id: sent.append((clock["t"], data, client_id))
    lost = []

    def sleep(seconds: float) -> None:
        clock["t"] += seconds
        if clock["t"] == 3.0:
            master.clients["node1"].state = STATE_MISSING
        if clock["t"] == 20.0:
            master.clients["node2"] = Node("node2")
        if clock["t"] >= 25.0:
            run.stopped = True

    watch_workers(master, run, sleep, on_lost=lost.append, clock=lambda: clock["t"])
    assert lost == ["w1"] and run.lost_workers == [{"worker": "w1", "at": 3.0}]
    times = sorted({t for t, _, _ in sent})
    assert times == [3.0 + LOSS_REBALANCE_DELAY_S, 20.0]  # the loss: delayed; the join: at once
    assert [(d["index"], d["count"], c) for t, d, c in sent if t == 9.0] == [(0, 1, "node0")]
    assert sorted((d["index"], d["count"], c) for t, d, c in sent if t == 20.0) == [(0, 2, "node0"), (1, 2, "node2")]
