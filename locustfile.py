"""chatload: Amazon Connect chat customers for Locust, with every throttle classified.

    locust -f locustfile.py --headless --scenario ci-smoke

Users do not make the load: a pacer starts chats at the scenario's arrival rate and hands each
arrival to an idle user, who lives through one chat (docs/harness.md). The target is --endpoint-url,
else AWS_ENDPOINT_URL_CONNECT / AWS_ENDPOINT_URL_CONNECTPARTICIPANT / AWS_ENDPOINT_URL, else the
emulator at http://127.0.0.1:8700 (start it with `chatload emulator`).
"""

from locust import User, constant, events, task  # gevent's patching comes before boto3

from chatload.harness.runtime import options, roles
from chatload.harness.runtime.shape import ChatloadShape


@events.init_command_line_parser.add_listener
def add_chatload_options(parser, **_kwargs):
    options.add_arguments(parser)


@events.init.add_listener
def attach_chatload(environment, **_kwargs):
    roles.attach(environment)  # coordinator and/or load process, by the runner


class ChatCustomer(User):
    """Waits for an arrival, then lives one chat: start, connect, messages, hold, disconnect."""

    wait_time = constant(0)

    def on_start(self):
        self.load = roles.load_process_of(self.environment)
        self.customer = self.load and self.load.new_customer()

    @task
    def live_one_chat(self):
        arrival = self.customer and self.load.next_arrival()
        if arrival:
            self.customer.live_chat(arrival)


class ChatStages(ChatloadShape):
    """The scenario's stages: a pool of users big enough for the arrival rate, then stop."""
