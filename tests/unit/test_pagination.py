import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.core.errors import InvalidCursor, InvalidInput
from controlplane.core.pagination import PageRequest, decode_cursor, encode_cursor, page_of


@given(st.datetimes(timezones=st.just(UTC)), st.uuids())
def test_cursor_round_trips(created_at: datetime, row_id: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(created_at, row_id)) == (created_at, row_id)


@pytest.mark.parametrize("bad", ["", "!!!", "bm90LWEtY3Vyc29y", encode_cursor(datetime(2026, 1, 1), uuid.uuid4())])
def test_bad_cursors_are_refused(bad: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(bad)


@pytest.mark.parametrize("limit", [0, -1, 101])
def test_limits_outside_the_range_are_refused(limit: int) -> None:
    with pytest.raises(InvalidInput):
        PageRequest.parse(limit, None)


def test_page_of_gives_a_cursor_only_when_more_rows_exist() -> None:
    rows = [{"id": uuid.uuid4(), "created_at": datetime(2026, 1, i + 1, tzinfo=UTC)} for i in range(3)]
    page = PageRequest(limit=2)
    items, cursor = page_of(rows, page)
    assert items == rows[:2]
    assert cursor is not None and decode_cursor(cursor) == (rows[1]["created_at"], rows[1]["id"])
    assert page_of(rows[:2], page) == (rows[:2], None)


def test_a_cursor_outside_the_utc_range_is_refused_not_a_crash() -> None:
    import base64

    raw = f"0001-01-01T00:00:00+01:00|{uuid.uuid4()}".encode()
    with pytest.raises(InvalidCursor):
        decode_cursor(base64.urlsafe_b64encode(raw).decode().rstrip("="))
