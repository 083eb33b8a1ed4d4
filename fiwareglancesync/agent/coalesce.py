"""Many events for one image become one sync: the pending changes, by image id.

Events come from the notification listener's threads and from the agent's polls; the
agent's loop takes them all at once when the oldest has waited ``delay`` seconds (the
``event_delay`` option). An event for an image already pending is coalesced into it: a
burst of a thousand updates of an image is one entry, synced once (twice if the burst
goes on while the first sync runs). A pure class but for its lock; the clock is given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Pending:
    """An image waiting for its sync: when its first event was seen, and how many."""

    first_seen: float
    events: int = 1
    sources: set[str] = field(default_factory=set)


class Coalescer:
    def __init__(self, delay: float, clock: Callable[[], float] = time.monotonic):
        self.delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, Pending] = {}
        self.received = 0
        self.coalesced = 0

    def add(self, image_id: str, source: str, seen: float | None = None) -> bool:
        """Record an event for ``image_id``; False when it joined one already pending."""
        now = self._clock() if seen is None else seen
        with self._lock:
            self.received += 1
            entry = self._pending.get(image_id)
            if entry is not None:
                entry.events += 1
                entry.sources.add(source)
                entry.first_seen = min(entry.first_seen, now)
                self.coalesced += 1
                return False
            self._pending[image_id] = Pending(now, 1, {source})
            return True

    def wait_time(self) -> float | None:
        """Seconds until the pending images are due (0: now); None when none is."""
        with self._lock:
            if not self._pending:
                return None
            oldest = min(entry.first_seen for entry in self._pending.values())
        return max(0.0, oldest + self.delay - self._clock())

    def take(self) -> dict[str, Pending]:
        """Every pending image, removed: the events that come next make a new batch."""
        with self._lock:
            taken, self._pending = self._pending, {}
        return taken

    def put_back(self, batch: dict[str, Pending]) -> None:
        """Return a batch that could not be synced (the master could not be listed)."""
        with self._lock:
            for image_id, entry in batch.items():
                current = self._pending.get(image_id)
                if current is None:
                    self._pending[image_id] = entry
                else:
                    current.first_seen = min(current.first_seen, entry.first_seen)
                    current.events += entry.events
                    current.sources |= entry.sources

    def forget_before(self, moment: float) -> dict[str, Pending]:
        """Remove (and return) the images first seen before ``moment``: an audit that
        listed the master after them has synced them."""
        with self._lock:
            done = {i: e for i, e in self._pending.items() if e.first_seen < moment}
            for image_id in done:
                del self._pending[image_id]
        return done

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)
