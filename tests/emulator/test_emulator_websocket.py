"""The chat websocket, the simulated flow and agent: a real websocket client and boto3 against the emulator."""

import json
import time

import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import connect_client, error_of, participant_client, wait_for
from support import start_chat as start

from chatload.contracts import DEFAULT_INSTANCE_ID as INSTANCE
from chatload.emulator.clock import FakeClock
from chatload.emulator.config import ConfigError, EmulatorConfig, merge_config
from chatload.emulator.model import Call, ChatStore
from chatload.emulator.validation import Validators
from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e
ROOMY = {
    "rates": {"default": {"rate": 1000, "burst": 1000}, "StartChatContact": {"rate": 1000, "burst": 1000}},
    "participant_rates": {"default": {"rate": 1000, "burst": 1000}},
}
QUIET = {"emulator": {"time_scale": 1.0}, "flow": {"greeting": ""}, "agents": {"join": False, "reply_think": False}}
EV = "application/vnd.amazonaws.connect.event."


def transcript_has(p, token, n):
    return wait_for(lambda: len(p.get_transcript(ConnectionToken=token, MaxResults=100)["Transcript"]) >= n)


@pytest.fixture(scope="module")
def emu():
    with running_emulator(ROOMY) as handle:
        yield handle


@pytest.fixture
def fresh(emu):
    emu.put_config(QUIET)
    emu.reset()
    return emu


def join(emu, chat):
    p = participant_client(emu.url)
    out = p.create_participant_connection(
        ParticipantToken=chat["ParticipantToken"], Type=["WEBSOCKET", "CONNECTION_CREDENTIALS"]
    )
    return p, out["ConnectionCredentials"]["ConnectionToken"], out["Websocket"]["Url"]


def reconnect_url(emu, chat):
    return join(emu, chat)[2]


SUBSCRIBE = '{"topic":"aws/subscribe","content":{"topics":["aws/chat"]}}'
SUBSCRIBED = '{"topic":"aws/subscribe","content":{"status":"success","topics":["aws/chat"]}}'


def open_socket(url, subscribe=True):
    ws = websocket.create_connection(url, timeout=5)
    if subscribe:
        ws.send(SUBSCRIBE)
        assert ws.recv() == SUBSCRIBED
    return ws


def next_item(ws):
    """The transcript Item of the socket's next frame, which must be on aws/chat."""
    frame = json.loads(ws.recv())
    assert frame["topic"] == "aws/chat" and frame["contentType"] == "application/json", frame
    return json.loads(frame["content"])


def listed(item):
    """A pushed Item as boto3's GetTranscript shows it (its model has no InitialContactId in Item)."""
    return {k: v for k, v in item.items() if k != "InitialContactId"}


def said(item):
    """(role, what): a message's Content, an event's name."""
    return item["ParticipantRole"], item["ContentType"].removeprefix(EV) if item["Type"] == "EVENT" else item["Content"]


def items_until(ws, last_type):
    """Items pushed on aws/chat up to and including the first of ContentType `last_type`."""
    out = []
    while True:
        frame = json.loads(ws.recv())
        assert frame["topic"] == "aws/chat" and frame["contentType"] == "application/json"
        out.append(json.loads(frame["content"]))
        if out[-1]["ContentType"] == last_type:
            return out


def refused(url):
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        websocket.create_connection(url, timeout=5)
    return caught.value.status_code


def test_url_shape_and_protocol_answers_byte_for_byte(fresh):
    _, _, url = join(fresh, start(connect_client(fresh.url)))
    assert url.startswith(f"ws://127.0.0.1:{fresh.port}/connect/")
    ws = open_socket(url, subscribe=False)
    ws.send('{"topic":"aws/subscribe","content":{"topics":["aws/chat"]}}')
    assert ws.recv() == '{"topic":"aws/subscribe","content":{"status":"success","topics":["aws/chat"]}}'
    ws.send('{"topic":"aws/heartbeat"}')
    assert ws.recv() == '{"topic":"aws/heartbeat"}'
    ws.send('{"topic":"aws/ping"}')
    assert json.loads(ws.recv()) == {"topic": "aws/ping", "statusCode": 200, "statusContent": "OK"}
    ws.send("nonsense")
    error = json.loads(ws.recv())
    assert "topic" not in error and error["message"] and {"connectionId", "requestId"} <= set(error)
    ws.close()


def test_push_order_on_two_sockets_equals_the_transcript(fresh):
    fresh.put_config({"agents": {"join": {"distribution": "fixed", "mean": "0.3s"}, "reply_think": "0.05s"}})
    connect = connect_client(fresh.url)
    chat = start(connect)
    p, token, url = join(fresh, chat)
    first = open_socket(url)
    second = open_socket(reconnect_url(fresh, chat))  # make-before-break: both open
    assert items_until(first, EV + "participant.joined")[0]["ParticipantRole"] == "AGENT"
    items_until(second, EV + "participant.joined")
    for n, text in ((3, "one"), (5, "two")):
        p.send_message(ConnectionToken=token, ContentType="text/plain", Content=text)
        assert transcript_has(p, token, n)
    transcript = p.get_transcript(ConnectionToken=token, ScanDirection="FORWARD", MaxResults=100)["Transcript"]
    p.disconnect_participant(ConnectionToken=token)
    seen = [[items_until(ws, EV + "chat.ended")] for ws in (first, second)]
    for (pushed,) in seen:
        assert [i["Id"] for i in pushed[:4]] == [i["Id"] for i in transcript[1:]]
        assert [(i["ParticipantRole"], i.get("Content", i["ContentType"].removeprefix(EV))) for i in pushed] == [
            ("CUSTOMER", "one"),
            ("AGENT", "Agent reply 1"),
            ("CUSTOMER", "two"),
            ("AGENT", "Agent reply 2"),
            ("CUSTOMER", "participant.left"),
            ("AGENT", "participant.left"),
            ("SYSTEM", "chat.ended"),
        ]
        assert pushed[0]["ContactId"] == chat["ContactId"] and pushed[0]["InitialContactId"] == chat["ContactId"]
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        first.recv()
        first.recv()
    assert wait_for(lambda: fresh.state()["websocket"]["open"] == 0)
    sockets = fresh.state()["websocket"]
    assert sockets["opened"] == 2 and sockets["closed_by_server"] == 2 and sockets["frames_pushed"] == 2 * 8


def test_send_event_is_pushed_in_order_with_messages_on_every_socket(fresh):
    fresh.put_config({"agents": {"join": {"distribution": "fixed", "mean": "0.3s"}, "reply_think": "0.05s"}})
    chat = start(connect_client(fresh.url))
    p, token, url = join(fresh, chat)
    sockets = [open_socket(url), open_socket(reconnect_url(fresh, chat))]
    for ws in sockets:
        items_until(ws, EV + "participant.joined")
    p.send_event(ConnectionToken=token, ContentType=EV + "typing")
    p.send_message(ConnectionToken=token, ContentType="text/plain", Content="one")
    assert transcript_has(p, token, 4)  # joined, typing, one, the agent's reply
    reply = p.get_transcript(ConnectionToken=token, MaxResults=1)["Transcript"][-1]
    receipt = json.dumps({"messageId": reply["Id"]})
    p.send_event(ConnectionToken=token, ContentType=EV + "message.read", Content=receipt)
    transcript = p.get_transcript(ConnectionToken=token, ScanDirection="FORWARD", MaxResults=100)["Transcript"]
    p.disconnect_participant(ConnectionToken=token)
    for ws in sockets:
        pushed = items_until(ws, EV + "chat.ended")
        assert [listed(i) for i in pushed[:4]] == transcript[1:]  # the very Items GetTranscript returns
        assert [said(i) for i in pushed] == [
            ("CUSTOMER", "typing"),
            ("CUSTOMER", "one"),
            ("AGENT", "Agent reply 1"),  # one reply: an event never prompts the agent
            ("CUSTOMER", "message.read"),
            ("CUSTOMER", "participant.left"),
            ("AGENT", "participant.left"),
            ("SYSTEM", "chat.ended"),
        ]
        assert pushed[3]["Content"] == receipt and "Content" not in pushed[0]
    assert wait_for(lambda: fresh.state()["websocket"]["open"] == 0)
    assert fresh.state()["websocket"]["frames_pushed"] == 2 * 8


@pytest.mark.parametrize("open_early", [False, True], ids=["socket-opened-late", "socket-opened-early"])
def test_a_late_subscriber_gets_the_held_greeting_first_on_subscribing(fresh, open_early):
    fresh.put_config({"emulator": {"time_scale": 10}, "flow": {"greeting": "Welcome!", "greeting_delay": "1s"}})
    began = time.monotonic()
    chat = start(connect_client(fresh.url))
    p, token, url = join(fresh, chat)
    ws = websocket.create_connection(url, timeout=5) if open_early else None  # open, not subscribed
    assert transcript_has(p, token, 1)  # no socket subscribed: GetTranscript has it after greeting_delay
    [greeting] = p.get_transcript(ConnectionToken=token)["Transcript"]
    assert said(greeting) == ("SYSTEM", "Welcome!")
    time.sleep(max(0.0, began + 0.2 - time.monotonic()))  # 2 emulated seconds after the start
    ws = ws or websocket.create_connection(url, timeout=5)
    ws.send(SUBSCRIBE)
    subscribed = time.monotonic()
    assert ws.recv() == SUBSCRIBED
    assert listed(next_item(ws)) == greeting  # the first aws/chat frame: the same Item, Id and AbsoluteTime
    assert time.monotonic() - subscribed < 0.5
    p.send_message(ConnectionToken=token, ContentType="text/plain", Content="hi")
    assert said(next_item(ws)) == ("CUSTOMER", "hi")  # then live items, in order
    refreshed = open_socket(reconnect_url(fresh, chat))  # a later subscription gets live items only
    p.send_message(ConnectionToken=token, ContentType="text/plain", Content="again")
    assert said(next_item(refreshed)) == said(next_item(ws)) == ("CUSTOMER", "again")
    ws.close()
    refreshed.close()
    assert wait_for(lambda: fresh.state()["websocket"]["open"] == 0)
    sockets = fresh.state()["websocket"]
    assert (sockets["opened"], sockets["closed_by_client"], sockets["refused"]) == (2, 2, 0)
    assert sockets["frames_pushed"] == 4  # greeting, hi, again on the first socket; again on the second
    assert sockets["frames_received"] == 2  # the two subscribe frames


def test_an_early_subscriber_gets_the_greeting_at_greeting_delay(fresh):
    fresh.put_config({"flow": {"greeting": "Welcome!", "greeting_delay": "1s"}})  # time_scale 1
    began = time.monotonic()
    chat = start(connect_client(fresh.url))
    p, token, url = join(fresh, chat)
    ws = open_socket(url)
    assert time.monotonic() - began < 0.9, "set-up too slow to subscribe before the greeting is due"
    greeting = next_item(ws)
    assert 0.98 <= time.monotonic() - began < 1.5
    assert said(greeting) == ("SYSTEM", "Welcome!")
    assert p.get_transcript(ConnectionToken=token)["Transcript"] == [listed(greeting)]
    ws.close()
    assert wait_for(lambda: fresh.state()["websocket"]["open"] == 0)
    assert fresh.state()["websocket"]["frames_pushed"] == 1  # pushed once, never again on subscribing


def test_the_first_subscription_gets_flow_and_agent_items_before_it_but_not_the_customers_own(fresh):
    fresh.put_config(
        {
            "emulator": {"time_scale": 10},
            "flow": {"greeting": "Welcome!", "greeting_delay": "1s"},
            "agents": {"join": {"distribution": "fixed", "mean": "2s"}, "reply_think": "1s"},
        }
    )
    chat = start(connect_client(fresh.url), InitialMessage={"ContentType": "text/plain", "Content": "first words"})
    p, token, url = join(fresh, chat)
    ws = websocket.create_connection(url, timeout=5)  # open, not subscribed
    assert transcript_has(p, token, 3)  # the initial message, the greeting, the agent joined
    p.send_message(ConnectionToken=token, ContentType="text/plain", Content="anyone?")
    assert transcript_has(p, token, 5)  # and the agent's reply
    ws.send(SUBSCRIBE)
    assert ws.recv() == SUBSCRIBED
    held = [next_item(ws) for _ in range(3)]
    transcript = p.get_transcript(ConnectionToken=token, ScanDirection="FORWARD", MaxResults=100)["Transcript"]
    assert [listed(i) for i in held] == [i for i in transcript if i["ParticipantRole"] != "CUSTOMER"]
    assert [said(i) for i in held] == [
        ("SYSTEM", "Welcome!"),
        ("AGENT", "participant.joined"),
        ("AGENT", "Agent reply 1"),
    ]
    p.send_message(ConnectionToken=token, ContentType="text/plain", Content="thanks")
    assert said(next_item(ws)) == ("CUSTOMER", "thanks")  # nothing of the customer's own was replayed
    ws.close()


@pytest.mark.parametrize("way", ["disconnect", "stop", "duration"])
def test_chat_ended_is_pushed_on_each_way_a_chat_ends(fresh, way):
    connect = connect_client(fresh.url)
    chat = start(connect, ChatDurationInMinutes=60)
    p, token, url = join(fresh, chat)
    ws = open_socket(url)
    if way == "disconnect":
        p.disconnect_participant(ConnectionToken=token)
    elif way == "stop":
        connect.stop_contact(InstanceId=INSTANCE, ContactId=chat["ContactId"])
    else:
        fresh.put_config({"emulator": {"time_scale": 36000}})  # 60 emulated minutes in 0.1 s, no request
    pushed = items_until(ws, EV + "chat.ended")
    assert pushed[-1]["Type"] == "EVENT" and pushed[-1]["ParticipantRole"] == "SYSTEM"
    reason = {"disconnect": "CUSTOMER_DISCONNECT", "stop": "API", "duration": "EXPIRED"}[way]
    fresh.put_config({"emulator": {"time_scale": 1.0}})
    assert fresh.state()["chats_ended"][reason] == 1
    assert refused(url) == 403  # an ended chat's URL is refused


def test_unconnected_timeout_ends_with_chat_ended_in_the_transcript(validators):
    config = merge_config(EmulatorConfig(), {"emulator": {"unconnected_timeout_s": 5}, "flow": {"greeting": ""}})
    store = ChatStore(config, clock=FakeClock(), validators=validators)
    chat = store.handle(
        "StartChatContact",
        Call(
            body={
                "InstanceId": INSTANCE,
                "ContactFlowId": next(iter(config.instances.values())).contact_flows[0],
                "ParticipantDetails": {"DisplayName": "Ann"},
            },
            access_key="AKID",
        ),
    )
    seen = []
    store.observer = type(
        "O",
        (),
        {
            "item": lambda s, c, i: seen.append(i),
            "ended": lambda s, c: None,
            "reset": lambda s: None,
            "state": lambda s: {},
        },
    )()
    store.clock.advance(6)
    store.advance(store.clock.now())
    contact = store.contacts[chat["ContactId"]]
    assert contact.disconnect_reason == "CUSTOMER_CONNECTION_NOT_ESTABLISHED"
    assert [i["ContentType"] for i in seen] == [EV + "chat.ended"] and contact.messages[-1] is seen[0]


@pytest.fixture(scope="module")
def validators():
    return Validators.from_botocore()


def test_url_expiry_and_socket_limit_and_counters(fresh):
    connect = connect_client(fresh.url)
    chat = start(connect)
    urls = [reconnect_url(fresh, chat) for _ in range(7)]
    sockets = [open_socket(u, subscribe=False) for u in urls[:5]]
    assert refused(urls[5]) == 403  # a sixth socket of the participant (limit 5)
    sockets.pop().close()
    sockets.append(open_socket(urls[5], subscribe=False))
    fresh.put_config({"emulator": {"time_scale": 1000}})  # 100 emulated seconds pass in 0.1 s
    time.sleep(0.3)
    sockets.pop().close()
    assert refused(urls[6]) == 403  # late
    fresh.put_config({"emulator": {"time_scale": 1.0}})
    sockets[0].send('{"topic":"aws/heartbeat"}')
    assert sockets[0].recv() == '{"topic":"aws/heartbeat"}'  # open sockets do not expire
    for ws in sockets:
        ws.close()
    assert wait_for(lambda: fresh.state()["websocket"]["open"] == 0)
    state = fresh.state()["websocket"]
    assert state == {
        "open": 0,
        "opened": 6,
        "closed_by_client": 6,
        "closed_by_server": 0,
        "refused": 2,
        "frames_pushed": 0,
        "frames_received": 1,
        "heartbeats": 1,
    }
    assert refused(f"ws://127.0.0.1:{fresh.port}/connect/nope") == 403


def test_flow_greeting_and_agent_on_the_emulated_clock(fresh):
    fresh.put_config(
        {
            "emulator": {"time_scale": 100},
            "flow": {"greeting": "Thanks for contacting us.", "greeting_delay": "10s"},
            "agents": {
                "join": {"distribution": "fixed", "mean": "20s"},  # after the greeting, whatever the draw
                "reply_think": "5s",
                "end_after_exchanges": 2,
            },
        }
    )
    chat = start(connect_client(fresh.url))
    began = time.monotonic()
    p, token, url = join(fresh, chat)
    ws = open_socket(url)
    greeting = items_until(ws, "text/plain")[-1]
    assert (greeting["ParticipantRole"], greeting["Content"]) == ("SYSTEM", "Thanks for contacting us.")
    assert 0.05 < time.monotonic() - began < 1.0  # 10 emulated s at time_scale 100
    assert items_until(ws, EV + "participant.joined")[-1]["ParticipantRole"] == "AGENT"
    pushed = []
    for text in ("hi", "still there?"):
        p.send_message(ConnectionToken=token, ContentType="text/plain", Content=text)
        pushed += items_until(ws, "text/plain")  # own echo
        pushed += items_until(ws, "text/plain")  # the agent's reply after 5 emulated s
    assert [(i["ParticipantRole"], i["Content"]) for i in pushed] == [
        ("CUSTOMER", "hi"),
        ("AGENT", "Agent reply 1"),
        ("CUSTOMER", "still there?"),
        ("AGENT", "Agent reply 2"),
    ]
    rest = items_until(ws, EV + "chat.ended")
    assert [(i["ParticipantRole"], i["ContentType"]) for i in rest] == [
        ("AGENT", EV + "participant.left"),
        ("SYSTEM", EV + "chat.ended"),
    ]
    assert fresh.state()["chats_ended"]["AGENT_DISCONNECT"] == 1
    assert (
        error_of(p.send_message, ConnectionToken=token, ContentType="text/plain", Content="x")["Error"]["Code"]
        == "AccessDeniedException"
    )


def test_config_keys_and_errors():
    config = merge_config(
        EmulatorConfig(),
        {
            "flow": {"greeting": "Hi", "greeting_delay": "2s"},
            "agents": {
                "join": {"distribution": "exponential", "mean": "5s"},
                "reply_think": "2s",
                "end_after_exchanges": 3,
            },
            "websocket": {"max_sockets_per_participant": 2},
        },
    )
    assert (config.flow_greeting, config.flow_greeting_delay_s) == ("Hi", 2.0)
    assert (config.agent_join, config.agent_reply_think_s, config.agent_end_after_exchanges) == (
        ("exponential", 5.0),
        2.0,
        3,
    )
    assert config.max_sockets_per_participant == 2
    defaults = EmulatorConfig()
    assert defaults.flow_greeting == "Thanks for contacting us." and defaults.agent_join is None
    for bad, key in [
        ({"flow": {"tone": 1}}, "flow.tone"),
        ({"agents": {"join": {"distribution": "poisson"}}}, "agents.join.distribution"),
        ({"agents": {"end_after_exchanges": -1}}, "agents.end_after_exchanges"),
        ({"websocket": {"max_sockets_per_participant": 0}}, "websocket.max_sockets_per_participant"),
    ]:
        with pytest.raises(ConfigError, match=key):
            merge_config(EmulatorConfig(), bad, "t")


@pytest.fixture(scope="module")
def fuzz_pair():
    with running_emulator({**ROOMY, "flow": {"greeting": ""}}) as handle:
        connect = connect_client(handle.url)
        victim = open_socket(join(handle, start(connect))[2])
        target = open_socket(join(handle, start(connect))[2])
        yield handle, victim, target


frames = st.one_of(
    st.text(max_size=200),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda kids: (
            st.lists(kids, max_size=4)
            | st.dictionaries(st.sampled_from(["topic", "content", "topics", "x"]), kids, max_size=4)
        ),
        max_leaves=10,
    ).map(json.dumps),
    st.sampled_from(['{"topic":"aws/subscribe","content":{"topics":"aws/chat"}}', '{"topic":null}', "[]", "{"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames)
def test_fuzz_frames_never_crash_or_touch_another_chat(fuzz_pair, frame):
    handle, victim, target = fuzz_pair
    target.send(frame)
    assert target.recv()  # every frame gets an answer
    victim.send('{"topic":"aws/ping"}')
    assert victim.recv() == '{"topic":"aws/ping","statusCode":200,"statusContent":"OK"}'
    assert handle.health()["status"] == "ok"
