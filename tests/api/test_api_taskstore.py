"""The task store on SQLite and PostgreSQL: one syncing task per region, leases, reaping."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import threading
from collections.abc import Iterator

import pytest
from api_support import EngineSwitch, make_app
from flask import Flask
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from fiwareglancesync.app import taskstore
from fiwareglancesync.app.auth import StaticVerifier
from fiwareglancesync.app.extensions import db
from fiwareglancesync.app.models import FAILED, SYNCED, SYNCING, Task, utcnow
from fiwareglancesync.app.server import on_exit, on_start
from fiwareglancesync.app.settings import Settings

USER = ("alice", "alice-id")


@pytest.fixture
def context(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app


def row(**values: object) -> dict[str, object]:
    now = utcnow()
    defaults: dict[str, object] = {
        "id": os.urandom(8).hex(),
        "region": "Leon",
        "status": SYNCING,
        "created_at": now,
        "updated_at": now,
        "owner": "elsewhere/1/abcd",
        "lease_expires_at": now + dt.timedelta(minutes=5),
    }
    return {**defaults, **values}


def test_the_database_refuses_a_second_syncing_task(context: Flask) -> None:
    db.session.execute(insert(Task).values(row()))
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(insert(Task).values(row()))
        db.session.commit()
    db.session.rollback()
    # Finished tasks of the region and syncing tasks of other regions are fine.
    db.session.execute(insert(Task).values(row(status=SYNCED)))
    db.session.execute(insert(Task).values(row(status=FAILED)))
    db.session.execute(insert(Task).values(row(region="Burgos")))
    db.session.commit()


def test_the_database_refuses_an_unknown_status(context: Flask) -> None:
    with pytest.raises(IntegrityError):
        db.session.execute(insert(Task).values(row(status="paused")))
        db.session.commit()
    db.session.rollback()


def test_claim_creates_then_returns_the_running_task(context: Flask) -> None:
    first = taskstore.claim_region("Leon", USER, 30)
    second = taskstore.claim_region("Leon", ("bob", "bob-id"), 30)
    assert first.created and not second.created
    assert second.task.id == first.task.id
    assert second.task.requested_by == "alice"
    assert first.task.owner == taskstore.process_owner()


def test_claims_racing_in_threads_create_exactly_one_task(app: Flask) -> None:
    barrier = threading.Barrier(12)
    results: list[taskstore.Claim] = []

    def claim() -> None:
        with app.app_context():
            barrier.wait()
            results.append(taskstore.claim_region("Leon", USER, 30))

    threads = [threading.Thread(target=claim) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 12
    assert sum(result.created for result in results) == 1
    assert len({result.task.id for result in results}) == 1


def _claim_in_child(settings: Settings, barrier, queue) -> None:
    app = make_app(settings, StaticVerifier({}), EngineSwitch(), upgrade=False)
    with app.app_context():
        barrier.wait()
        claim = taskstore.claim_region("Leon", USER, 30)
        queue.put((claim.created, claim.task.id))


def test_claims_racing_in_processes_create_exactly_one_task(app: Flask, settings: Settings) -> None:
    # `app` has upgraded the database; the children only use it.
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    queue = context.Queue()
    children = [
        context.Process(target=_claim_in_child, args=(settings, barrier, queue)) for _ in range(6)
    ]
    for child in children:
        child.start()
    results = [queue.get(timeout=30) for _ in children]
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert sum(created for created, _ in results) == 1
    assert len({task_id for _, task_id in results}) == 1


def test_an_expired_lease_fails_the_task_and_frees_the_region(context: Flask) -> None:
    stale = row(lease_expires_at=utcnow() - dt.timedelta(seconds=1))
    db.session.execute(insert(Task).values(stale))
    db.session.commit()
    task = taskstore.find_task("Leon", str(stale["id"]))
    assert task is not None
    assert task.status == FAILED
    assert "interrupted" in (task.message or "")
    assert taskstore.claim_region("Leon", USER, 30).created


def test_a_renewed_lease_keeps_the_task(context: Flask) -> None:
    claim = taskstore.claim_region("Leon", USER, 30)
    owner = claim.task.owner or ""
    assert taskstore.renew_lease(claim.task.id, owner, 30)
    assert not taskstore.renew_lease(claim.task.id, "someone/else/1", 30)
    assert taskstore.reap_expired() == 0
    assert taskstore.find_task("Leon", claim.task.id).status == SYNCING  # type: ignore[union-attr]


def test_finish_is_ignored_once_the_task_was_reaped(context: Flask) -> None:
    claim = taskstore.claim_region("Leon", USER, 30)
    db.session.execute(update(Task).values(lease_expires_at=utcnow() - dt.timedelta(seconds=1)))
    db.session.commit()
    assert taskstore.reap_expired() == 1
    assert not taskstore.finish(claim.task.id, claim.task.owner or "", SYNCED, None)
    assert taskstore.find_task("Leon", claim.task.id).status == FAILED  # type: ignore[union-attr]


def _dead_pid() -> int:
    context = multiprocessing.get_context("fork")
    child = context.Process(target=os._exit, args=(0,))
    child.start()
    child.join()
    return int(child.pid or 0)


def test_start_up_fails_the_tasks_of_dead_local_workers(app: Flask) -> None:
    host = taskstore.process_owner().split("/")[0]
    dead = row(owner=f"{host}/{_dead_pid()}/0000")
    alive = row(region="Burgos", owner=f"{host}/{os.getppid()}/0000")
    remote = row(region="other:Madrid", owner="another-host/1/0000")
    with app.app_context():
        db.session.execute(insert(Task).values([dead, alive, remote]))
        db.session.commit()
    on_start(app)
    with app.app_context():
        statuses = dict(db.session.execute(select(Task.region, Task.status)).all())
        message = db.session.scalar(select(Task.message).where(Task.id == dead["id"]))
    assert statuses == {"Leon": FAILED, "Burgos": SYNCING, "other:Madrid": SYNCING}
    assert "died" in (message or "")


def test_exit_fails_the_syncs_this_process_runs(app: Flask) -> None:
    with app.app_context():
        mine = taskstore.claim_region("Leon", USER, 30)
        db.session.execute(insert(Task).values(row(region="Burgos")))
        db.session.commit()
    on_exit(app)
    with app.app_context():
        statuses = dict(db.session.execute(select(Task.region, Task.status)).all())
        task = db.session.get(Task, mine.task.id)
    assert statuses == {"Leon": FAILED, "Burgos": SYNCING}
    assert task is not None and "stopped" in (task.message or "")


def test_delete_outcomes(context: Flask) -> None:
    claim = taskstore.claim_region("Leon", USER, 30)
    assert taskstore.delete_task("Leon", claim.task.id) is taskstore.DeleteOutcome.SYNCING
    assert taskstore.delete_task("Burgos", claim.task.id) is taskstore.DeleteOutcome.MISSING
    taskstore.finish(claim.task.id, claim.task.owner or "", SYNCED, None)
    assert taskstore.delete_task("Leon", claim.task.id) is taskstore.DeleteOutcome.DELETED
    assert taskstore.delete_task("Leon", claim.task.id) is taskstore.DeleteOutcome.MISSING
