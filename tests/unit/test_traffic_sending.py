"""Pure parts of the sending commands: pacing, chunking, and which replay lines are sent."""

from __future__ import annotations

import pytest

from services.traffic.pacing import TokenBucket, paced_chunk_size
from services.traffic.replay import RejectedLine, check_line, checked_chunks
from services.traffic.sending import rechunk
from services.traffic.traffic import TrafficPlan, generate_messages

pytestmark = pytest.mark.unit


def test_bucket_lets_a_burst_through_then_paces_at_the_rate() -> None:
    bucket = TokenBucket(rate=1_000, burst=100, now=0.0)
    assert bucket.take(100, now=0.0) == 0.0
    assert bucket.take(100, now=0.0) == pytest.approx(0.1)
    # After waiting what it was told, the next chunk of the same size waits a chunk's time.
    assert bucket.take(100, now=0.1) == pytest.approx(0.1)
    assert bucket.take(50, now=10.0) == 0.0


def test_bucket_schedule_averages_to_the_rate() -> None:
    bucket, now, sent = TokenBucket(rate=5_000, burst=250, now=0.0), 0.0, 0
    for _ in range(400):
        now += bucket.take(250, now)
        sent += 250
    assert sent / now == pytest.approx(5_000, rel=0.01)


def test_paced_chunks_hold_a_fraction_of_a_second() -> None:
    assert paced_chunk_size(0, 512) == 512
    assert paced_chunk_size(100, 512) == 5
    assert paced_chunk_size(1, 512) == 1
    assert paced_chunk_size(10**9, 512) == 512


def test_rechunk_keeps_every_message_in_order() -> None:
    chunks = [[(b"k", bytes([i])) for i in range(n, n + 7)] for n in range(0, 70, 7)]
    out = list(rechunk(chunks, 4))
    assert [len(c) for c in out] == [4] * 17 + [2]
    assert [m for c in out for m in c] == [m for c in chunks for m in c]


def test_a_valid_line_is_sent_as_it_is_keyed_by_its_account() -> None:
    message = next(generate_messages(TrafficPlan(accounts=3, events=1)))
    line = message.value.replace(b'"type"', b' "type"')  # not how pydantic would write it
    assert check_line(line) == (message.key, line)


def test_replay_rejects_invalid_lines_with_their_numbers_and_skips_blank_ones() -> None:
    good = [m.value for m in generate_messages(TrafficPlan(accounts=3, events=3))]
    lines = [good[0] + b"\n", b"\n", b"{not json\n", good[1] + b"\r\n", b"  \n"]
    lines += [good[2].replace(b'"input_tokens":', b'"input_tokens":-'), b'{"type": 1}']
    rejected: list[RejectedLine] = []
    sent = [m for chunk in checked_chunks(lines, rejected) for m in chunk]
    assert [value for _, value in sent] == [good[0], good[1]]
    assert [r.number for r in rejected] == [3, 6, 7]
    assert "input_tokens" in rejected[1].reason
