"""The chats a lost worker left open (harness/runtime/orphans.py): which contacts they are, from the
worker's rows and its StartChatContact intents, and the coordinator ending them on a real emulator."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.config import Config

from chatload.contracts import DEFAULT_CONTACT_FLOW_ID, DEFAULT_INSTANCE_ID
from chatload.emulator_control import running_emulator
from chatload.harness.recorder import Recorder, new_row
from chatload.harness.runtime.options import resolve
from chatload.harness.runtime.orphans import end_orphans, orphaned_contacts, unresolved_intents


def row(operation: str, outcome: str, contact: str, token: str = "") -> dict:
    return {"operation": operation, "outcome": outcome, "contact_id": contact, "stage": "s", "chat": "c",
            "client_token": token}  # fmt: skip


def test_started_ok_and_never_ended_ok():
    rows = [
        row("StartChatContact", "ok", "a", "ta"),
        row("StartChatContact", "ok", "b", "tb"),
        row("StopContact", "throttled_tps", "b"),  # a failed end leaves it open
        row("StartChatContact", "ok", "c", "tc"),
        row("DisconnectParticipant", "ok", "c"),
        row("StartChatContact", "throttled_concurrency", "", "td"),
    ]
    assert [c for c, _, _ in orphaned_contacts(rows)] == ["a", "b"]


def test_an_intent_without_an_answer_is_unresolved(tmp_path: Path):
    recorder = Recorder(tmp_path / "attempts", "w1")
    recorder.intend("t1", "s", "c1", 1.0)
    recorder.intend("t2", "s", "c2", 2.0)
    recorder.record(new_row("StartChatContact", "ok", t_start=1.0, contact_id="x", client_token="t1"))
    recorder.close(compact=False)
    with open(tmp_path / "attempts" / "w1.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["client_token"] == "t1"
    assert unresolved_intents(tmp_path, "w1", rows) == [("t2", "s", "c2")]
    assert not list((tmp_path / "attempts").glob("*intents*"))  # never read as an attempts file


@pytest.mark.e2e
def test_the_coordinator_ends_what_a_killed_worker_left_open(tmp_path: Path):
    with running_emulator({"rates": {"StartChatContact": {"rate": 100, "burst": 100}}}) as emu:
        client = boto3.client(
            "connect", endpoint_url=emu.url, region_name="us-east-1", aws_access_key_id="AKIDCHATLOAD",
            aws_secret_access_key="chatload", config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )  # fmt: skip
        start = {"InstanceId": DEFAULT_INSTANCE_ID, "ContactFlowId": DEFAULT_CONTACT_FLOW_ID,
                 "ParticipantDetails": {"DisplayName": "x"}}  # fmt: skip
        recorder = Recorder(tmp_path / "attempts", "w1")
        # recorded: one chat ended, one left open; unrecorded: a call answered but never written down
        for token in ("t-ended", "t-open", "t-unrecorded"):
            recorder.intend(token, "s", token, 0.0)
            contact = client.start_chat_contact(ClientToken=token, **start)["ContactId"]
            if token != "t-unrecorded":
                recorder.record(new_row("StartChatContact", "ok", t_start=0.0, contact_id=contact, client_token=token))
            if token == "t-ended":
                client.stop_contact(InstanceId=DEFAULT_INSTANCE_ID, ContactId=contact)
                recorder.record(new_row("StopContact", "ok", t_start=0.0, contact_id=contact))
        recorder.intend("t-never-sent", "s", "t-never-sent", 0.0)  # killed before the request left
        recorder.close(compact=False)
        assert emu.state()["instances"][DEFAULT_INSTANCE_ID]["active_chats"] == 2
        settings = resolve(SimpleNamespace(scenario="ci-smoke", endpoint_url=emu.url, rate_multiplier="1"))
        summaries = end_orphans(settings, tmp_path, ["w1"])
        state = emu.state()
    # the open chat, the unrecorded one, and the one the replay started: all ended
    assert summaries["w1"]["ended"] == 3 and summaries["w1"]["still_active"] == 0, summaries
    assert state["instances"][DEFAULT_INSTANCE_ID]["active_chats"] == 0
    assert state["operations"]["StartChatContact"]["idempotent_replays"] == 1  # t-unrecorded's replay
