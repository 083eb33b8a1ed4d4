"""The agent's loop in this process, on the mock, with notifications made up by the test.

A stand-in for the notification listener hands the agent a thousand notifications of one
image at once: they are one sync per region, not a thousand. An owner that owns one
region only keeps the agent out of the others (the seam a coordination layer plugs in).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fiwareglancesync.agent.metrics import AgentMetrics
from fiwareglancesync.agent.service import Agent
from fiwareglancesync.config import load_config
from fiwareglancesync.facades import mock_factory
from fiwareglancesync.facades.mock_facade import JournalStore

EXAMPLE_CONFIG = Path(__file__).parents[2] / "examples" / "glancesync.conf"
MASTER = "Valladolid"


class MadeUpBus:
    """The follower's interface: the bus is up at once, and notifies what the test says."""

    last: MadeUpBus | None = None

    def __init__(self, settings, on_image, on_state, on_malformed, check_every, debug=False):
        self.on_image = on_image
        self.on_state = on_state
        MadeUpBus.last = self

    def start(self) -> None:
        self.on_state(True)

    def stop(self) -> None:
        pass


class OnlyLeon:
    def owned(self, regions):
        return [region for region in regions if region.fullname == "Leon"]

    def close(self) -> None:
        pass


def _wait_for(probe, what: str, attempts: int = 300):
    for _ in range(attempts):
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen")


@pytest.fixture
def running(store, tmp_path):
    overrides = [
        "main.notification_url=rabbit://user:secret@127.0.0.1:9/",
        "main.event_delay=0.3",
        "main.audit_interval=3600",
        f"main.lock_dir={tmp_path / 'locks'}",
    ]
    config = load_config({"GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG)}, overrides)
    metrics = AgentMetrics()
    agent = Agent(
        config,
        mock_factory(JournalStore(store)),
        lambda config: OnlyLeon(),
        metrics,
        reload_config=lambda: config,
        follower_factory=MadeUpBus,
    )
    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        yield metrics.registry
    finally:
        agent.request_stop()
        thread.join(60)
    assert not thread.is_alive()


def _value(registry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_thousand_notifications_of_one_image_are_one_sync(running, store):
    registry = running
    _wait_for(lambda: _value(registry, "glancesync_agent_last_audit_timestamp_seconds"), "audit")
    assert _value(registry, "glancesync_agent_following_notifications") == 1
    writer = JournalStore(store)
    ubuntu = next(i for i in writer.read(MASTER) if i.name == "base_ubuntu_22.04")
    assert writer.update_image(
        MASTER, ubuntu.copy(user_properties={**ubuntu.user_properties, "nid": "7"})
    )
    assert MadeUpBus.last is not None
    for _ in range(1000):
        MadeUpBus.last.on_image(ubuntu.id, "image.update")

    def leon_copy():
        return [i for i in JournalStore(store).read("Leon") if i.name == ubuntu.name]

    _wait_for(lambda: leon_copy() and leon_copy()[0].user_properties.get("nid") == "7", "Leon")
    _wait_for(
        lambda: _value(registry, "glancesync_agent_region_last_lag_seconds", region="Leon"),
        "the lag of Leon",
    )
    assert _value(registry, "glancesync_agent_events_total", source="notification") == 1000
    assert _value(registry, "glancesync_agent_events_coalesced_total") >= 990
    leon_syncs = _value(
        registry,
        "glancesync_agent_region_syncs_total",
        region="Leon",
        reason="change",
        outcome="ok",
    )
    assert 1 <= leon_syncs <= 2
    # Burgos is not this agent's: neither its audit nor the change touched it.
    burgos = [i for i in JournalStore(store).read("Burgos") if i.name == ubuntu.name]
    assert all(i.user_properties.get("nid") != "7" for i in burgos)
    assert _value(registry, "glancesync_agent_owned_regions") == 1
    assert not _value(
        registry,
        "glancesync_agent_region_syncs_total",
        region="Burgos",
        reason="audit",
        outcome="ok",
    )
