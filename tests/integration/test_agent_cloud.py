"""glancesync-agent on the real test cloud: the master's changes reach every region.

The master's Glance sends its notifications to a RabbitMQ the suite starts on
127.0.0.1 (``[oslo_messaging_notifications] driver = messagingv2``); the agent runs as
a subprocess, as systemd would run it, and the regions are looked at with glanceclient.
One test follows the notifications (polling is set to once an hour, so only they can
move anything), the other polls with no bus at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sync_cloud_support import CloudSync, environment_without_openstack, payload

from tests.fixtures.rabbitmq import RabbitMQ

REGIONS = ("RegionA", "RegionB", "RegionC")
REPO = Path(__file__).resolve().parents[2]


class CloudAgent:
    def __init__(
        self, sync: CloudSync, workdir: Path, *extra: str, script: str | None = None
    ) -> None:
        self.log_path = workdir / "agent.log"
        env = {**environment_without_openstack(), **sync.environ(), "PYTHONPATH": str(REPO)}
        program = ["-m", "fiwareglancesync.agent.cli"] if script is None else ["-c", script]
        argv = [sys.executable, *program, *extra]
        with self.log_path.open("w") as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, probe: Callable[[], Any], what: str, attempts: int = 300) -> Any:
        for _ in range(attempts):
            found = probe()
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"{what} did not happen; agent log:\n{self.log}")

    def wait_for_line(self, text: str) -> None:
        self.wait_for(lambda: text in self.log, repr(text))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def sync(cloud, tmp_path, monkeypatch) -> CloudSync:
    cloud.purge_images()
    monkeypatch.chdir(tmp_path)
    return CloudSync(cloud, tmp_path)


@pytest.fixture
def notifying_cloud(cloud, rabbitmq: RabbitMQ) -> Iterator[Any]:
    """The cloud, its master's Glance notifying the suite's RabbitMQ (as before after)."""
    cloud.notify_to(rabbitmq.url)
    try:
        yield cloud
    finally:
        cloud.notify_to(None)


@pytest.fixture
def start_agent(sync, tmp_path) -> Iterator[Callable[..., CloudAgent]]:
    agents: list[CloudAgent] = []

    def start(script: str | None = None, master: dict | None = None, **main: str) -> CloudAgent:
        """The agent (or ``script``, which calls its main()) on a configuration with
        these [main] and [master] options."""
        settings = {
            "audit_interval": "3600",
            "event_delay": "0.5",
            "lock_dir": str(tmp_path / "locks"),
        }
        sync.write_config(main={**settings, **main}, master=master)
        metrics = tmp_path / "agent.prom"
        agent = CloudAgent(sync, tmp_path, "--metrics-file", str(metrics), script=script)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.kill()


def copies(sync: CloudSync, name: str) -> dict[str, dict[str, Any]]:
    """The active copy of ``name`` in each region that has one."""
    found = {}
    for region in REGIONS:
        active = [i for i in sync.named(region, name) if i["status"] == "active"]
        if active:
            found[region] = active[0]
    return found


def test_notifications_bring_an_upload_a_property_change_and_a_deletion(
    notifying_cloud,
    rabbitmq,
    sync,
    start_agent,
    tmp_path,
):
    agent = start_agent(notification_url=rabbitmq.url, poll_interval="3600")
    agent.wait_for_line("Audit done")
    agent.wait_for_line("Following the master's notifications")
    data = payload("agent-notified")
    master = sync.add_image("Master", "agent-notified", data, purpose="demo")
    agent.wait_for(lambda: len(copies(sync, "agent-notified")) == 3, "a copy in every region")
    assert {c["checksum"] for c in copies(sync, "agent-notified").values()} == {master["checksum"]}

    sync.client("Master").images.update(master["id"], purpose="changed")

    def changed() -> bool:
        found = copies(sync, "agent-notified")
        return len(found) == 3 and {c.get("purpose") for c in found.values()} == {"changed"}

    agent.wait_for(changed, "the property change in every region")

    sync.client("Master").images.delete(master["id"])
    agent.wait_for_line(f"Master: deleted image agent-notified ({master['id']})")
    assert len(copies(sync, "agent-notified")) == 3  # GlanceSync never deletes a copy

    _send_malformed(rabbitmq.url)
    agent.wait_for_line("WARNING:Malformed notification skipped")
    assert agent.stop() == 0
    assert "glancesync-agent stopped" in agent.log
    assert "Master: new image agent-notified" in agent.log
    metrics = (tmp_path / "agent.prom").read_text()
    assert 'glancesync_agent_events_total{source="notification"}' in metrics
    assert 'glancesync_agent_events_total{source="poll"}' not in metrics
    assert "glancesync_agent_malformed_notifications_total 1.0" in metrics
    assert sync.unfinished(REGIONS) == []


MALFORMED_SENDER = """
import sys, warnings
warnings.simplefilter("ignore")
import oslo_messaging
from oslo_config import cfg
oslo_messaging.set_transport_defaults("glance")  # Glance's exchange, as Glance sets it
conf = cfg.ConfigOpts()
conf([], project="glancesync-tests", default_config_files=[], default_config_dirs=[])
transport = oslo_messaging.get_notification_transport(conf, url=sys.argv[1])
notifier = oslo_messaging.Notifier(
    transport, "image.test", driver="messagingv2", topics=["notifications"]
)
notifier.info({}, "image.update", {"name": "no id"})
transport.cleanup()
"""


def _send_malformed(url: str) -> None:
    """A notification on the master's topic whose payload names no image (sent from a
    process of its own: oslo.messaging brings eventlet, which dislikes this one's forks)."""
    subprocess.run([sys.executable, "-c", MALFORMED_SENDER, url], check=True, timeout=60)


def test_polling_brings_an_upload_without_a_bus(sync, start_agent):
    agent = start_agent(poll_interval="1")
    agent.wait_for_line("Audit done")
    master = sync.add_image("Master", "agent-polled", payload("agent-polled"))
    agent.wait_for(lambda: len(copies(sync, "agent-polled")) == 3, "a copy in every region")
    assert f"Master: new image agent-polled ({master['id']})" in agent.log
    assert "Following the master's notifications" not in agent.log
    assert agent.stop() == 0


SLOW_STREAMING_AGENT = """
import sys, time
from fiwareglancesync.agent.cli import main
from fiwareglancesync.facades.glance import GlanceFacade

class Slow(GlanceFacade):
    def upload(self, region, image, data):
        chunks = data.chunks
        def slowly():
            for block in chunks():
                print("A CHUNK IS SENT", flush=True)
                time.sleep(2)
                yield block
        data.chunks = slowly
        return super().upload(region, image, data)

sys.exit(main(sys.argv[1:], facade_factory=lambda environ: Slow))
"""


def test_sigterm_mid_upload_leaves_no_half_made_copy(sync, start_agent):
    agent = start_agent(
        script=SLOW_STREAMING_AGENT, master={"transfer": "stream"}, poll_interval="1"
    )
    agent.wait_for_line("Audit done")
    sync.add_image("Master", "agent-cut", payload("agent-cut", size=4 * 1024 * 1024))
    agent.wait_for_line("A CHUNK IS SENT")
    assert agent.stop() == 0
    assert "INFO:Stopping: the sync in progress was abandoned" in agent.log
    assert [(r, sync.named(r, "agent-cut")) for r in REGIONS] == [(r, []) for r in REGIONS]
