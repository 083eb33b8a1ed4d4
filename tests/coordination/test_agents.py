"""Several glancesync-agents on one real Redis: the regions split, a killed one's taken.

Each agent is a subprocess on the bundled example (mock store shared by all), as in
tests/unit/test_agent.py; who owns a region is read from the agents' own log lines
("Owner change: ..."), and who synced it from their "in step" lines.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.unit.test_agent import QUICK, RunningAgent, master_image, regional

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "glancesync.conf"
REGIONS = ("Leon", "Burgos", "other:Madrid")
GAINED = re.compile(r"Owner change: region (\S+) is now this agent's")
LOST = re.compile(r"Owner change: region (\S+) went to another agent")


@pytest.fixture
def start_agents(store, tmp_path, own_redis) -> Iterator[Callable[[int], list[RunningAgent]]]:
    started: list[RunningAgent] = []

    def start(count: int) -> list[RunningAgent]:
        env = {
            **os.environ,
            "GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG),
            "GLANCESYNC_MOCKPERSISTENT_PATH": str(store),
            "PYTHONPATH": str(ROOT),
        }
        for _ in range(count):
            workdir = tmp_path / f"agent{len(started)}"
            workdir.mkdir()
            argv = [sys.executable, "-m", "fiwareglancesync.agent.cli", "--config", *QUICK]
            argv += [f"main.coordination_url={own_redis.url}", "main.heartbeat_timeout=3"]
            started.append(RunningAgent(argv, env, workdir))
        return started

    yield start
    for agent in started:
        agent.kill()


def owned(agent: RunningAgent) -> set[str]:
    """The regions the agent's log says it owns now (its last word on each)."""
    mine: set[str] = set()
    for line in agent.log.splitlines():
        if found := GAINED.search(line):
            mine.add(found[1])
        elif found := LOST.search(line):
            mine.discard(found[1])
    return mine


def split(agents: list[RunningAgent]) -> bool:
    """Every region owned by exactly one of ``agents``."""
    shares = [owned(agent) for agent in agents]
    return all(sum(region in share for share in shares) == 1 for region in REGIONS)


def test_two_agents_split_the_regions_and_one_takes_over_when_the_other_is_killed(
    start_agents, store
):
    first, second = start_agents(2)
    for agent in (first, second):
        agent.wait_for_line("Joined the agents' group glancesync-agents")
    first.wait_for(lambda: split([first, second]), "the regions split between the two")
    image_id = master_image(store, "fresh_image")
    for region in REGIONS:
        first.wait_for(lambda r=region: regional(store, r, "fresh_image"), f"{region} has it")
    for region in REGIONS:
        line = f"{region}: 1 changed image(s) in step"
        first.wait_for(lambda t=line: t in first.log or t in second.log, line)
    # Each region synced by its owner alone, and only once (no image twice).
    for region in REGIONS:
        by = [a for a in (first, second) if f"{region}: 1 changed image(s) in step" in a.log]
        assert len(by) == 1, region
        assert region in owned(by[0])
        assert len(regional(store, region, "fresh_image")) == 1
    seen = f"Master: new image fresh_image ({image_id})"
    first.wait_for(lambda: seen in first.log, seen)  # its log may trail the other's sync

    victim, survivor = (first, second) if owned(first) else (second, first)
    taken = owned(victim)
    victim.kill()
    survivor.wait_for(lambda: owned(survivor) == set(REGIONS), "the survivor owns every region")
    for region in taken:
        assert f"Owner change: region {region} is now this agent's" in survivor.log
    master_image(store, "after_the_kill")
    for region in REGIONS:
        survivor.wait_for(
            lambda r=region: regional(store, r, "after_the_kill"), f"{region} has the new one"
        )
    assert survivor.stop() == 0
    assert "INFO:glancesync-agent stopped" in survivor.log
