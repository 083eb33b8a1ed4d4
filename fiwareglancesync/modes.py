"""What a run of ``sync.py`` does: one mode per run, chosen on the command line."""

from __future__ import annotations

import enum


class Mode(enum.Enum):
    SYNC = "sync"
    DRY_RUN = "dry-run"
    STATUS = "status"  # --show-status
    REGIONS = "regions"  # --show-regions
    BACKUP = "backup"  # --make-backup

    @property
    def prints_data(self) -> bool:
        """Standard output carries data only; log records go to standard error."""
        return self in (Mode.STATUS, Mode.REGIONS)

    @property
    def syncs(self) -> bool:
        """A sync or a dry run: the log says which regions start and finish."""
        return self in (Mode.SYNC, Mode.DRY_RUN)

    @property
    def read_only(self) -> bool:
        """Changes no image anywhere (the mock store then writes nothing either)."""
        return self is not Mode.SYNC
