"""The agent and its message bus going away and coming back (a real RabbitMQ, the mock).

The bus is a private rabbitmq-server on 127.0.0.1 (tests/fixtures/rabbitmq.py). The
mock sends no notifications: what is looked at is the agent's word about the bus, and
that the master's changes still reach the regions by polling while the bus is down.
"""

from __future__ import annotations

import pytest
from test_agent import master_image, regional, start_agent  # noqa: F401 - a fixture

from tests.fixtures.rabbitmq import BusUnavailable, RabbitMQ

DOWN = "WARNING:The message bus cannot be reached: polling the master every 0.5 s"
UP = "INFO:Following the master's notifications (message bus reached)"


def test_a_bus_down_at_start_then_up_then_down_again(start_agent, store, tmp_path):  # noqa: F811
    bus = RabbitMQ(tmp_path / "rabbitmq")  # its ports are chosen; nothing listens yet
    agent = start_agent(f"main.notification_url={bus.url}")
    try:
        agent.wait_for_line(DOWN)
        agent.wait_for_line("Audit done")
        # Polling meanwhile: a master change still arrives.
        master_image(store, "while_the_bus_is_down")
        agent.wait_for(lambda: regional(store, "Leon", "while_the_bus_is_down"), "Leon has it")
        try:
            bus.start()
        except BusUnavailable as error:
            pytest.fail(str(error), pytrace=False)
        agent.wait_for_line(UP)
        bus.stop()
        agent.wait_for_line(DOWN, count=2)
        master_image(store, "after_the_bus_went")
        agent.wait_for(lambda: regional(store, "Leon", "after_the_bus_went"), "Leon has it")
        assert agent.stop() == 0
    finally:
        bus.stop()
    log = agent.log
    assert log.count(DOWN) == 2  # one warning per outage, not one per attempt
    assert log.count(UP) == 1
    assert "guest:guest" not in log  # the URL holds the bus's password: never logged
