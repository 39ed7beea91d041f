"""Tables of the console: server-side sessions and login attempts.

A session cookie carries a random token; only its SHA-256 is stored, so a copy of the
database does not let anyone log in. Login attempts are kept under a hash of the user
name or client address (no personal data in clear) to rate-limit guessing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.db import Base, BigId


class ConsoleSession(Base):
    """One logged-in browser."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class LoginAttempt(Base):
    """One login attempt, counted per hashed user name and per hashed client address."""

    __tablename__ = "console_login_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))  # sha256 of "name:<name>" or "addr:<ip>"
    at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (Index("ix_console_login_attempts_key_at", "key", "at"),)
