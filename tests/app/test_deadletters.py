"""Dead letters for operators (pipeline.app.deadletters): listed oldest first, retried
ones hidden unless asked for; a retry sends the batch again through its stage once."""

from __future__ import annotations

import pytest

from pipeline.app.deadletters import list_dead_letters, retry_dead_letters
from pipeline.store.models import DeadLetter


def _letters(runtime, *batches, actor="trace"):
    ids = []
    with runtime.session_factory.begin() as session:
        for n, batch in enumerate(batches):
            letter = DeadLetter(message_id=f"m-{actor}-{n}", actor=actor, queue=actor,
                                args=[batch] if batch is not None else [], kwargs={},
                                error="boom", traceback=None, retries=3,
                                failed_at=runtime.clock.now())
            session.add(letter)
            session.flush()
            ids.append(letter.id)
    return ids


@pytest.fixture(params=["sqlite_runtime", "pg_runtime"])
def rt(request):
    return request.getfixturevalue(request.param)


def test_retrying_all_sends_each_batch_again_and_hides_it_from_the_list(rt):
    first, second = _letters(rt, [1, 2], [3])
    (dispatch,) = _letters(rt, [9], actor="dispatch")
    with rt.session_factory() as session:
        assert [d.id for d in list_dead_letters(session)] == [first, second, dispatch]
    rt.clock.advance(minutes=1)
    assert retry_dead_letters(rt) == 3
    assert rt.enqueuer.ids("trace") == [1, 2, 3] and rt.enqueuer.ids("dispatch") == [9]
    with rt.session_factory() as session:
        assert list_dead_letters(session) == []
        shown = list_dead_letters(session, include_retried=True)
    assert [d.id for d in shown] == [first, second, dispatch]
    now = rt.clock.now().replace(tzinfo=None)
    assert all(d.retried_at.replace(tzinfo=None) == now for d in shown)
    assert retry_dead_letters(rt) == 0  # a letter is retried once
    assert rt.enqueuer.ids("trace") == [1, 2, 3]


def test_retrying_chosen_letters_leaves_the_others(rt):
    first, second, empty = _letters(rt, [1], [2], None)
    assert retry_dead_letters(rt, [second, empty]) == 2
    assert rt.enqueuer.ids("trace") == [2]  # a letter without arguments sends nothing
    with rt.session_factory() as session:
        assert [d.id for d in list_dead_letters(session)] == [first]
    assert retry_dead_letters(rt, []) == 0
