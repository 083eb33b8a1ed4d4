"""GlanceSync: the engine ``sync.py`` and the REST service (and, later, an agent) call.

Its public operations are complete in themselves: the status, plan, sync and backup of
a region, and the federation report, beside the region lookups they need. Each one
takes the master listing it works from when it starts (listed afresh when the caller
asks, else the cached one), and a sync tidies its region up when it ends, so a caller
never drives a cache and can call them in any order, in a loop.

What outlives one operation lives in one :class:`CloudCache`: facades, project ids and
the master listing, with what is derived from each listing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from fiwareglancesync.apply import apply_plan
from fiwareglancesync.backup import backup_file_name
from fiwareglancesync.condition import ConditionLimitError
from fiwareglancesync.config import MASTER, Config, TargetConfig
from fiwareglancesync.dryrun import print_plan
from fiwareglancesync.errors import (
    ConfigError,
    FacadeError,
    GlanceSyncError,
    RegionError,
    UsageError,
    explain,
    os_reason,
)
from fiwareglancesync.facades.base import Facade, ImageData
from fiwareglancesync.fields import wanted_members
from fiwareglancesync.figures import RegionFigures
from fiwareglancesync.image import Image, write_csv
from fiwareglancesync.plan import (
    ImageStatus,
    Notice,
    RegionPlan,
    filter_master_images,
    only_images,
    plan_region,
    select_images,
)
from fiwareglancesync.preflight import HEAD_SIZE
from fiwareglancesync.region import RegionRef, whole_target
from fiwareglancesync.regionlock import RegionLocks
from fiwareglancesync.report import RegionReport, StatusReport, build_report
from fiwareglancesync.transfer_methods import RegionSender

logger = logging.getLogger(__name__)

FacadeFactory = Callable[[TargetConfig], Facade]
Failures = list[tuple[str, GlanceSyncError]]  # a target whose regions cannot be listed
T = TypeVar("T")


def log_notices(notices: Iterable[Notice]) -> None:
    for level, message in notices:
        logger.log(level, "%s", message)


@dataclass
class MasterListing:
    """One listing of the master, and what is derived from it target by target.

    A failed listing is one too: every region that needs it reports its error, and no
    region lists the master again for itself.
    """

    listed_at: float
    images: list[Image] | None = None
    error: GlanceSyncError | None = None
    selected: dict[str, list[Image]] = field(default_factory=dict)
    members: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # What the pre-flight data check found in each master image (see transfers).
    head_formats: dict[str, list[str]] = field(default_factory=dict)

    def kept(self) -> list[Image]:
        if self.error is not None:
            raise self.error
        assert self.images is not None
        return self.images


class CloudCache:
    """What outlives one operation: facades, project ids and the master listing.

    ``sync.py`` gives its engine its own cache, which lists the master once per run
    (``master_max_age`` infinite, a failed listing kept too). The service shares one
    per process between the engines of its requests: the facades (their Keystone
    sessions, tokens and HTTP connections) live as long as the process, and the master
    is listed at most once per ``master_max_age`` seconds (0: every time); a failed
    listing is not kept, so the next request tries again. keystoneauth renews a token
    near its expiry and after a 401.
    """

    def __init__(
        self,
        factory: FacadeFactory,
        master_max_age: float,
        keep_failures: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._factory = factory
        self.master_max_age = master_max_age
        self._keep_failures = keep_failures
        self._clock = clock
        self._lock = threading.Lock()
        self._master_lock = threading.Lock()  # one listing at a time; the others wait for it
        self._facades: dict[str, Facade] = {}
        self._pid = os.getpid()
        self._project_ids: dict[str, str] = {}
        self._master: MasterListing | None = None

    def facade(self, config: TargetConfig) -> Facade:
        with self._lock:
            if os.getpid() != self._pid:
                # A forked child (--parallel) must not share its parent's sockets: it
                # makes its own facades and leaves the parent's alone.
                self._facades, self._pid = {}, os.getpid()
            if config.name not in self._facades:
                self._facades[config.name] = self._factory(config)
            return self._facades[config.name]

    def opened(self, target: str) -> Facade | None:
        """The target's facade if this process has made one (nothing to tidy otherwise)."""
        with self._lock:
            return self._facades.get(target) if os.getpid() == self._pid else None

    def project_id(self, target: str, ask: Callable[[], str]) -> str:
        with self._lock:
            found = self._project_ids.get(target)
        if found is None:
            found = ask()
            with self._lock:
                self._project_ids[target] = found
        return found

    def master(self, list_master: Callable[[], list[Image]], fresh: bool) -> MasterListing:
        """The master listing to work from, listed now when stale (or when ``fresh`` is
        asked for: a sync, which must not upload what is gone)."""
        with self._master_lock:
            cached = self._master
            if cached is None or fresh or self._clock() - cached.listed_at >= self.master_max_age:
                cached = self._list(list_master)
                keep = cached.error is None or self._keep_failures
                self._master = cached if keep else None
            return cached

    def _list(self, list_master: Callable[[], list[Image]]) -> MasterListing:
        try:
            return MasterListing(self._clock(), images=list_master())
        except RegionError as error:
            return MasterListing(self._clock(), error=error)

    def derived(self, table: dict[str, T], target: str, make: Callable[[], T]) -> T:
        """``table[target]`` of a listing, made once (two threads may both make it)."""
        with self._lock:
            found = table.get(target)
        if found is None:
            found = make()
            with self._lock:
                table[target] = found
        return found

    def age(self, listed_at: float) -> float:
        return max(0.0, self._clock() - listed_at)

    def close(self) -> None:
        with self._lock:
            facades = self._facades.values() if os.getpid() == self._pid else ()
            for facade in facades:
                facade.close()
            self._facades.clear()


@dataclass
class RegionStatus:
    """A region's statuses, and how old the master listing behind them is (seconds)."""

    region: RegionRef
    images: list[ImageStatus]
    master_age: float


def _report_failure(where: str, error: Exception) -> str:
    """A federation report's line for a region or target that failed; the log says why."""
    explained = explain(error)
    if explained.bug:
        logger.error("Status of %s failed unexpectedly", where, exc_info=error)
    else:
        logger.warning("Status of %s: %s", where, explained.text)
    return explained.public or "it failed"


class GlanceSync:
    """Synchronise the regions of a configuration through facades made on demand.

    Without a ``cache`` the engine has its own, for one run: the master is listed once
    unless an operation asks for a fresh listing. The service passes the process's
    shared :class:`CloudCache` instead (and no factory: the cache has it).
    """

    def __init__(
        self,
        config: Config,
        facade_factory: FacadeFactory | None = None,
        cache: CloudCache | None = None,
    ):
        if cache is None:
            if facade_factory is None:
                raise TypeError("GlanceSync needs a facade factory or a cache")
            cache = CloudCache(facade_factory, math.inf, keep_failures=True)
            self._own_cache = True
        else:
            self._own_cache = False
        self.config = config
        self._cache = cache
        self._locks = RegionLocks(config.lock_dir, config.lock_timeout, url=config.coordination_url)

    # ------------------------------------------------------------------- operations

    def regions(self, names: Sequence[str] | None = None) -> tuple[list[RegionRef], Failures]:
        """The regions ``names`` stand for (``target:`` for all of a target's), in
        order and without duplicates; None: every target's, the master's first.

        A target whose regions cannot be listed fails alone: its failure is returned
        beside the other targets' regions. A bad name is a UsageError before any
        target is asked anything.
        """
        if names is None:
            others = [name for name in self.config.targets if name != MASTER]
            names = [f"{target}:" for target in (MASTER, *others)]
        return self._expand(names, known_only=False)

    def run_regions(
        self,
        names: Sequence[str],
        master_first: bool = False,
        resolved: Callable[[list[RegionRef], Failures], None] | None = None,
    ) -> tuple[list[RegionRef], Failures]:
        """The regions of a command-line run over ``names``, ready before any is touched.

        Every name is checked (a region its target lacks is a UsageError too), the
        master is listed once and each target's images are chosen now: a
        ``metadata_condition`` that goes past its limits is then a configuration error of
        the whole run (exit status 2), not a failure of whichever region came first, and
        ``--parallel`` children inherit the listing. A master that cannot be listed is
        left to the regions to report. ``master_first``: a backup, which holds the
        master region too, first. ``resolved`` is called with the regions and failures
        before the master is listed (the command line logs there, before the master's
        own warnings).
        """
        regions, failures = self._expand(names, known_only=True)
        if master_first:
            regions = [self._master_ref, *(r for r in regions if r != self._master_ref)]
        if resolved is not None:
            resolved(regions, failures)
        listing = self._listing(fresh=False)
        if listing.error is None:
            for target in dict.fromkeys(region.target for region in regions):
                self._selected(listing, target)
        return regions, failures

    def region(self, name: str, known: bool = True) -> RegionRef:
        """The region a URL names: well-formed, of a configured target and (``known``) in
        its target's catalog; a UsageError (the service's 410) otherwise."""
        region = RegionRef.from_url(name)
        self._target(region.target)
        if known and region.name not in self._facade(region.target).regions():
            raise UsageError(f"there is no region {region}")
        return region

    def status(self, region: RegionRef, fresh: bool = False) -> RegionStatus:
        """Every selected master image's status in ``region`` (lists it; changes nothing)."""
        listing = self._listing(fresh)
        plan = self._plan(region, listing)
        log_notices(plan.notices)
        return RegionStatus(region, plan.statuses, self._cache.age(listing.listed_at))

    def plan(self, region: RegionRef, fresh: bool = False) -> RegionPlan:
        """Statuses and actions for ``region`` (lists it; changes nothing, logs nothing)."""
        return self._plan(region, self._listing(fresh))

    def master_images(self, fresh: bool = False) -> list[Image]:
        """The master images a sync works from (active, named, the master project's, of
        a unique name); RegionError if the master cannot be listed. Lists no other
        region: an agent reads this alone while nothing changes."""
        return list(self._listing(fresh).kept())

    def sync(
        self,
        region: RegionRef,
        dry_run: bool = False,
        fresh: bool = False,
        only: Iterable[str] | None = None,
    ) -> RegionFigures:
        """Plan and apply one region; raise RegionError if it cannot be completed.

        ``only``: master image ids; just their actions (and their kernels' and
        ramdisks') are applied, the rest of the plan waits for a later sync.

        A real sync holds the region's lock (``coordination_url``) while it plans and
        applies, so a second run on the same region waits (up to lock_timeout) and then plans again,
        from a listing of the master made once it holds the lock when ``fresh``; a dry
        run changes nothing and never waits. A real sync ends with the region tidied up
        (the persistent mock folds its journal), whether it succeeded or not.
        """
        try:
            key = None if dry_run else self._facade(region.target).lock_key(region)
            if key is None:
                return self._plan_and_apply(region, dry_run, fresh, only)
            with self._locks.hold(key, region.fullname):
                return self._plan_and_apply(region, dry_run, fresh, only)
        finally:
            if not dry_run:
                self._finish(region)

    def backup(self, region: RegionRef, directory: Path, version: int | None = None) -> Path:
        """Write ``region``'s images to its backup file in ``directory``, in CSV format
        ``version`` (None: the smallest that holds every field); return the file."""
        images = self._facade(region.target).list_images(region)
        path = directory / backup_file_name(region.fullname)
        try:
            with open(path, "w", encoding="utf-8", newline="") as out:
                write_csv(out, images, version)
        except OSError as error:
            raise RegionError(f"cannot write {path}: {os_reason(error)}") from None
        return path

    def project_ids(self, targets: Iterable[str]) -> dict[str, str]:
        """The project id of each of ``targets`` that can say (for backups); a target
        whose Keystone is down has already failed its regions, it is left out."""
        found = {}
        for target in dict.fromkeys(targets):
            with contextlib.suppress(GlanceSyncError):
                found[target] = self._project_id(target)
        return found

    def federation_report(self, fresh: bool = False) -> StatusReport:
        """The status of every region of every target, from one master listing; a
        region or target that fails is in the report with what may be told of why."""
        regions, failures = self.regions()
        reports = [
            RegionReport(f"{target}:", error=_report_failure(f"{target}:", error))
            for target, error in failures
        ]
        listing = self._listing(fresh) if regions else None
        for region in regions:
            assert listing is not None
            try:
                plan = self._plan(region, listing)
            except Exception as error:  # noqa: BLE001 - one region's failure is shown, not raised
                reports.append(
                    RegionReport(region.fullname, error=_report_failure(region.fullname, error))
                )
                continue
            log_notices(plan.notices)
            reports.append(RegionReport.of_statuses(region.fullname, plan.statuses))
        return build_report(self.config, reports)

    def close(self) -> None:
        """Release the facades (only this engine's own cache: a shared one lives on) and
        leave the coordination backend."""
        self._locks.close()
        if self._own_cache:
            self._cache.close()

    # ------------------------------------------------------------------- targets

    def _target(self, name: str) -> TargetConfig:
        try:
            return self.config.targets[name]
        except KeyError:
            known = ", ".join(sorted(self.config.targets))
            raise UsageError(f"unknown target {name!r} (known targets: {known})") from None

    def _facade(self, target: str) -> Facade:
        return self._cache.facade(self._target(target))

    def _project_id(self, target: str) -> str:
        return self._cache.project_id(target, lambda: self._facade(target).project_id())

    def _finish(self, region: RegionRef) -> None:
        """The region is done: its facade may tidy up (the mock compacts its journal)."""
        facade = self._cache.opened(region.target)
        if facade is not None:
            facade.finish_region(region)

    @property
    def _master_ref(self) -> RegionRef:
        return RegionRef(MASTER, self.config.master_region)

    # ------------------------------------------------------------------- regions

    def _target_regions(self, target: str) -> list[RegionRef]:
        """A target's regions as its catalog lists them, less ignore_regions (and the master)."""
        config = self._target(target)
        ignored = set(config.ignore_regions)
        if target == MASTER:
            ignored.add(self.config.master_region)
        names = self._facade(target).regions()
        return [RegionRef(target, name) for name in names if name not in ignored]

    def _preferred_first(self, regions: list[RegionRef]) -> list[RegionRef]:
        order = list(self.config.preferable_order)

        def rank(region: RegionRef) -> int:
            for name in (region.fullname, region.name):
                if name in order:
                    return order.index(name)
            return len(order)

        return sorted(regions, key=rank)  # stable: the rest keep their listing order

    def _expand(self, names: Sequence[str], known_only: bool) -> tuple[list[RegionRef], Failures]:
        """Command-line names → ordered regions (see :meth:`regions`); ``known_only``: a
        named region its target does not have is a UsageError, before any is touched."""
        wanted: list[str | RegionRef] = []  # a target to expand, or a region
        for name in names:
            target = whole_target(name)
            if target is not None:
                self._target(target)
                wanted.append(target)
            else:
                region = RegionRef.from_command_line(name)
                self._target(region.target)
                wanted.append(region)
        if known_only:
            self._check_known([item for item in wanted if isinstance(item, RegionRef)])
        result: list[RegionRef] = []
        failures: Failures = []
        for item in wanted:
            if isinstance(item, RegionRef):
                result.append(item)
                continue
            try:
                result.extend(self._preferred_first(self._target_regions(item)))
            except GlanceSyncError as error:
                failures.append((item, error))
        return list(dict.fromkeys(result)), failures

    def _check_known(self, regions: Iterable[RegionRef]) -> None:
        """UsageError naming every region its target's catalog lacks. A target whose
        regions cannot be listed cannot tell: its regions then fail on their own."""
        problems = []
        for region in dict.fromkeys(regions):
            try:
                known = self._facade(region.target).regions()
            except GlanceSyncError:
                continue
            if region.name not in known:
                listed = ", ".join(sorted(known)) or "none"
                problems.append(
                    f"unknown region {region.fullname} (regions of target {region.target}: "
                    f"{listed})"
                )
        if problems:
            raise UsageError("; ".join(problems))

    # ------------------------------------------------------------------- images

    def _listing(self, fresh: bool) -> MasterListing:
        return self._cache.master(self._list_master, fresh)

    def _list_master(self) -> list[Image]:
        master = self._master_ref
        try:
            listed = self._facade(MASTER).list_images(master)
            kept, notices = filter_master_images(
                listed, self._project_id(MASTER), self.config.master_region
            )
        except RegionError as error:
            raise RegionError(f"master region: {error}") from error
        log_notices(notices)
        return kept

    def _selected(self, listing: MasterListing, target: str) -> list[Image]:
        config = self._target(target)
        master = listing.kept()
        try:
            return self._cache.derived(
                listing.selected, target, lambda: select_images(master, config)
            )
        except ConditionLimitError as error:
            # Not a property of one region: the expression itself is unusable.
            raise ConfigError([f"{target}.metadata_condition: {error}"]) from None

    def _members(self, listing: MasterListing, target: str) -> dict[str, tuple[str, ...]]:
        """The target's project ids each shared master image's copy is shared with, by
        master image id (the ``members`` option; looked up once per listing: it asks
        Keystone for the projects, not something to do at every request)."""
        selected = self._selected(listing, target)
        return self._cache.derived(
            listing.members, target, lambda: self._lookup_members(target, selected)
        )

    def _lookup_members(self, target: str, selected: list[Image]) -> dict[str, tuple[str, ...]]:
        config = self._target(target)
        shared = [i for i in selected if i.visibility == "shared"]
        if not config.members or not shared:
            return {}
        same = config.members_same
        try:
            master_names: dict[str, str] = {}
            if same:
                ids = {member for image in shared for member in image.members}
                master_names = self._facade(MASTER).project_names(ids)
                names = set(master_names.values())
            else:
                names = set(config.members)
            found = self._facade(target).project_ids_by_name(names)
        except FacadeError as error:
            logger.warning(
                "target %s: cannot map the member projects (%s); shared copies get no new members",
                target,
                error,
            )
            return {}
        plan = wanted_members(
            shared,
            target,
            None if same else config.members,
            master_names,
            found,
            self._project_id(target),
        )
        for warning in plan.warnings:
            logger.warning("%s", warning)
        return plan.by_image

    def _plan(
        self, region: RegionRef, listing: MasterListing, regional: list[Image] | None = None
    ) -> RegionPlan:
        """The region's plan from the master ``listing``, on ``regional`` (default: the
        region as it is now)."""
        master = listing.kept()  # a master that cannot be listed fails first
        if regional is None:
            regional = self._facade(region.target).list_images(region)
        return plan_region(
            region,
            master,
            regional,
            self._target(region.target),
            self._project_id(region.target),
            self._selected(listing, region.target),
            self._members(listing, region.target),
        )

    # ------------------------------------------------------------------- transfers

    def _image_file(self, master: Image) -> str:
        return os.path.join(self.config.images_dir, master.id)

    def _has_file(self, master: Image) -> bool:
        """Is there a copy of ``master`` in images_dir?"""
        return os.path.isfile(self._image_file(master))

    def _open_data(self, master: Image) -> ImageData:
        """Read a master image from images_dir when it is there, else from the master."""
        if self._has_file(master):
            return ImageData.from_file(self._image_file(master), master)
        return self._facade(MASTER).download(self._master_ref, master)

    def _read_head(self, master: Image, from_file: bool) -> bytes | None:
        """The first MiB of a master image: of its images_dir file, or from the master.

        RegionError (a FacadeError from the master) if it cannot be read.
        """
        if not from_file:
            return self._facade(MASTER).read_head(self._master_ref, master, HEAD_SIZE)
        path = self._image_file(master)
        try:
            with open(path, "rb") as stream:
                return stream.read(HEAD_SIZE)
        except OSError as error:
            raise RegionError(f"cannot read {path}: {os_reason(error)}") from None

    def _sender(self, region: RegionRef, listing: MasterListing) -> RegionSender:
        """How master images get into ``region`` (see :mod:`transfers`)."""
        return RegionSender(
            region=region,
            facade=self._facade(region.target),
            target=self.config.targets[region.target],
            master_target=self.config.master,
            master_region=self._master_ref,
            open_data=self._open_data,
            has_file=self._has_file,
            read_head=self._read_head,
            head_formats=listing.head_formats,
        )

    def _plan_and_apply(
        self, region: RegionRef, dry_run: bool, fresh: bool, only: Iterable[str] | None = None
    ) -> RegionFigures:
        listing = self._listing(fresh)  # once the lock is held: the master as it is now
        master = listing.kept()  # the master's failure is the region's, before it is listed
        facade = self._facade(region.target)
        regional = facade.list_images(region)
        plan = self._plan(region, listing, regional)
        if only is not None:
            plan = only_images(plan, only, master)
        log_notices(plan.notices)
        sender = self._sender(region, listing)
        if dry_run:  # the plan printed: no facade to change anything with
            return print_plan(plan, sender)

        def statuses_of(images: list[Image]) -> dict[str, int]:
            # What the next look at the region would find: the same plan, made again.
            replanned = self._plan(region, listing, images)
            return dict(Counter(entry.status for entry in replanned.statuses))

        return apply_plan(plan, facade, sender, regional, statuses_of)
