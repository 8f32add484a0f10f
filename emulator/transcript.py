"""GetTranscript paging over one chat's messages (pure).

Messages are kept in the order they were sent. A page starts at a position and scans FORWARD (towards
newer) or BACKWARD (towards older, AWS's default) for MaxResults items (default 15); SortOrder
(ASCENDING by default) orders the returned page. Without StartPosition a BACKWARD scan starts at the
most recent message and a FORWARD scan at the oldest. StartPosition.Id starts at that message,
StartPosition.MostRecent = n at the n-th most recent (0 = the latest), StartPosition.AbsoluteTime at
the first message at or after (FORWARD) / last at or before (BACKWARD) that time. NextToken is
opaque to clients: "<index>:<direction>".
"""

from __future__ import annotations

from typing import Any

DEFAULT_PAGE = 15


class BadPosition(ValueError):
    """The request names a start position or NextToken that does not exist; message names the field."""


def _start_index(items: list[dict[str, Any]], forward: bool, position: dict[str, Any] | None) -> int:
    n = len(items)
    if not position:
        return 0 if forward else n - 1
    if position.get("Id") is not None:
        for i, item in enumerate(items):
            if item["Id"] == position["Id"]:
                return i
        raise BadPosition("StartPosition.Id: no such message in this chat")
    if position.get("MostRecent") is not None:
        return max(-1, n - 1 - int(position["MostRecent"]))
    if position.get("AbsoluteTime") is not None:
        at = position["AbsoluteTime"]
        if forward:
            return next((i for i, item in enumerate(items) if item["AbsoluteTime"] >= at), n)
        return next((i for i in range(n - 1, -1, -1) if items[i]["AbsoluteTime"] <= at), -1)
    return 0 if forward else n - 1


def page(items: list[dict[str, Any]], request: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The items of one GetTranscript page and the NextToken (None when there is no more)."""
    forward = request.get("ScanDirection") == "FORWARD"
    size = int(request.get("MaxResults") or DEFAULT_PAGE)
    token = request.get("NextToken")
    if token is not None:
        index_text, _, direction = token.partition(":")
        if not index_text.lstrip("-").isdigit() or direction != ("F" if forward else "B"):
            raise BadPosition("NextToken: not a token this transcript returned")
        start = int(index_text)
        if not -1 <= start <= len(items):
            raise BadPosition("NextToken: not a token this transcript returned")
    else:
        start = _start_index(items, forward, request.get("StartPosition"))
    if forward:
        start = max(start, 0)
        chosen = items[start : start + size]
        after = start + size
        next_token = f"{after}:F" if after < len(items) else None
    else:
        start = min(start, len(items) - 1)
        lo = max(0, start - size + 1)
        chosen = items[lo : start + 1] if start >= 0 else []
        next_token = f"{lo - 1}:B" if lo > 0 and start >= 0 else None
    if request.get("SortOrder") == "DESCENDING":
        chosen = chosen[::-1]
    return chosen, next_token
