"""The overview's lag arithmetic over Kafka offsets: pure, no broker."""

from __future__ import annotations

import pytest

from services.api.dashboard.offsets import Span, behind

pytestmark = pytest.mark.unit

SPAN = Span(begin={0: 0, 1: 5, 2: 0}, end={0: 10, 1: 9, 2: 0})


def test_messages_are_the_offsets_of_every_partition() -> None:
    assert SPAN.messages() == 10 + 4 + 0


def test_a_reader_that_never_read_a_partition_starts_at_its_beginning() -> None:
    assert behind(SPAN, {}, {}) == 14
    assert behind(SPAN, {0: 7}, {}) == 3 + 4


def test_counted_records_replace_the_offsets_of_their_partition() -> None:
    # Partition 0: offset 9 is a commit marker, so the reader at 9 has read everything.
    assert behind(SPAN, {0: 9, 1: 9}, {0: 0}) == 0
    assert behind(SPAN, {0: 7, 1: 9}, {0: 2}) == 2


def test_a_reader_past_the_end_is_not_negative() -> None:
    assert behind(SPAN, {0: 12, 1: 20, 2: 3}, {}) == 0
