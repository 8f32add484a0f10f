"""chatload: Amazon Connect chat customers for Locust, with every throttle classified.

    locust -f locustfile.py --headless --scenario scenarios/ci-smoke.toml

Users do not make the load: a pacer starts chats at the scenario's arrival rate and hands each
arrival to an idle user, who lives through one chat (docs/harness.md). Without --endpoint-url the
emulator target is http://127.0.0.1:8700 (start it with `chatload emulator`).
"""

from locust import User, constant, events, task  # gevent's patching comes before boto3

from harness import options, session
from harness.shape import ChatloadShape


@events.init_command_line_parser.add_listener
def add_chatload_options(parser, **_kwargs):
    options.add_arguments(parser)


@events.init.add_listener
def start_chatload_session(environment, **_kwargs):
    session.attach(environment)


class ChatCustomer(User):
    """Waits for an arrival, then lives one chat: start, connect, messages, hold, disconnect."""

    wait_time = constant(0)

    def on_start(self):
        self.customer = self.environment.chatload.new_customer()

    @task
    def live_one_chat(self):
        arrival = self.customer and self.environment.chatload.next_arrival()
        if arrival:
            self.customer.live_chat(arrival)


class ChatStages(ChatloadShape):
    """The scenario's stages: a pool of users big enough for the arrival rate, then stop."""
