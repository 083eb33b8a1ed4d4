"""glancesync-agent as an operator runs it: a subprocess on the bundled example (mock).

Each test starts the agent, waits for what its log says, changes the mock's master the
way another process would (through its own store) and looks at the regions afterwards.
The waits are bounded in attempts, never asserted on time.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fiwareglancesync.agent.cli import main
from fiwareglancesync.errors import ExitStatus
from fiwareglancesync.facades.mock_facade import JournalStore

ROOT = Path(__file__).parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "glancesync.conf"
MASTER = "Valladolid"
QUICK = ["main.poll_interval=0.5", "main.event_delay=0", "main.audit_interval=3600"]


class RunningAgent:
    """An agent subprocess whose log (its standard output) goes to a file."""

    def __init__(self, argv: list[str], env: dict[str, str], workdir: Path):
        self.log_path = workdir / "agent.log"
        self.err_path = workdir / "agent.err"
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=workdir,
            stdout=self.log_path.open("w"),
            stderr=self.err_path.open("w"),
            start_new_session=True,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, probe: Callable[[], object], what: str, attempts: int = 600) -> object:
        for _ in range(attempts):
            found = probe()
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"{what} did not happen; log:\n{self.log}\n{self.err_path.read_text()}")

    def wait_for_line(self, text: str, count: int = 1) -> None:
        self.wait_for(lambda: self.log.count(text) >= count, repr(text))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def start_agent(environ, tmp_path) -> Iterator[Callable[..., RunningAgent]]:
    started: list[RunningAgent] = []

    def start(
        *extra: str, script: str | None = None, script_args: tuple = (), env: dict | None = None
    ) -> RunningAgent:
        """The agent (or a script calling its main() with argv[len(script_args) + 1:])."""
        argv = [sys.executable, "-m", "fiwareglancesync.agent.cli"]
        if script is not None:
            argv = [sys.executable, "-c", script, *map(str, script_args)]
        argv += ["--config", *QUICK, f"main.lock_dir={tmp_path / 'locks'}", *extra]
        full_env = {**os.environ, **environ, "PYTHONPATH": str(ROOT), **(env or {})}
        agent = RunningAgent(argv, full_env, tmp_path)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.kill()


def master_image(store: Path, name: str, **changes) -> str:
    """A new public master image, as another process adds it; its id."""
    writer = JournalStore(store)
    base = next(i for i in writer.read(MASTER) if i.name == "base_ubuntu_22.04")
    made = writer.add_image(MASTER, base.copy(name=name, checksum=f"{name:0<32}"[:32], **changes))
    assert made is not None
    return made.id


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def regional(store: Path, region: str, name: str):
    return [i for i in (JournalStore(store).read(region) or []) if i.name == name]


def test_a_new_master_image_reaches_every_region_by_polling(start_agent, store, tmp_path):
    metrics = tmp_path / "agent.prom"
    port = _free_port()
    agent = start_agent("--metrics-file", str(metrics), "--metrics-port", str(port))
    agent.wait_for_line("Audit done")
    agent.wait_for_line(f"INFO:Metrics served on http://127.0.0.1:{port}/metrics")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        served = answer.read().decode()
    assert "glancesync_agent_owned_regions 3.0" in served
    assert 'glancesync_agent_region_owned{region="other:Madrid"} 1.0' in served
    image_id = master_image(store, "fresh_image")
    agent.wait_for_line(f"Master: new image fresh_image ({image_id})")
    # A copy of base_ubuntu_22.04: of type baseimages, so target other selects it too.
    for region in ("Leon", "Burgos", "other:Madrid"):
        agent.wait_for(lambda r=region: regional(store, r, "fresh_image"), f"{region} has it")
    agent.wait_for_line("1 changed image(s) in step", count=3)
    status = agent.stop()
    assert status == ExitStatus.OK
    assert "INFO:glancesync-agent stopped" in agent.log
    text = metrics.read_text()
    assert 'glancesync_agent_events_total{source="poll"} 1.0' in text
    assert re.search(r'glancesync_agent_change_lag_seconds_count\{region="Leon"\} 1\.0', text)
    assert "glancesync_agent_owned_regions 3.0" in text


def test_a_property_change_follows_and_a_deletion_leaves_the_copies(start_agent, store):
    agent = start_agent()
    agent.wait_for_line("Audit done")
    writer = JournalStore(store)
    ubuntu = next(i for i in writer.read(MASTER) if i.name == "base_ubuntu_22.04")
    changed = ubuntu.copy(user_properties={**ubuntu.user_properties, "nid": "999"})
    assert writer.update_image(MASTER, changed)
    agent.wait_for_line("Master: image base_ubuntu_22.04 (m-ubuntu) changed: properties")

    def leon_has_it() -> bool:
        return any(
            i.user_properties.get("nid") == "999" for i in regional(store, "Leon", ubuntu.name)
        )

    agent.wait_for(leon_has_it, "the property reached Leon")
    assert JournalStore(store).delete_image(MASTER, ubuntu.id)
    agent.wait_for_line(
        "Master: deleted image base_ubuntu_22.04 (m-ubuntu); its regional copies stay"
    )
    assert agent.stop() == ExitStatus.OK
    assert regional(store, "Leon", ubuntu.name)


COUNTING_AGENT = """
import sys
from fiwareglancesync.agent.cli import main
from fiwareglancesync.facades.mock_facade import MockFacade, JournalStore

class Counting(MockFacade):
    def list_images(self, region):
        with open(sys.argv[1], "a") as out:
            print(region.fullname, file=out)
        return super().list_images(region)

store = JournalStore(sys.argv[2])
sys.exit(main(sys.argv[3:], facade_factory=lambda env: lambda target: Counting(store, target)))
"""


def test_while_nothing_changes_only_the_master_is_listed(start_agent, store, tmp_path):
    listed = tmp_path / "listed.txt"
    metrics = tmp_path / "agent.prom"
    agent = start_agent(
        "--metrics-file", str(metrics), script=COUNTING_AGENT, script_args=(listed, store)
    )
    agent.wait_for_line("Audit done")
    after_audit = len(listed.read_text().splitlines())

    def polls() -> int:
        found = re.search(r"glancesync_agent_master_polls_total (\d+)", metrics.read_text())
        return int(float(found[1])) if found else 0

    agent.wait_for(lambda: metrics.exists() and polls() >= 6, "five more listings of the master")
    assert agent.stop() == ExitStatus.OK
    since = listed.read_text().splitlines()[after_audit:]
    assert len(since) >= 4
    assert set(since) == {MASTER}


def test_sighup_with_a_bad_configuration_keeps_the_old_one(start_agent, store, tmp_path):
    config = tmp_path / "glancesync.conf"
    shutil.copyfile(EXAMPLE_CONFIG, config)
    agent = start_agent(env={"GLANCESYNC_CONFIG": str(config)})
    agent.wait_for_line("Audit done")
    config.write_text("[main]\nmaster_region = Valladolid\nmax_children = many\n")
    agent.process.send_signal(signal.SIGHUP)
    agent.wait_for_line("ERROR:SIGHUP: the configuration was not reloaded")
    errors = [line for line in agent.log.splitlines() if line.startswith("ERROR:")]
    assert errors == [
        "ERROR:SIGHUP: the configuration was not reloaded, the old one stays: master: "
        "incomplete credential, missing user, password, keystone_url, tenant (set "
        "credential, or user/password/keystone_url/tenant or OS_* variables); "
        "main.max_children: 'many' is not a number"
    ]
    # Still at work, with the old configuration (its metadata_set selects this one).
    image_id = master_image(store, "after_the_bad_reload")
    agent.wait_for_line(f"Master: new image after_the_bad_reload ({image_id})")
    agent.wait_for(lambda: regional(store, "Leon", "after_the_bad_reload"), "Leon has it")
    # A good configuration is taken.
    shutil.copyfile(EXAMPLE_CONFIG, config)
    agent.process.send_signal(signal.SIGHUP)
    agent.wait_for_line(f"INFO:SIGHUP: configuration reloaded from {config}")
    assert agent.stop() == ExitStatus.OK


SLOW_UPLOAD_AGENT = """
import sys, time
from fiwareglancesync.agent.cli import main
from fiwareglancesync.facades.mock_facade import MockFacade, JournalStore

class Slow(MockFacade):
    def upload(self, region, image, data):
        if image.name == "big_image":
            print("SLOW UPLOAD STARTED", flush=True)
            time.sleep(300)
        return super().upload(region, image, data)

store = JournalStore(sys.argv[1])
sys.exit(main(sys.argv[2:], facade_factory=lambda env: lambda target: Slow(store, target)))
"""


def test_sigterm_during_a_transfer_abandons_it_and_releases_the_lock(start_agent, store, tmp_path):
    agent = start_agent(script=SLOW_UPLOAD_AGENT, script_args=(store,))
    agent.wait_for_line("Audit done")
    master_image(store, "big_image")
    agent.wait_for_line("SLOW UPLOAD STARTED")
    held = list((tmp_path / "locks").glob("*.lock"))
    assert held
    assert _locked(held)
    assert agent.stop() == ExitStatus.OK
    assert "INFO:Stopping: the sync in progress was abandoned" in agent.log
    assert "INFO:glancesync-agent stopped" in agent.log
    assert not _locked(held)
    for region in ("Leon", "Burgos", "other:Madrid"):
        assert regional(store, region, "big_image") == []


def _locked(paths: list[Path]) -> bool:
    """Does some process hold one of these lock files?"""
    for path in paths:
        with path.open("r+b") as stream:
            try:  # tooz's file locks are POSIX record locks
                fcntl.lockf(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    return False


def test_a_bad_configuration_at_start_is_one_line_and_status_2(tmp_path, capsys):
    config = tmp_path / "bad.conf"
    config.write_text("[main]\nmaster_region = M\naudit_interval = 0\n")
    status = main([], environ={"GLANCESYNC_CONFIG": str(config)})
    assert status == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert "ERROR: main.audit_interval: '0' is too small (the least is 1)" in err


def test_a_bad_metrics_port_is_refused_by_the_command_line(capsys):
    assert main(["--metrics-port", "http"], environ={}) == ExitStatus.USAGE
    assert "not a port number: 'http'" in capsys.readouterr().err


def test_a_metrics_port_in_use_is_one_line_and_status_2(environ, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "fiwareglancesync.agent.cli", "--metrics-port", str(port)],
            env={**os.environ, **environ, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == ExitStatus.USAGE
    assert done.stderr.splitlines() == [
        f"ERROR: cannot serve the metrics on 127.0.0.1:{port}: address already in use"
    ]
