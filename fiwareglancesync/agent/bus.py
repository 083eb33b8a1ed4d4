"""Follow the master Glance's notifications on its message bus (oslo.messaging).

Glance sends a notification for each change of an image (``[oslo_messaging_notifications]
driver = messagingv2``): this module listens to those that matter to a sync and hands
each one's image id to the agent. A malformed notification is logged and skipped.

The bus may be down when the agent starts, or go down later. A thread watches it: it
tries to connect to the bus's hosts (with a growing delay while none answers) and tells
the agent whether the bus is up, so that the agent polls the master while it is not.
The oslo.messaging listener is started once the bus first answers, and reconnects by
itself after an outage; its own lines about that are silenced (the agent says once
that the bus is down, and once that it is back), unless ``--debug``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fiwareglancesync.config import Config

logger = logging.getLogger(__name__)

# The notifications a sync cares about. Not image.send (a download: every sync reads
# the master, which would wake the agent again) nor image.create (a queued record).
# image.upload beside image.activate: a deployment may have disabled one of them.
EVENT_TYPES = frozenset(
    {
        "image.upload",
        "image.activate",
        "image.update",
        "image.delete",
        "image.member.create",
        "image.member.update",
        "image.member.delete",
    }
)
DEFAULT_PORTS = {"rabbit": 5672, "amqp": 5672, "kafka": 9092}
PROBE_TIMEOUT = 3.0
MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0
# The libraries whose reconnection messages repeat at every attempt.
NOISY_LOGGERS = ("oslo_messaging", "oslo.messaging", "kombu", "amqp")


class MalformedNotification(ValueError):
    """A notification whose event type or payload cannot be read."""


def image_ids_of(event_type: object, payload: object) -> list[str]:
    """The master image ids a notification is about: none for an event a sync does not
    care about; MalformedNotification when it cannot be read."""
    if not isinstance(event_type, str):
        raise MalformedNotification("its event type is not a string")
    if event_type not in EVENT_TYPES:
        return []
    if not isinstance(payload, dict):
        raise MalformedNotification(f"{event_type}: its payload is not an object")
    key = "image_id" if event_type.startswith("image.member.") else "id"
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise MalformedNotification(f"{event_type}: its payload has no image {key}")
    return [value.strip()]


@dataclass(frozen=True)
class BusSettings:
    """What the listener needs of the configuration (compared on SIGHUP)."""

    url: str
    topic: str
    exchange: str
    pool: str

    @classmethod
    def of(cls, config: Config) -> BusSettings | None:
        if not config.notification_url:
            return None
        return cls(
            config.notification_url,
            config.notification_topic or "notifications",
            config.notification_exchange or "glance",
            config.notification_pool or "glancesync-agent",
        )


def _import_oslo() -> tuple[Any, Any]:
    with warnings.catch_warnings():
        # oslo.messaging imports eventlet, which warns that it is deprecated: we do not
        # use it (the listener runs on threads).
        warnings.simplefilter("ignore")
        try:
            import oslo_messaging
            from oslo_config import cfg
        except ImportError as error:
            raise ValueError(
                "main.notification_url needs oslo.messaging (pip install "
                f"'fiware-glancesync[agent]'; missing module: {error.name})"
            ) from None
    return oslo_messaging, cfg


class _Endpoint:
    """oslo.messaging calls ``info`` for each notification of priority info."""

    def __init__(self, deliver: Callable[[str, object, object], None]):
        self._deliver = deliver

    def info(
        self,
        ctxt: object,
        publisher_id: object,
        event_type: object,
        payload: object,
        metadata: object,
    ) -> None:
        self._deliver(publisher_id, event_type, payload)


class NotificationFollower:
    """Listen to the master's notifications; say whether the bus is up.

    ``on_image(image_id, event_type)`` is called from the listener's threads for each
    notification that names an image; ``on_state(up)`` from the watching thread when
    the bus comes up or goes down (first call: its state at start). ``on_malformed``
    counts the skipped ones.
    """

    def __init__(
        self,
        settings: BusSettings,
        on_image: Callable[[str, str], None],
        on_state: Callable[[bool], None],
        on_malformed: Callable[[], None],
        check_every: float,
        debug: bool = False,
    ):
        self.settings = settings
        self._on_image = on_image
        self._on_state = on_state
        self._on_malformed = on_malformed
        self._check_every = check_every
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Any = None
        self._transport: Any = None
        self._up: bool | None = None
        oslo_messaging, cfg = _import_oslo()
        self._oslo = oslo_messaging
        self._conf = cfg.ConfigOpts()
        self._conf([], project="glancesync-agent", default_config_files=[], default_config_dirs=[])
        try:
            self._url = oslo_messaging.TransportURL.parse(self._conf, settings.url)
        except Exception as error:  # noqa: BLE001 - oslo's own exceptions, told in a line
            raise ValueError(f"main.notification_url: {type(error).__name__}") from None
        if not debug:
            for name in NOISY_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)

    # ------------------------------------------------------------------- life cycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="bus-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening; a listener stuck on a dead bus is left to die with the process."""
        self._stopped.set()
        listener = self._listener
        if listener is not None:
            stopper = threading.Thread(target=self._stop_listener, args=(listener,), daemon=True)
            stopper.start()
            stopper.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def _stop_listener(self, listener: Any) -> None:
        with contextlib.suppress(Exception):
            listener.stop()
            listener.wait()
        with contextlib.suppress(Exception):
            if self._transport is not None:
                self._transport.cleanup()

    # ------------------------------------------------------------------- watching

    def _hosts(self) -> list[tuple[str, int]]:
        default = DEFAULT_PORTS.get(self._url.transport or "", 5672)
        hosts = [(h.hostname or "localhost", h.port or default) for h in self._url.hosts]
        return hosts or [("localhost", default)]

    def reachable(self) -> bool:
        """Does one of the bus's hosts accept a connection?"""
        for host, port in self._hosts():
            try:
                with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
                    return True
            except OSError:
                continue
        return False

    def _watch(self) -> None:
        backoff = MIN_BACKOFF
        while not self._stopped.is_set():
            up = self.reachable()
            if up and self._listener is None:
                up = self._start_listener()
            self._tell(up)
            if up:
                backoff = MIN_BACKOFF
                self._stopped.wait(self._check_every)
            else:
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _tell(self, up: bool) -> None:
        if up != self._up:
            self._up = up
            self._on_state(up)

    def _start_listener(self) -> bool:
        oslo = self._oslo
        try:
            self._transport = oslo.get_notification_transport(self._conf, url=self.settings.url)
            target = oslo.Target(topic=self.settings.topic, exchange=self.settings.exchange)
            listener = oslo.get_notification_listener(
                self._transport,
                [target],
                [_Endpoint(self._deliver)],
                executor="threading",
                pool=self.settings.pool,
            )
            listener.start()
        except Exception as error:  # noqa: BLE001 - the bus refused us: try again later
            # The type only: a driver's message may quote the URL, and its password.
            logger.debug("the notification listener could not start: %s", type(error).__name__)
            return False
        self._listener = listener
        return True

    # ------------------------------------------------------------------- messages

    def _deliver(self, publisher_id: object, event_type: object, payload: object) -> None:
        try:
            ids = image_ids_of(event_type, payload)
        except MalformedNotification as error:
            publisher = str(publisher_id)[:80]
            logger.warning("Malformed notification skipped (from %s): %s", publisher, error)
            self._on_malformed()
            return
        for image_id in ids:
            self._on_image(image_id, str(event_type))
