"""Task records: claim a region, renew the lease, finish, reap dead workers' tasks.

Every function commits (or rolls back) before returning, so no request or worker keeps a
database transaction, and with it SQLite's write lock, open while it does other work.
Changes are single conditional statements (``... WHERE status = 'syncing' AND owner =
...``): they are atomic on every database without relying on isolation levels.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from fiwareglancesync.app.extensions import db
from fiwareglancesync.app.models import FAILED, SYNCING, Task, TaskJoin, new_task_id, utcnow

logger = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 10
LEASE_EXPIRED = (
    "The sync was interrupted: the worker running it stopped renewing its lease "
    "(it died or lost the database)"
)
WORKER_DIED = "The sync was interrupted: the worker process running it ({owner}) died"
WORKER_STOPPED = "The sync was interrupted: the server process running it was stopped"


class DeleteOutcome(enum.Enum):
    DELETED = "deleted"
    SYNCING = "syncing"
    MISSING = "missing"


@dataclass(frozen=True)
class Claim:
    """The task that is syncing the region, and whether this call created it."""

    task: Task
    created: bool


_OWNER_LOCK = threading.Lock()
_OWNER: tuple[int, str] | None = None


def process_owner() -> str:
    """``host/pid/random``: who runs a task; a new process (a fork too) gets a new one."""
    global _OWNER
    with _OWNER_LOCK:
        if _OWNER is None or _OWNER[0] != os.getpid():
            _OWNER = (os.getpid(), f"{socket.gethostname()}/{os.getpid()}/{os.urandom(4).hex()}")
        return _OWNER[1]


def _lease_end(lease_seconds: float) -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=lease_seconds)


class Caller(NamedTuple):
    """Who asked, as the audit trail keeps it (a plain (name, id) pair is one too)."""

    name: str | None
    user_id: str | None
    domain: str | None = None
    project_id: str | None = None
    project_name: str | None = None


def record_join(task: Task, caller: Caller) -> None:
    """A POST that found its region syncing: remembered with the task it joined."""
    db.session.add(
        TaskJoin(
            task_id=task.id,
            user_id=caller.user_id,
            user_name=caller.name,
            user_domain=caller.domain,
            project_id=caller.project_id,
            project_name=caller.project_name,
        )
    )
    db.session.commit()


def claim_region(
    region: str, requested_by: tuple[str | None, ...] | None, lease_seconds: float
) -> Claim:
    """Create a syncing task for the region, or return the one already syncing it.

    The unique index on syncing tasks decides between concurrent callers: exactly one
    INSERT succeeds, the others read the winner.
    """
    caller = Caller(*requested_by) if requested_by else Caller(None, None)
    for _ in range(CLAIM_ATTEMPTS):
        reap_expired(region)
        now = utcnow()
        task = Task(
            id=new_task_id(),
            region=region,
            status=SYNCING,
            requested_by=caller.name,
            requested_by_id=caller.user_id,
            requested_by_domain=caller.domain,
            requested_by_project_id=caller.project_id,
            requested_by_project_name=caller.project_name,
            created_at=now,
            updated_at=now,
            owner=process_owner(),
            lease_expires_at=_lease_end(lease_seconds),
        )
        db.session.add(task)
        try:
            db.session.commit()
            return Claim(task, True)
        except IntegrityError:
            db.session.rollback()
        running = db.session.scalar(
            select(Task).where(Task.region == region, Task.status == SYNCING)
        )
        db.session.commit()
        if running is not None:
            return Claim(running, False)
        # The running task finished between our INSERT and SELECT: try again.
    raise RuntimeError(f"could not claim region {region} after {CLAIM_ATTEMPTS} attempts")


def reap_expired(region: str | None = None) -> int:
    """Fail the syncing tasks whose lease ran out; return how many."""
    now = utcnow()
    statement = (
        update(Task)
        .where(Task.status == SYNCING, Task.lease_expires_at < now)
        .values(status=FAILED, message=LEASE_EXPIRED, updated_at=now, lease_expires_at=None)
    )
    if region is not None:
        statement = statement.where(Task.region == region)
    count = db.session.execute(statement).rowcount
    db.session.commit()
    if count:
        logger.warning("%d sync task(s) failed: their worker stopped renewing its lease", count)
    return count


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _dead_local_owner(owner: str | None, host: str) -> bool:
    parts = (owner or "").split("/")
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    return not _pid_alive(int(parts[1]))


def reap_dead_local_workers() -> int:
    """Fail at once the syncing tasks of processes of this host that no longer exist.

    Called when a server process starts, so a crash is reported without waiting for the
    lease to run out. Tasks of other hosts are left to their lease.
    """
    host = socket.gethostname()
    owners = db.session.scalars(select(Task.owner).where(Task.status == SYNCING)).all()
    db.session.commit()
    count = 0
    for owner in set(owners):
        if _dead_local_owner(owner, host):
            count += _fail_owned(owner, WORKER_DIED.format(owner=owner))
    if count:
        logger.warning("%d sync task(s) failed: the worker running them died", count)
    return count


def fail_tasks_of_this_process() -> int:
    """Fail the syncs this process still runs (it is about to stop)."""
    return _fail_owned(process_owner(), WORKER_STOPPED)


def _fail_owned(owner: str | None, message: str) -> int:
    now = utcnow()
    count = db.session.execute(
        update(Task)
        .where(Task.status == SYNCING, Task.owner == owner)
        .values(status=FAILED, message=message, updated_at=now, lease_expires_at=None)
    ).rowcount
    db.session.commit()
    return count


def renew_lease(task_id: str, owner: str, lease_seconds: float) -> bool:
    """Push the lease forward; False when the task is no longer ours and syncing."""
    count = db.session.execute(
        update(Task)
        .where(Task.id == task_id, Task.owner == owner, Task.status == SYNCING)
        .values(lease_expires_at=_lease_end(lease_seconds))
    ).rowcount
    db.session.commit()
    return count == 1


def finish(task_id: str, owner: str, status: str, message: str | None) -> bool:
    """Record the end of a sync; False when the task was taken from us (reaped)."""
    count = db.session.execute(
        update(Task)
        .where(Task.id == task_id, Task.owner == owner, Task.status == SYNCING)
        .values(status=status, message=message, updated_at=utcnow(), lease_expires_at=None)
    ).rowcount
    db.session.commit()
    return count == 1


def find_task(region: str, task_id: str) -> Task | None:
    """The task with this id, only under its own region."""
    reap_expired(region)
    task = db.session.scalar(select(Task).where(Task.id == task_id, Task.region == region))
    db.session.commit()
    return task


def delete_task(region: str, task_id: str) -> DeleteOutcome:
    """Delete a finished task; a syncing one stays (the caller answers 409)."""
    reap_expired(region)
    count = db.session.execute(
        delete(Task).where(Task.id == task_id, Task.region == region, Task.status != SYNCING)
    ).rowcount
    if count:
        db.session.commit()
        return DeleteOutcome.DELETED
    exists = db.session.scalar(select(Task.id).where(Task.id == task_id, Task.region == region))
    db.session.commit()
    return DeleteOutcome.SYNCING if exists else DeleteOutcome.MISSING
