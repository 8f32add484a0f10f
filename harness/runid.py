"""Run ids: `YYYYmmddTHHMMSSZ-<scenario>-<4 hex>` in UTC, so run folders sort by time."""

from __future__ import annotations

import re
import secrets
import time

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def new_run_id(scenario_name: str, now: float | None = None) -> str:
    """A fresh run id for a scenario; `now` is epoch seconds (default: the current time)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    name = _UNSAFE.sub("-", scenario_name).strip("-") or "run"
    return f"{stamp}-{name}-{secrets.token_hex(2)}"
