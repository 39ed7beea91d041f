"""Messaging: the recording enqueuer and the batching of ids."""

from __future__ import annotations

from pipeline.core.messaging import DEDUPE, TRACE, RecordingEnqueuer, chunks


def test_the_recording_enqueuer_keeps_batches_in_order_and_skips_empty_ones():
    enqueuer = RecordingEnqueuer()
    enqueuer.send(DEDUPE, [1, 2])
    enqueuer.send(TRACE, [])
    enqueuer.send(TRACE, (3,))
    enqueuer.send(DEDUPE, [4])
    assert enqueuer.sent == [(DEDUPE, [1, 2]), (TRACE, [3]), (DEDUPE, [4])]
    assert enqueuer.ids(DEDUPE) == [1, 2, 4]
    assert enqueuer.ids("route") == []


def test_ids_are_split_into_batches_of_the_given_size():
    assert chunks(list(range(1, 8)), 3) == [[1, 2, 3], [4, 5, 6], [7]]
    assert chunks([1, 2], 5) == [[1, 2]]
    assert chunks([], 5) == []

