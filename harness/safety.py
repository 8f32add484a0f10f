"""Safety for real instances: caps, the kill switch, the chat budget and the clean-up tally (pure).

Nothing here imports locust, gevent or boto3, reads a clock or sleeps: callers pass times and outcomes.

- Caps: a maximum number of chats per run, a maximum arrival rate and a maximum share of unexpected
  errors. Targets of kind "aws" get safe defaults when the scenario leaves them unset; a flag beats the
  scenario's [safety] key, which beats the default. The emulator has no caps unless asked for.
- KillSwitch: trips when, within a sliding window, the share of unexpected errors among calls passes
  the limit (after at least min_calls calls). Throttles by class (throttled_tps,
  throttled_concurrency) are what a throttling test measures, so they never count; a 429 of unknown
  meaning (throttled_unknown) does. Dropped arrivals are not calls, nor are the chat socket's
  measurements (a FirstResponse times out whenever the flow sends nothing before the chat ends).
- ChatBudget: how many more chats may start.
- Clean-up: what a StopContact answer means for a contact, and the meta.json "clean_up" entry.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatload.contracts import CHAT_EXPERIENCE_OPERATIONS, DROPPED, UNEXPECTED_OUTCOMES
from chatload.harness.scenario import model as scenario_model

# Safe defaults for target kind "aws" (docs/real-instance.md): the stricter of ours and those the
# scenario loader fills into [safety] for kind = "aws" files (harness.scenario_model), so a scenario
# file with kind = "aws" and an emulator scenario run with --target aws get the same caps.
AWS_DEFAULT_MAX_CHATS = min(1000, scenario_model.AWS_DEFAULT_MAX_CHATS)
AWS_DEFAULT_MAX_RATE = min(10.0, scenario_model.AWS_DEFAULT_MAX_RATE)  # chats/s; AWS's default quota is 5/s
AWS_DEFAULT_MAX_ERROR_SHARE = min(0.10, scenario_model.AWS_DEFAULT_MAX_ERROR_SHARE)
_LOADER_DEFAULTS = {
    "max_chats": scenario_model.AWS_DEFAULT_MAX_CHATS,
    "max_rate": scenario_model.AWS_DEFAULT_MAX_RATE,
    "max_error_share": scenario_model.AWS_DEFAULT_MAX_ERROR_SHARE,
}

UNEXPECTED = frozenset(UNEXPECTED_OUTCOMES)
NOT_A_CALL = frozenset({DROPPED})
NOT_AN_API_CALL = frozenset(CHAT_EXPERIENCE_OPERATIONS)  # the chat socket's rows: no load on the service


@dataclass(frozen=True)
class Caps:
    """Limits of one run; None = no limit. `sources` says where each limit came from."""

    max_chats: int | None = None
    max_rate: float | None = None
    max_error_share: float | None = None
    sources: dict[str, str] = field(default_factory=dict)


def effective_caps(
    scenario: Any,
    max_chats: int | None = None,
    max_rate: float | None = None,
    max_error_share: float | None = None,
) -> Caps:
    """The caps in force: the flag if given, else the scenario's [safety] value, else the default.

    Defaults apply to target kind "aws" only (AWS_DEFAULT_*: 500 chats, 5 chats/s, 10% unexpected
    errors); the emulator runs uncapped unless a flag or the scenario sets a cap.
    """
    safety = getattr(scenario, "safety", None)
    real = scenario.target.kind == "aws"
    defaults = {
        "max_chats": AWS_DEFAULT_MAX_CHATS if real else None,
        "max_rate": AWS_DEFAULT_MAX_RATE if real else None,
        "max_error_share": AWS_DEFAULT_MAX_ERROR_SHARE if real else None,
    }
    flags = {"max_chats": max_chats, "max_rate": max_rate, "max_error_share": max_error_share}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, flag_value in flags.items():
        scenario_value = getattr(safety, key, None) if safety is not None else None
        if flag_value is not None:
            values[key], sources[key] = flag_value, "--" + key.replace("_", "-")
        elif scenario_value is not None:
            # the loader fills its default into kind = "aws" files: label it as a default
            loader_default = real and scenario_value == _LOADER_DEFAULTS[key]
            values[key] = scenario_value
            sources[key] = "default for real instances" if loader_default else f"{key} under [safety]"
        elif defaults[key] is not None:
            values[key], sources[key] = defaults[key], "default for real instances"
        else:
            values[key] = None
    return Caps(sources=sources, **values)


def check_caps(plan: Any, caps: Caps) -> str | None:
    """One line refusing a schedule that goes past max_rate or max_chats (and how to raise them)."""
    problems = []
    if caps.max_rate is not None and plan.peak_rate > caps.max_rate + 1e-9:
        problems.append(
            f"the schedule's peak arrival rate {plan.peak_rate:g} chats/s exceeds the cap {caps.max_rate:g}/s "
            f"({caps.sources.get('max_rate', 'cap')}); raise it with --max-rate {plan.peak_rate:g} "
            f"or max_rate = {plan.peak_rate:g} under [safety] in the scenario"
        )
    if caps.max_chats is not None and plan.planned_chats > caps.max_chats:
        problems.append(
            f"the schedule plans {plan.planned_chats} chats, more than the cap {caps.max_chats} "
            f"({caps.sources.get('max_chats', 'cap')}); raise it with --max-chats {plan.planned_chats} "
            f"or max_chats = {plan.planned_chats} under [safety] in the scenario"
        )
    return "; ".join(problems) or None


class KillSwitch:
    """Early stop when unexpected errors pass `max_error_share` of the calls in the last `window_s`.

    feed(t, outcome) with t in seconds (any monotonic origin); the window is (latest t - window_s,
    latest t]. It trips once at least `min_calls` calls are in the window and the share of unexpected
    outcomes exceeds the limit, and then stays tripped. max_error_share None = never trips.
    """

    def __init__(self, max_error_share: float | None, min_calls: int = 50, window_s: float = 30.0) -> None:
        self.max_error_share = max_error_share
        self.min_calls = min_calls
        self.window_s = window_s
        self._calls: deque[tuple[float, str]] = deque()
        self._errors: Counter[str] = Counter()
        self._latest = float("-inf")
        self._reason: str | None = None

    @property
    def tripped(self) -> str | None:
        """Why the run must stop (one line), or None while all is well."""
        return self._reason

    def feed(self, t: float, outcome: str, operation: str = "") -> str | None:
        """Count one call's outcome; returns the trip reason once tripped. A row of the chat socket
        (`operation` one of CHAT_EXPERIENCE_OPERATIONS) is no API call and does not count."""
        if outcome in NOT_A_CALL or operation in NOT_AN_API_CALL or self.max_error_share is None:
            return self._reason
        self._latest = max(self._latest, t)
        self._calls.append((t, outcome))
        if outcome in UNEXPECTED:
            self._errors[outcome] += 1
        horizon = self._latest - self.window_s
        while self._calls and self._calls[0][0] <= horizon:
            _, old = self._calls.popleft()
            if old in UNEXPECTED:
                self._errors[old] -= 1
        if self._reason is None:
            self._check()
        return self._reason

    def _check(self) -> None:
        calls = len(self._calls)
        errors = sum(self._errors.values())
        if calls < self.min_calls or errors / calls <= (self.max_error_share or 0.0):
            return
        by_kind = ", ".join(f"{kind} {n}" for kind, n in self._errors.most_common() if n > 0)
        self._reason = (
            f"kill switch: {errors} of {calls} calls in the last {self.window_s:g} s were unexpected errors "
            f"({errors / calls:.0%}: {by_kind}), above the limit {self.max_error_share:.0%}; "
            "the run stopped early (raise the limit with max_error_share under [safety])"
        )


class ChatBudget:
    """Counts chats started against max_chats (None = unlimited)."""

    def __init__(self, max_chats: int | None) -> None:
        self.max_chats = max_chats
        self.taken = 0

    def take(self) -> bool:
        """True and counts one chat if another may start; False once the budget is spent."""
        if self.max_chats is not None and self.taken >= self.max_chats:
            return False
        self.taken += 1
        return True

    @property
    def remaining(self) -> int | None:
        return None if self.max_chats is None else max(0, self.max_chats - self.taken)


# ---------------------------------------------------------------- clean-up

ENDED, ALREADY_ENDED, RETRY, FAILED = "ended", "already_ended", "retry", "failed"
_RETRY_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "LimitExceededException", "429",
     "InternalServiceException", "ServiceUnavailableException"}
)  # fmt: skip


def stop_result(http_status: int, error_code: str = "") -> str:
    """What a StopContact answer means: ended, already_ended (410 ContactNotFoundException),
    retry (throttled, 5xx or no response: http_status 0) or failed (any other refusal)."""
    if 200 <= http_status < 300:
        return ENDED
    if error_code == "ContactNotFoundException" or http_status == 410:
        return ALREADY_ENDED
    if error_code in _RETRY_CODES or http_status == 0 or http_status == 429 or http_status >= 500:
        return RETRY
    return FAILED


def clean_up_summary(results: Mapping[str, str]) -> dict[str, Any]:
    """meta.json "clean_up" from contact id -> final stop_result: ended (incl. already ended),
    still_active (contacts the run could not end) and their ids in not_ended (sorted)."""
    not_ended = sorted(contact for contact, result in results.items() if result not in (ENDED, ALREADY_ENDED))
    return {"ended": len(results) - len(not_ended), "still_active": len(not_ended), "not_ended": not_ended}


def format_clean_up(summary: Mapping[str, Any], instance_id: str = "INSTANCE_ID") -> str:
    """Lines for the console and the report: how many were ended, and how to end those left over."""
    ended, left = summary["ended"], summary["still_active"]
    lines = [f"clean-up: {ended} contact{'' if ended == 1 else 's'} ended, {left} could not be ended"]
    for contact in summary.get("not_ended", []):
        lines.append(f"  aws connect stop-contact --instance-id {instance_id} --contact-id {contact}")
    if summary.get("not_ended"):
        lines.append("  (or end them from Contact search in the Amazon Connect console; unended chats last 25 h)")
    return "\n".join(lines)
