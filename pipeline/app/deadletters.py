"""Dead letters: messages that failed past their retries, for operators."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.app.runtime import Runtime
from pipeline.store.models import DeadLetter


def list_dead_letters(session: Session, *, include_retried: bool = False) -> list[DeadLetter]:
    query = select(DeadLetter).order_by(DeadLetter.id)
    if not include_retried:
        query = query.where(DeadLetter.retried_at.is_(None))
    return list(session.execute(query).scalars())


def retry_dead_letters(runtime: Runtime, ids: Sequence[int] | None = None) -> int:
    """Send the messages again through their stage; mark them retried."""
    count = 0
    with runtime.session_factory.begin() as session:
        query = select(DeadLetter).where(DeadLetter.retried_at.is_(None))
        if ids is not None:
            query = query.where(DeadLetter.id.in_(list(ids)))
        for letter in session.execute(query).scalars():
            batch = letter.args[0] if letter.args else []
            runtime.enqueuer.send(letter.actor, batch)
            letter.retried_at = runtime.clock.now()
            count += 1
    return count
