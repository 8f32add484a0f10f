"""GetTranscript paging (pure)."""

import pytest

from chatload.emulator.transcript import BadPosition, page


def items(n):
    return [{"Id": f"m{i}", "AbsoluteTime": f"2024-01-01T00:00:{i:02d}.000Z"} for i in range(n)]


def ids(chosen):
    return [item["Id"] for item in chosen]


def test_default_is_backward_from_the_latest_in_ascending_order_15_a_page():
    chosen, token = page(items(20), {})
    assert ids(chosen) == [f"m{i}" for i in range(5, 20)]
    rest, token2 = page(items(20), {"NextToken": token})
    assert ids(rest) == [f"m{i}" for i in range(5)]
    assert token2 is None


def test_forward_pages_cover_everything_once():
    seen, token = [], None
    while True:
        request = {"ScanDirection": "FORWARD", "MaxResults": 3}
        if token:
            request["NextToken"] = token
        chosen, token = page(items(10), request)
        seen += ids(chosen)
        if token is None:
            break
    assert seen == [f"m{i}" for i in range(10)]


def test_descending_sort_and_start_positions():
    chosen, _ = page(items(5), {"SortOrder": "DESCENDING"})
    assert ids(chosen) == ["m4", "m3", "m2", "m1", "m0"]
    chosen, _ = page(items(5), {"ScanDirection": "FORWARD", "StartPosition": {"Id": "m3"}})
    assert ids(chosen) == ["m3", "m4"]
    chosen, _ = page(items(5), {"StartPosition": {"MostRecent": 1}, "MaxResults": 2})
    assert ids(chosen) == ["m2", "m3"]
    chosen, _ = page(
        items(5), {"ScanDirection": "FORWARD", "StartPosition": {"AbsoluteTime": "2024-01-01T00:00:02.000Z"}}
    )
    assert ids(chosen) == ["m2", "m3", "m4"]


def test_empty_transcript_and_bad_positions():
    assert page([], {}) == ([], None)
    with pytest.raises(BadPosition, match=r"StartPosition\.Id"):
        page(items(3), {"StartPosition": {"Id": "nope"}})
    with pytest.raises(BadPosition, match="NextToken"):
        page(items(3), {"NextToken": "garbage"})
