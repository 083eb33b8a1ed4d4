"""What one run learnt of one region: the one shape of a region's figures.

The executor (:mod:`apply`) fills in what it did, the command line adds whether the
region succeeded and how long it took, a ``--parallel`` child hands it to the parent as
JSON, and the metrics file (:mod:`metrics`) and the service's sync histogram
(:mod:`app.metrics`) read it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RegionFigures:
    """One region's figures in one run.

    ``found`` counts the images by status as the run found them, before acting; ``left``
    as the run left them: an image whose every planned action was carried out counts as
    ``ok``, so after a sync that uploaded everything nothing is pending any more. A run
    that changes nothing (``--show-status``, ``--dry-run``) leaves what it found.
    """

    region: str
    ok: bool = True
    duration: float = 0.0
    found: dict[str, int] = field(default_factory=dict)
    left: dict[str, int] = field(default_factory=dict)
    uploaded_bytes: int = 0
    uploaded_images: int = 0
    streamed_bytes: int = 0  # of the uploaded bytes, those that went through this host
    pending_bytes: int = 0  # what a dry run would have sent
    changes: int = 0

    @classmethod
    def of_statuses(cls, region: str, statuses: Iterable[str]) -> RegionFigures:
        """The figures of a run that only looked: what it found is what it leaves."""
        counts = dict(Counter(statuses))
        return cls(region, found=counts, left=dict(counts))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegionFigures:
        return cls(**data)
