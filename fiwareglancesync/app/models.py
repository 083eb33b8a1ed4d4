"""The task record: one sync of one region, asked for by one caller.

At most one task per region may be ``syncing``: a partial unique index makes the
database itself refuse a second one, whichever process or host tries. A running task
holds a lease (``owner``, ``lease_expires_at``) that its worker renews; a task whose
lease ran out belongs to a worker that died, and is marked failed.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fiwareglancesync.app.extensions import db

SYNCING = "syncing"
SYNCED = "synced"
FAILED = "failed"
TASK_STATUSES = (SYNCING, SYNCED, FAILED)


def utcnow() -> dt.datetime:
    """Naive UTC: the same on SQLite (no time zones) and PostgreSQL columns."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_task_id() -> str:
    return str(uuid.uuid4())


class Task(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "task"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_task_id)
    region: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str | None] = mapped_column(String(255))  # Keystone user name
    requested_by_id: Mapped[str | None] = mapped_column(String(64))  # and its id
    # The rest of who asked: a user name is unique only in its domain, and the project
    # says which of the policy's projects let them in.
    requested_by_domain: Mapped[str | None] = mapped_column(String(64))
    requested_by_project_id: Mapped[str | None] = mapped_column(String(64))
    requested_by_project_name: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint(
            "status IN ('syncing', 'synced', 'failed')",
            name="status",
        ),
        Index(
            "uq_task_region_syncing",
            "region",
            unique=True,
            sqlite_where=db.text("status = 'syncing'"),
            postgresql_where=db.text("status = 'syncing'"),
        ),
    )

    def to_json(self) -> dict[str, object]:
        return {
            "taskId": self.id,
            "status": self.status,
            "region": self.region,
            "message": self.message,
            "requestedBy": self.requested_by,
            "created": iso(self.created_at),
            "updated": iso(self.updated_at),
        }


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.replace(microsecond=0).isoformat() + "Z"


class TaskJoin(db.Model):  # type: ignore[name-defined,misc]
    """A POST that found the region already syncing and joined its task: who, when."""

    __tablename__ = "task_join"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    user_name: Mapped[str | None] = mapped_column(String(255))
    user_domain: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    project_name: Mapped[str | None] = mapped_column(String(255))
    joined_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
