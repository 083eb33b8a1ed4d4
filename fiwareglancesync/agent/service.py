"""The agent's loop: audits, polls of the master, and batches of changed images.

Everything that touches a cloud runs here, in one thread (the main one under
:mod:`.cli`): the notification listener's threads only record image ids in the
:class:`~.coalesce.Coalescer` and wake the loop. Region syncs go through the engine's
``GlanceSync.sync`` (which holds the region lock while it plans and applies); the
regions synced are those the :class:`~.owner.Owner` gives this agent.

Stopping: :meth:`Agent.request_stop` (SIGTERM) ends the loop; a sync in progress is
abandoned at once by the :class:`Stopping` exception raised into it, which the facades
treat like Ctrl-C: the half-made copy is deleted (nothing ``queued`` is left) and the
region lock released on the way out. :meth:`Agent.request_reload` (SIGHUP) reads the
configuration again between two actions; a bad one is one ERROR line and the old one
stays.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from fiwareglancesync.agent.bus import BusSettings, NotificationFollower
from fiwareglancesync.agent.changes import Change, Kind, detect_changes
from fiwareglancesync.agent.coalesce import Coalescer, Pending
from fiwareglancesync.agent.metrics import AgentMetrics
from fiwareglancesync.agent.owner import Owner, OwnerFactory
from fiwareglancesync.condition import ConditionLimitError
from fiwareglancesync.config import Config
from fiwareglancesync.engine import FacadeFactory, GlanceSync
from fiwareglancesync.errors import ConfigError, GlanceSyncError, ImagesRefused, explain
from fiwareglancesync.figures import RegionFigures
from fiwareglancesync.image import Image
from fiwareglancesync.plan import OBSOLETE_SUFFIX, select_images
from fiwareglancesync.region import RegionRef
from fiwareglancesync.regionlock import RegionBusy

logger = logging.getLogger(__name__)

TICK = 1.0  # the longest the loop sleeps without looking at its flags
BUS_CHECK_SECONDS = 10.0  # how often the bus is checked while it is up


class Stopping(BaseException):
    """Raised into a sync in progress by SIGTERM: abandon it cleanly, then stop.

    ``during_sync``: raised into a cloud operation under way (else before the next one).
    """

    def __init__(self, during_sync: bool = True):
        super().__init__()
        self.during_sync = during_sync


class _RepeatFilter(logging.Filter):
    """Drops what the master's previous listing already said (a duplicated name, say):
    polled every few seconds, it would repeat the same warnings all day."""

    def __init__(self) -> None:
        super().__init__()
        self._previous: set[str] = set()
        self._current: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        self._current.add(message)
        return message not in self._previous

    def forget(self) -> None:
        """Say everything again at the next listing (an audit's)."""
        self._previous = set()

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        engine_logger = logging.getLogger("fiwareglancesync.engine")
        self._current = set()
        engine_logger.addFilter(self)
        try:
            yield
        finally:
            engine_logger.removeFilter(self)
            self._previous = self._current


def _sync_outcome(error: BaseException | None) -> str:
    return "ok" if error is None else "failed"


class Agent:
    def __init__(
        self,
        config: Config,
        facades: FacadeFactory,
        owner_factory: OwnerFactory,
        metrics: AgentMetrics,
        reload_config: Callable[[], Config],
        debug: bool = False,
        clock: Callable[[], float] = time.monotonic,
        follower_factory: Callable[..., NotificationFollower] = NotificationFollower,
    ):
        self._facades = facades
        self._owner_factory = owner_factory
        self.metrics = metrics
        self._reload_config = reload_config
        self._debug = debug
        self._clock = clock
        self._follower_factory = follower_factory
        self._wake = threading.Event()
        self._stopping = False
        self._interrupted = False
        self._reload = False
        self._busy = False
        self._bus_up = False
        self._bus_changed = False
        self._poll_now = False
        self._next_audit = self._next_poll = 0.0
        self._master_failing = False
        self._known: list[Image] | None = None
        self._regions: list[RegionRef] = []
        self._follower: NotificationFollower | None = None
        self._loop_thread: int | None = None
        self.coalescer = Coalescer(config.event_delay, clock)
        self._repeats = _RepeatFilter()
        self._configure(config)

    # ------------------------------------------------------------------- requests

    def request_stop(self) -> None:
        """Stop soon. From a signal handler (in the loop's thread), the sync in progress
        is abandoned at once; from another thread, it ends first."""
        first = not self._stopping
        self._stopping = True
        self._wake.set()
        in_loop = threading.get_ident() == self._loop_thread
        if first and in_loop and self._busy and not self._interrupted:
            self._interrupted = True
            raise Stopping

    def request_reload(self) -> None:
        self._reload = True
        self._wake.set()

    # ------------------------------------------------------------------- configuration

    def _configure(self, config: Config) -> None:
        self.config = config
        self.engine = GlanceSync(config, self._facades)
        self.owner: Owner = self._owner_factory(config)
        self.coalescer.delay = config.event_delay
        self._bus_settings = BusSettings.of(config)

    def _start_follower(self) -> None:
        if self._bus_settings is None:
            self._set_bus(False, quiet=True)
            return
        try:
            self._follower = self._follower_factory(
                self._bus_settings,
                on_image=self._notified,
                on_state=self._bus_state,
                on_malformed=self.metrics.malformed.inc,
                check_every=min(BUS_CHECK_SECONDS, self.config.poll_interval),
                debug=self._debug,
            )
        except ValueError as error:
            logger.error("%s: polling the master instead", error)
            self._follower = None
            return
        self._follower.start()

    def _stop_follower(self) -> None:
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        self._set_bus(False, quiet=True)

    def _reload_now(self) -> None:
        self._reload = False
        try:
            config = self._reload_config()
        except ConfigError as error:
            logger.error(
                "SIGHUP: the configuration was not reloaded, the old one stays: %s",
                "; ".join(error.problems) or str(error),
            )
            return
        for warning in config.warnings:
            logger.warning("%s", warning)
        old_bus = self._bus_settings
        self.engine.close()
        self.owner.close()
        self._configure(config)
        if self._bus_settings != old_bus:
            self._stop_follower()
            self._start_follower()
        self._regions = []  # the catalog is read again, with the new targets
        logger.info("SIGHUP: configuration reloaded from %s", config.source or "the defaults")

    # ------------------------------------------------------------------- the bus

    def _notified(self, image_id: str, event_type: str) -> None:
        """From a listener thread: one notification about ``image_id``."""
        self.metrics.events.labels("notification").inc()
        if not self.coalescer.add(image_id, "notification"):
            self.metrics.coalesced.inc()
        self._wake.set()

    def _bus_state(self, up: bool) -> None:
        """From the watching thread: the bus came up or went down."""
        self._bus_changed = True
        self._set_bus(up)
        self._wake.set()

    def _set_bus(self, up: bool, quiet: bool = False) -> None:
        self._bus_up = up
        self.metrics.following.set(1 if up else 0)
        if quiet:
            return
        if up:
            logger.info("Following the master's notifications (message bus reached)")
        else:
            logger.warning(
                "The message bus cannot be reached: polling the master every %g s until it is back",
                self.config.poll_interval,
            )

    # ------------------------------------------------------------------- the loop

    def run(self) -> None:
        """Audit at once, then follow the master until asked to stop."""
        self._loop_thread = threading.get_ident()
        logger.info(
            "glancesync-agent started: master %s, audit every %g s, %s",
            self.config.master_region,
            self.config.audit_interval,
            "notifications from the message bus"
            if self._bus_settings
            else f"polling the master every {self.config.poll_interval:g} s",
        )
        self._start_follower()
        self._next_audit = self._next_poll = self._clock()
        try:
            while not self._stopping:
                if self._step():
                    self.metrics.write()
        except Stopping as stop:
            if stop.during_sync:
                logger.info("Stopping: the sync in progress was abandoned")
            else:
                logger.info("Stopping: what was left to do waits for the next start")
        finally:
            self._stopping = True
            self._stop_follower()
            self.metrics.write()
            self.engine.close()
            self.owner.close()
            logger.info("glancesync-agent stopped")

    def _step(self) -> bool:
        """Do the next thing due, or wait for it; True when something was done."""
        if self._reload:
            self._reload_now()
        if self._bus_changed:
            # Up again: what changed while the listener was away is in no notification,
            # so the master is listed once. Down: the polls start now.
            self._bus_changed = False
            self._poll_now = True
        now = self._clock()
        due = self.coalescer.wait_time()
        if now >= self._next_audit:
            self._audit()
            self._next_audit = self._clock() + self.config.audit_interval
            self._next_poll = self._clock() + self.config.poll_interval
        elif due is not None and due <= 0:
            self._batch()
        elif self._poll_now or (not self._bus_up and now >= self._next_poll):
            self._poll_now = False
            self._poll()
            self._next_poll = self._clock() + self.config.poll_interval
        else:
            self._watch_owners()
            waits = [self._next_audit - now, TICK]
            if due is not None:
                waits.append(due)
            if not self._bus_up:
                waits.append(self._next_poll - now)
            self._wake.wait(max(0.01, min(waits)))
            self._wake.clear()
            return False
        return True

    @contextlib.contextmanager
    def _abortable(self) -> Iterator[None]:
        """A cloud operation SIGTERM may interrupt (it raises Stopping into it)."""
        if self._stopping:
            raise Stopping(during_sync=False)
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    # ------------------------------------------------------------------- master

    def _list_master(self) -> list[Image] | None:
        """The master now (one listing), or None when it cannot be listed (said once)."""
        self.metrics.polls.inc()
        try:
            with self._abortable(), self._repeats.quiet():
                images = self.engine.master_images(fresh=True)
        except GlanceSyncError as error:
            if not self._master_failing:
                logger.error("The master cannot be listed: %s", explain(error).text)
            self._master_failing = True
            return None
        if self._master_failing:
            logger.info("The master can be listed again")
        self._master_failing = False
        return images

    def _take_listing(self, images: list[Image], source: str | None) -> list[Change]:
        """Make ``images`` the master known; log (and queue) what changed since.

        ``source``: what the changes count as (a poll's); None when the listing follows
        notifications, which were counted as they came.
        """
        changes = detect_changes(self._known, images)
        self._known = images
        for change in changes:
            if change.kind is Kind.DELETED:
                logger.info(
                    "Master: %s; its regional copies stay (GlanceSync never deletes an image)",
                    change.describe(),
                )
                continue
            logger.info("Master: %s", change.describe())
            if source is None:
                self.coalescer.add(change.image_id, "notification")
                continue
            self.metrics.events.labels(source).inc()
            if not self.coalescer.add(change.image_id, source):
                self.metrics.coalesced.inc()
        return changes

    def _poll(self) -> None:
        images = self._list_master()
        if images is not None:
            self._take_listing(images, "poll")

    # ------------------------------------------------------------------- regions

    def _owned_regions(self, refresh: bool) -> list[RegionRef]:
        if refresh or not self._regions:
            with self._abortable():
                regions, failures = self.engine.regions()
            for target, error in failures:
                logger.error(
                    "target %s: its regions cannot be listed: %s", target, explain(error).text
                )
            if regions or not failures:
                self._regions = regions
        owned = self.owner.owned(self._regions)
        self.metrics.set_owned(region.fullname for region in owned)
        return owned

    def _watch_owners(self) -> None:
        """While idle, ask the owner again: with several agents this runs the group's
        watchers, so a member that joined or expired is logged (and counted) at once,
        not at the next change. The regions are not listed for it."""
        if self._regions:
            owned = self.owner.owned(self._regions)
            self.metrics.set_owned(region.fullname for region in owned)

    def _sync(
        self, region: RegionRef, reason: str, only: Sequence[str] | None = None
    ) -> RegionFigures | None:
        """Sync ``region`` (just ``only`` when given); failures are logged, not raised."""
        error: BaseException | None = None
        figures = None
        try:
            with self._abortable():
                figures = self.engine.sync(region, only=only)
        except (GlanceSyncError, OSError) as failure:
            error = failure
            if isinstance(failure, ImagesRefused):
                figures = failure.result
            level = logging.WARNING if isinstance(failure, RegionBusy) else logging.ERROR
            logger.log(
                level,
                "%s: %s sync failed (the next audit tries again): %s",
                region,
                reason,
                explain(failure).text,
            )
        self.metrics.syncs.labels(region.fullname, reason, _sync_outcome(error)).inc()
        return None if error is not None else figures

    # ------------------------------------------------------------------- audit

    def _audit(self) -> None:
        started, wall = self._clock(), time.time()
        try:
            owned = self._owned_regions(refresh=True)
        except GlanceSyncError as error:
            logger.error("Audit skipped: %s", explain(error).text)
            return
        logger.info("Audit started: %d region(s) owned", len(owned))
        self._repeats.forget()
        images = self._list_master()
        if images is None:
            logger.error("Audit skipped: the master cannot be listed")
            return
        self._take_listing(images, "poll")
        # Every change seen before this listing is in it: the audit syncs them all.
        done = self.coalescer.forget_before(started)
        synced = failed = 0
        for region in owned:
            try:
                with self._abortable():
                    plan = self.engine.plan(region)
            except GlanceSyncError as error:
                failed += 1
                logger.error("%s: audit cannot plan the region: %s", region, explain(error).text)
                continue
            if plan.is_synchronised:
                continue
            synced += 1
            if self._sync(region, "audit") is None:
                failed += 1
            else:
                self._record_lag(region, done)
        duration = self._clock() - started
        self.metrics.audits.observe(duration)
        self.metrics.last_audit.set(wall + duration)
        logger.info(
            "Audit done in %.1f s: %d region(s) synchronised, %d failed", duration, synced, failed
        )

    # ------------------------------------------------------------------- changes

    def _selecting(self, target: str, images: list[Image]) -> set[str] | None:
        """The ids of the master images ``target`` synchronises (and, when it follows
        obsolete images, those named X_obsolete); None if its condition cannot run."""
        config = self.config.targets[target]
        try:
            ids = {image.id for image in select_images(images, config)}
        except ConditionLimitError as error:
            logger.error("%s.metadata_condition: %s", target, error)
            return None
        if config.support_obsolete_images:
            ids |= {image.id for image in images if image.name.endswith(OBSOLETE_SUFFIX)}
        return ids

    def _batch(self) -> None:
        batch = self.coalescer.take()
        images = self._list_master()
        if images is None:
            self.coalescer.put_back(batch)
            return
        self._take_listing(images, None)
        batch.update({k: v for k, v in self.coalescer.take().items() if k not in batch})
        try:
            owned = self._owned_regions(refresh=False)
        except GlanceSyncError as error:
            logger.error("Changes wait for the next audit: %s", explain(error).text)
            return
        selecting: dict[str, set[str] | None] = {}
        for region in owned:
            if region.target not in selecting:
                selecting[region.target] = self._selecting(region.target, images)
            chosen = selecting[region.target]
            only = sorted(set(batch) & chosen) if chosen else []
            if not only:
                continue
            figures = self._sync(region, "change", only)
            if figures is not None:
                self._record_lag(region, {i: batch[i] for i in only})

    def _record_lag(self, region: RegionRef, changes: dict[str, Pending]) -> None:
        if not changes:
            return
        lag = self._clock() - min(entry.first_seen for entry in changes.values())
        self.metrics.lag.labels(region.fullname).observe(lag)
        self.metrics.last_lag.labels(region.fullname).set(lag)
        logger.info(
            "%s: %d changed image(s) in step, %.1f s after the change was seen",
            region,
            len(changes),
            lag,
        )
