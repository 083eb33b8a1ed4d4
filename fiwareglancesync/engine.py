"""GlanceSync: the public API shared by ``sync.py`` and the REST service.

It holds a validated configuration and a facade factory chosen at the edge, lists the
master region once, and for each region builds a plan (:mod:`plan`) and, when asked,
carries it out (:mod:`apply`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from fiwareglancesync.apply import RegionResult, apply_plan
from fiwareglancesync.condition import ConditionLimitError
from fiwareglancesync.config import MASTER, Config, TargetConfig
from fiwareglancesync.dryrun import print_plan
from fiwareglancesync.errors import (
    ConfigError,
    FacadeError,
    GlanceSyncError,
    RegionError,
    UsageError,
    os_reason,
)
from fiwareglancesync.facades.base import Facade, ImageData
from fiwareglancesync.fields import wanted_members
from fiwareglancesync.image import Image
from fiwareglancesync.plan import (
    ImageStatus,
    Notice,
    RegionPlan,
    filter_master_images,
    plan_region,
    select_images,
)
from fiwareglancesync.preflight import HEAD_SIZE
from fiwareglancesync.region import RegionRef
from fiwareglancesync.regionlock import RegionLocks
from fiwareglancesync.transfers import RegionSender

logger = logging.getLogger(__name__)

FacadeFactory = Callable[[TargetConfig], Facade]


def log_notices(notices: Iterable[Notice]) -> None:
    for level, message in notices:
        logger.log(level, "%s", message)


class CloudCache:
    """What the engines of one long-lived process share: facades and the master listing.

    ``sync.py`` makes one engine per run, which lists the master once. The service makes
    one per request: without this, every request would log in to Keystone again (a new
    token, which every Glance then validates) and list the master again. With it, the
    facades (their Keystone sessions, tokens and HTTP connections) live as long as the
    process, and the master is listed at most once per ``master_max_age`` seconds (0:
    every time). keystoneauth renews a token near its expiry and after a 401.
    """

    def __init__(
        self,
        factory: FacadeFactory,
        master_max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._factory = factory
        self.master_max_age = master_max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._master_lock = threading.Lock()  # one listing at a time; the others wait for it
        self._facades: dict[str, Facade] = {}
        self._project_ids: dict[str, str] = {}
        self._master: tuple[list[Image], float] | None = None
        self._selected: dict[tuple[str, float], list[Image]] = {}
        self._members: dict[tuple[str, float], dict[str, tuple[str, ...]]] = {}

    def facade(self, config: TargetConfig) -> Facade:
        with self._lock:
            if config.name not in self._facades:
                self._facades[config.name] = self._factory(config)
            return self._facades[config.name]

    def project_ids(self) -> dict[str, str]:
        return self._project_ids

    def master(
        self, list_master: Callable[[], list[Image]], fresh: bool = False
    ) -> tuple[list[Image], float]:
        """The kept master images and when they were listed, listing them when stale
        (or when ``fresh`` is asked for: a sync, which must not upload what is gone)."""
        with self._master_lock:
            cached = self._master
            stale = cached is None or self._clock() - cached[1] >= self.master_max_age
            if stale or fresh:
                self._master = cached = (list_master(), self._clock())
                with self._lock:
                    self._selected.clear()
                    self._members.clear()
            return cached

    def selected(self, key: tuple[str, float], select: Callable[[], list[Image]]) -> list[Image]:
        with self._lock:
            found = self._selected.get(key)
        if found is None:
            found = select()
            with self._lock:
                self._selected[key] = found
        return found

    def members(
        self, key: tuple[str, float], look_up: Callable[[], dict[str, tuple[str, ...]]]
    ) -> dict[str, tuple[str, ...]]:
        """A target's member projects for one master listing, looked up once (it asks
        Keystone for the projects: not something to do at every request)."""
        with self._lock:
            found = self._members.get(key)
        if found is None:
            found = look_up()
            with self._lock:
                self._members[key] = found
        return found

    def age(self, listed_at: float) -> float:
        return max(0.0, self._clock() - listed_at)

    def close(self) -> None:
        with self._lock:
            for facade in self._facades.values():
                facade.close()
            self._facades.clear()


class GlanceSync:
    """Synchronise the regions of a configuration through facades made on demand.

    With a :class:`CloudCache` (the service), facades and the master listing are shared
    with the other engines of the process; without one (``sync.py``), the engine has its
    own and lists the master once.
    """

    def __init__(
        self, config: Config, facade_factory: FacadeFactory, cache: CloudCache | None = None
    ):
        self.config = config
        self._factory = facade_factory
        self._cache = cache
        self._facades: dict[str, Facade] = {}
        self._project_ids: dict[str, str] = cache.project_ids() if cache else {}
        self._master: list[Image] | None = None
        self._master_listed_at: float | None = None
        self._master_error: GlanceSyncError | None = None
        self._selected: dict[str, list[Image]] = {}
        self._members: dict[str, dict[str, tuple[str, ...]]] = {}
        # What the pre-flight data check found in each master image (see transfers).
        self._head_formats: dict[str, list[str]] = {}
        self.locks = RegionLocks(config.lock_dir, config.lock_timeout)
        # A sync lists the master itself, whatever the cache holds (see CloudCache).
        self.fresh_master = False

    # ------------------------------------------------------------------- facades

    def target(self, name: str) -> TargetConfig:
        try:
            return self.config.targets[name]
        except KeyError:
            known = ", ".join(sorted(self.config.targets))
            raise UsageError(f"unknown target {name!r} (known targets: {known})") from None

    def facade(self, target: str) -> Facade:
        if self._cache is not None:
            return self._cache.facade(self.target(target))
        if target not in self._facades:
            self._facades[target] = self._factory(self.target(target))
        return self._facades[target]

    def project_id(self, target: str) -> str:
        if target not in self._project_ids:
            self._project_ids[target] = self.facade(target).project_id()
        return self._project_ids[target]

    def forget_connections(self) -> None:
        """Drop facades (after a fork, a child must not share the parent's sockets)."""
        self._facades.clear()

    def close(self) -> None:
        """Release this engine's facades (shared ones live on with their cache)."""
        for facade in self._facades.values():
            facade.close()
        self._facades.clear()

    # ------------------------------------------------------------------- regions

    def normalise(self, name: str, exact: bool = False) -> RegionRef:
        """A region name from the command line (or, ``exact``, a URL), checked: its target
        exists. On the command line spaces around it do not count; in a URL every
        character does, so ``'Burgos '`` or ``':Burgos'`` is no spelling of ``Burgos``.
        """
        if exact and (name != name.strip() or name.startswith(":")):
            raise UsageError(f"bad region name {name!r}: no such region")
        region = RegionRef.parse(name if exact else name.strip())
        self.target(region.target)
        return region

    def target_regions(self, target: str) -> list[RegionRef]:
        """A target's regions as its catalog lists them, less ignore_regions (and the master)."""
        config = self.target(target)
        ignored = set(config.ignore_regions)
        if target == MASTER:
            ignored.add(self.config.master_region)
        try:
            names = self.facade(target).regions()
        except GlanceSyncError:
            raise
        except Exception as error:  # a facade bug: say what failed, the region goes on
            raise RegionError(f"cannot list the regions of target {target}: {error}") from error
        return [RegionRef(target, name) for name in names if name not in ignored]

    def _preferred_first(self, regions: list[RegionRef]) -> list[RegionRef]:
        order = list(self.config.preferable_order)

        def rank(region: RegionRef) -> int:
            for name in (region.fullname, region.name):
                if name in order:
                    return order.index(name)
            return len(order)

        return sorted(regions, key=rank)  # stable: the rest keep their listing order

    def expand_regions(self, names: Sequence[str]) -> list[RegionRef]:
        """Command-line region names → ordered regions, without duplicates."""
        regions, failures = self.expand_regions_isolated(names)
        if failures:
            raise failures[0][1]
        return regions

    def expand_regions_isolated(
        self, names: Sequence[str], known_only: bool = False
    ) -> tuple[list[RegionRef], list[tuple[str, GlanceSyncError]]]:
        """Like :meth:`expand_regions`, but a target whose regions cannot be listed fails
        alone: its failure is returned beside the regions of the other targets.

        Every name is checked first, so a usage error still stops the run before any
        target is asked anything; ``known_only`` (the command line): a named region its
        target does not have is a usage error too, before any region is touched.
        """
        wanted: list[str | RegionRef] = []  # a target to expand, or a region
        for name in names or [f"{MASTER}:"]:
            stripped = name.strip()
            if stripped.endswith(":") and stripped.count(":") == 1:
                target = stripped[:-1] or MASTER
                self.target(target)
                wanted.append(target)
            else:
                wanted.append(self.normalise(name))
        if known_only:
            self._check_known([item for item in wanted if isinstance(item, RegionRef)])
        result: list[RegionRef] = []
        failures: list[tuple[str, GlanceSyncError]] = []
        for item in wanted:
            if isinstance(item, RegionRef):
                result.append(item)
                continue
            try:
                result.extend(self._preferred_first(self.target_regions(item)))
            except GlanceSyncError as error:
                failures.append((item, error))
        return list(dict.fromkeys(result)), failures

    def _check_known(self, regions: Iterable[RegionRef]) -> None:
        """UsageError naming every region its target's catalog lacks. A target whose
        regions cannot be listed cannot tell: its regions then fail on their own."""
        problems = []
        for region in dict.fromkeys(regions):
            try:
                known = self.facade(region.target).regions()
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

    def is_known_region(self, region: RegionRef) -> bool:
        if region.target not in self.config.targets:
            return False
        return region.name in self.facade(region.target).regions()

    # ------------------------------------------------------------------- images

    def master_images(self) -> list[Image]:
        """The kept master images, listed once per run (or per cache period)."""
        if self._master_error is not None:
            raise self._master_error
        if self._master is None:
            try:
                if self._cache is None:
                    self._master, self._master_listed_at = self._list_master(), time.monotonic()
                else:
                    self._master, self._master_listed_at = self._cache.master(
                        self._list_master, fresh=self.fresh_master
                    )
            except RegionError as error:
                self._master_error = RegionError(f"master region: {error}")
                raise self._master_error from error
        return self._master

    def _list_master(self) -> list[Image]:
        listed = self._list(RegionRef(MASTER, self.config.master_region))
        kept, notices = filter_master_images(
            listed, self.project_id(MASTER), self.config.master_region
        )
        log_notices(notices)
        return kept

    def master_age(self) -> float | None:
        """Seconds since the master listing this engine uses was made (None: not yet)."""
        if self._master_listed_at is None:
            return None
        if self._cache is not None:
            return self._cache.age(self._master_listed_at)
        return max(0.0, time.monotonic() - self._master_listed_at)

    def selected_images(self, target: str) -> list[Image]:
        if target not in self._selected:
            config = self.target(target)
            master = self.master_images()
            try:
                if self._cache is not None and self._master_listed_at is not None:
                    key = (target, self._master_listed_at)
                    found = self._cache.selected(key, lambda: select_images(master, config))
                else:
                    found = select_images(master, config)
                self._selected[target] = found
            except ConditionLimitError as error:
                # Not a property of one region: the expression itself is unusable.
                raise ConfigError([f"{target}.metadata_condition: {error}"]) from None
        return self._selected[target]

    def select_for_regions(self, regions: Iterable[RegionRef]) -> None:
        """Choose each target's images now, before any region is touched.

        A ``metadata_condition`` that goes past its limits on some master image is then a
        configuration error of the whole run (exit status 2), not a failure of whichever
        region happened to be first. A master that cannot be listed is left to the
        regions to report.
        """
        try:
            self.master_images()
        except GlanceSyncError:
            return
        for target in dict.fromkeys(region.target for region in regions):
            if target in self.config.targets:
                self.selected_images(target)

    def members(self, target: str) -> dict[str, tuple[str, ...]]:
        """The target's project ids each shared master image's copy is shared with, by
        master image id (the ``members`` option; looked up once per run)."""
        if target not in self._members:
            self.selected_images(target)  # the master listing the answer belongs to
            if self._cache is not None and self._master_listed_at is not None:
                key = (target, self._master_listed_at)
                found = self._cache.members(key, lambda: self._lookup_members(target))
            else:
                found = self._lookup_members(target)
            self._members[target] = found
        return self._members[target]

    def _lookup_members(self, target: str) -> dict[str, tuple[str, ...]]:
        config = self.target(target)
        shared = [i for i in self.selected_images(target) if i.visibility == "shared"]
        if not config.members or not shared:
            return {}
        same = config.members_same
        try:
            master_names: dict[str, str] = {}
            if same:
                ids = {member for image in shared for member in image.members}
                master_names = self.facade(MASTER).project_names(ids)
                names = set(master_names.values())
            else:
                names = set(config.members)
            found = self.facade(target).project_ids_by_name(names)
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
            self.project_id(target),
        )
        for warning in plan.warnings:
            logger.warning("%s", warning)
        return plan.by_image

    def known_project_ids(self) -> dict[str, str]:
        """The project ids asked for so far, by target (for backups)."""
        return dict(self._project_ids)

    def _list(self, region: RegionRef) -> list[Image]:
        try:
            return self.facade(region.target).list_images(region)
        except GlanceSyncError:
            raise
        except Exception as error:  # a facade bug: say what failed, the region goes on
            raise RegionError(f"cannot list the images: {error}") from error

    def list_region(self, region: RegionRef) -> list[Image]:
        return self._list(region)

    def plan(self, region: RegionRef) -> RegionPlan:
        """Statuses and actions for one region (lists the region; changes nothing)."""
        master = self.master_images()
        regional = self.list_region(region)
        return plan_region(
            region,
            master,
            regional,
            self.target(region.target),
            self.project_id(region.target),
            self.selected_images(region.target),
            self.members(region.target),
        )

    def region_status(self, region: RegionRef) -> list[ImageStatus]:
        plan = self.plan(region)
        log_notices(plan.notices)
        return plan.statuses

    def _image_file(self, master: Image) -> str:
        return os.path.join(self.config.images_dir, master.id)

    def has_file(self, master: Image) -> bool:
        """Is there a copy of ``master`` in images_dir?"""
        return os.path.isfile(self._image_file(master))

    def open_data(self, master: Image) -> ImageData:
        """Read a master image from images_dir when it is there, else from the master."""
        if self.has_file(master):
            return ImageData.from_file(self._image_file(master), master)
        return self.facade(MASTER).download(self.master_ref, master)

    def read_head(self, master: Image, from_file: bool) -> bytes | None:
        """The first MiB of a master image: of its images_dir file, or from the master.

        RegionError (a FacadeError from the master) if it cannot be read.
        """
        if not from_file:
            return self.facade(MASTER).read_head(self.master_ref, master, HEAD_SIZE)
        path = self._image_file(master)
        try:
            with open(path, "rb") as stream:
                return stream.read(HEAD_SIZE)
        except OSError as error:
            raise RegionError(f"cannot read {path}: {os_reason(error)}") from None

    @property
    def master_ref(self) -> RegionRef:
        return RegionRef(MASTER, self.config.master_region)

    def sender(self, region: RegionRef) -> RegionSender:
        """How master images get into ``region`` (see :mod:`transfers`)."""
        return RegionSender(
            region=region,
            facade=self.facade(region.target),
            target=self.config.targets[region.target],
            master_target=self.config.master,
            master_region=self.master_ref,
            open_data=self.open_data,
            has_file=self.has_file,
            read_head=self.read_head,
            head_formats=self._head_formats,
        )

    def sync_region(self, region: RegionRef, dry_run: bool = False) -> RegionResult:
        """Plan and apply one region; raise RegionError if it cannot be completed.

        A real sync holds the region's host-wide lock while it plans and applies, so a
        second run on the same region waits (up to lock_timeout) and then plans again;
        a dry run changes nothing and never waits.
        """
        facade = self.facade(region.target)
        key = None if dry_run else facade.lock_key(region)
        if key is None:
            return self._plan_and_apply(region, dry_run)
        with self.locks.hold(key, region.fullname):
            return self._plan_and_apply(region, dry_run)

    def _plan_and_apply(self, region: RegionRef, dry_run: bool) -> RegionResult:
        plan = self.plan(region)
        log_notices(plan.notices)
        if dry_run:  # the plan printed: no facade to change anything with
            return print_plan(plan, self.sender(region))
        return apply_plan(plan, self.facade(region.target), self.sender(region))

    def finish_region(self, region: RegionRef) -> None:
        """The region is done for this run: its facade may tidy up (the mock compacts)."""
        facade = self._facades.get(region.target)
        if facade is not None:
            facade.finish_region(region)
