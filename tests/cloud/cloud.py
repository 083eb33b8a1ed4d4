"""A real OpenStack test cloud on 127.0.0.1: two Keystones and four Glance API servers.

Keystone ``A`` is the sync target ``master``: regions ``Master``, ``RegionA`` and ``RegionB``,
one Glance each. Keystone ``B`` is a second, independent target (``other``): region
``RegionC`` and its Glance. Tokens of one Keystone are rejected by the other's Glances.

Two Glances differ from the others, for the pre-flight checks: RegionB's enforces image
quotas through Keystone unified limits (unlimited until a test sets a project limit with
:meth:`TestCloud.image_quota`), and RegionA's does not accept ``disk_format`` ploop.

The servers run from a separate virtualenv (see ``install.py``) under uWSGI, one process group
per server, all bound to 127.0.0.1 on free ports. Nothing happens at import time; see
:class:`TestCloud` for the life cycle and the fault-injection helpers (kill and restart one
Glance, make one Glance hang).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import datetime
import hashlib
import os
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .install import TEMPLATES_DIR_NAME, build_templates

if TYPE_CHECKING:
    from glanceclient.v2.client import Client as GlanceClient
    from keystoneauth1.session import Session

LOOPBACK = "127.0.0.1"
DOMAIN = "Default"
MASTER_REGION = "Master"
START_TIMEOUT = 120.0  # generous: six Python servers load at once on two cores
STOP_TIMEOUT = 10.0
# Bump when what _seed_keystone() puts in a Keystone changes: cached databases then go stale.
SEED_VERSION = 3
# The Glance that enforces Keystone unified limits (use_keystone_limits), and its resources:
# registered unlimited (-1), since a resource without a limit counts as a limit of 0.
QUOTA_REGION = "RegionB"
GLANCE_RESOURCES = (
    "image_size_total",
    "image_stage_total",
    "image_count_total",
    "image_count_uploading",
)
# The Glance whose [image_format] disk_formats leaves one of Glance's defaults out.
NARROW_FORMATS_REGION = "RegionA"
REFUSED_DISK_FORMAT = "ploop"
GLANCE_DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso")
# Environment variables that must not leak from the test process into the servers: they
# would point the servers' Python at the project's venv or at some real OpenStack.
_SCRUBBED_ENV_PREFIXES = ("OS_", "PYTHON", "VIRTUAL_ENV", "http_proxy", "https_proxy")
_SCRUBBED_ENV_NAMES = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"}


class CloudError(RuntimeError):
    """The test cloud could not be started or driven; the message says which server and why."""


@dataclass(frozen=True)
class User:
    """A Keystone user with one role on one project, all in domain ``Default``."""

    name: str
    password: str
    project: str
    role: str
    domain: str = DOMAIN


@dataclass(frozen=True)
class AppCredential:
    """An application credential made in one of the test Keystones."""

    id: str
    secret: str = field(repr=False)
    name: str = ""
    user_id: str = ""
    keystone: str = "A"


@dataclass
class KeystoneServer:
    """One Keystone: its URLs, its regions and the users it was seeded with."""

    name: str  # "A" or "B"
    target: str  # the GlanceSync target it models: "master" or "other"
    regions: tuple[str, ...]  # the first one also holds the identity endpoint
    users: dict[str, User]  # by user name; includes "admin" and the "glance" service user
    port: int = 0
    project_ids: dict[str, str] = field(default_factory=dict)  # by project name, after start
    domain: str = DOMAIN
    user_domain_name: str = DOMAIN
    project_domain_name: str = DOMAIN

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    @property
    def admin(self) -> User:
        return self.users["admin"]

    @property
    def admin_user(self) -> str:
        return self.admin.name

    @property
    def admin_password(self) -> str:
        return self.admin.password

    @property
    def admin_project(self) -> str:
        return self.admin.project

    @property
    def admin_project_id(self) -> str:
        return self.project_ids[self.admin.project]


@dataclass
class GlanceServer:
    """One Glance API server; ``url`` is what the Keystone catalog advertises."""

    region: str
    keystone: str  # "A" or "B"
    port: int = 0
    proxy: HangingProxy | None = None

    @property
    def direct_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return self.proxy.url if self.proxy else self.direct_url


def _keystone_a(extra_regions: tuple[str, ...] = ()) -> KeystoneServer:
    users = [
        User("admin", "admin-a-secret", "admin", "admin"),
        User("user2", "user2-secret", "project2", "member"),
        User("member1", "member1-secret", "admin", "member"),
        # project3 exists only under Keystone A: a member GlanceSync cannot map to Keystone B.
        User("user3", "user3-secret", "project3", "member"),
        User("glance", "glance-a-secret", "service", "service"),
    ]
    regions = (MASTER_REGION, "RegionA", "RegionB", *extra_regions)
    return KeystoneServer("A", "master", regions, {u.name: u for u in users})


def _keystone_b() -> KeystoneServer:
    users = [
        User("admin", "admin-b-secret", "admin", "admin"),
        # Same project name as under Keystone A, another id: what "members = same" maps.
        User("user2", "user2-b-secret", "project2", "member"),
        User("glance", "glance-b-secret", "service", "service"),
    ]
    return KeystoneServer("B", "other", ("RegionC",), {u.name: u for u in users})


# ---------------------------------------------------------------------------------------------
# A switchable TCP proxy, so that a test can make one Glance "accept but never answer", or
# break its image downloads half-way.


@dataclass
class DownloadCut:
    after: int  # bytes of response let through
    times: int | None  # how many downloads still to cut (None: all)


@dataclass
class ProxiedDownload:
    """One ``GET /v2/images/{id}/file`` that went through a proxy."""

    image_id: str
    range: str | None  # the Range header, if any
    agent: str
    cut_after: int | None = None
    sent: int = 0  # bytes of response passed on to the client, headers included

    @classmethod
    def parse(cls, request: bytes) -> ProxiedDownload | None:
        head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split()
        if len(parts) < 2 or parts[0] != "GET":
            return None
        path = parts[1].split("?", 1)[0].rstrip("/").split("/")
        if len(path) != 5 or path[1:3] != ["v2", "images"] or path[4] != "file":
            return None
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return cls(path[3], headers.get("range"), headers.get("user-agent", ""))


@dataclass(frozen=True)
class LoggedDownload:
    """One ``GET /v2/images/{id}/file`` line of a Glance's request log."""

    image_id: str
    status: int
    size: int
    agent: str

    @property
    def by_sync_host(self) -> bool:
        # GlanceSync speaks through glanceclient and keystoneauth; a Glance doing a
        # glance-download uses urllib.
        return "glanceclient" in self.agent or "keystoneauth" in self.agent

    @classmethod
    def parse(cls, line: str) -> LoggedDownload | None:
        # 127.0.0.1 "GET /v2/images/ID/file" 200 1048576 "agent"
        pieces = line.split('"')
        if len(pieces) < 5:
            return None
        request, numbers, agent = pieces[1].split(), pieces[2].split(), pieces[3]
        if len(request) != 2 or request[0] != "GET" or len(numbers) != 2:
            return None
        path = request[1].split("?", 1)[0].rstrip("/").split("/")
        if len(path) != 5 or path[1:3] != ["v2", "images"] or path[4] != "file":
            return None
        try:
            return cls(path[3], int(numbers[0]), int(numbers[1]), agent)
        except ValueError:
            return None


class HangingProxy:
    """TCP proxy on 127.0.0.1 in front of one Glance that can be told to stop answering.

    Forwarding, every accepted connection is piped to the backend by two threads. Hanging,
    connections are accepted and their bytes read and dropped, but nothing is ever sent back:
    to a client that is a Glance stuck on its request. Switching mode cuts the connections
    already open, so that pooled keep-alive connections cannot bypass the switch.
    """

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self._hanging = False
        self._cut: DownloadCut | None = None
        self.downloads: list[ProxiedDownload] = []  # image data GETs seen, in order
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"hanging-proxy-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def hanging(self) -> bool:
        return self._hanging

    def start(self) -> None:
        self._thread.start()

    def set_hanging(self, hanging: bool) -> None:
        self._hanging = hanging
        self._cut_open_connections()

    def cut_downloads(self, after: int, times: int | None = 1) -> None:
        """Break the next ``times`` image downloads (every one: None) after ``after`` bytes
        of response, headers included, as a network that drops connections would."""
        self._cut = DownloadCut(after, times)

    def stop_cutting(self) -> None:
        self._cut = None

    def _cut_for(self, request: bytes) -> tuple[int | None, ProxiedDownload | None]:
        """Bytes of response to let through for this request (None: all), and the
        download it is, if it is one."""
        download = ProxiedDownload.parse(request)
        if download is None:
            return None, None
        with self._lock:
            self.downloads.append(download)
            cut = self._cut
            if cut is None or cut.times == 0:
                return None, download
            if cut.times is not None:
                cut.times -= 1
            download.cut_after = cut.after
            return cut.after, download

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._listener.close()
        self._cut_open_connections()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _accept_loop(self) -> None:
        # A short timeout lets the loop notice close() without relying on close() waking
        # up a blocked accept(), which Linux does not guarantee.
        self._listener.settimeout(0.2)
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self._track(client)
            handler = self._swallow if self._hanging else self._forward
            threading.Thread(target=handler, args=(client,), daemon=True).start()

    def _swallow(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass
        self._release(client)

    def _forward(self, client: socket.socket) -> None:
        try:
            backend = socket.create_connection((LOOPBACK, self.backend_port), timeout=5)
        except OSError:
            self._release(client)  # backend down: the client sees the connection close
            return
        backend.settimeout(None)
        self._track(backend)
        # The request line and headers come first, in one segment on loopback: they say
        # whether this is an image download that should be cut.
        try:
            request = client.recv(65536)
            backend.sendall(request)
        except OSError:
            request = b""
        limit, download = self._cut_for(request)
        upstream = threading.Thread(target=self._pump, args=(client, backend), daemon=True)
        upstream.start()
        sent = self._pump(backend, client, limit)
        if download is not None:
            download.sent = sent
        upstream.join()
        self._release(client)
        self._release(backend)

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None = None) -> int:
        """Copy ``source`` to ``sink`` (at most ``limit`` bytes); return the bytes sent."""
        sent = 0
        try:
            while data := source.recv(262144):
                if limit is not None and sent + len(data) >= limit:
                    sink.sendall(data[: limit - sent])
                    sent = limit
                    raise OSError("cut on purpose")
                sink.sendall(data)
                sent += len(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            # One side broke: break both, so the pump of the other direction ends too.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        return sent

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        sock.close()

    def _cut_open_connections(self) -> None:
        # shutdown() (not close()) wakes up the threads blocked in recv(); they close.
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------------------------------------
# Child processes.


class _Spawner:
    """Starts every server from one daemon thread that lives as long as the test process.

    Each child asks the kernel for SIGTERM when the thread that forked it dies
    (PR_SET_PDEATHSIG). A daemon thread dies only with the process, so even a test run killed
    with SIGKILL leaves no server behind; ``stop()`` and atexit cover the normal ways out.
    """

    _instance: _Spawner | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._preexec = _parent_death_signal_setter()
        threading.Thread(target=self._serve, name="test-cloud-spawner", daemon=True).start()

    @classmethod
    def get(cls) -> _Spawner:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        future: Future[subprocess.Popen[bytes]] = Future()
        kwargs.update(start_new_session=True, preexec_fn=self._preexec)
        self._requests.put((lambda: subprocess.Popen(args, **kwargs), future))
        return future.result()

    def _serve(self) -> None:
        while True:
            call, future = self._requests.get()
            try:
                future.set_result(call())
            except BaseException as error:  # noqa: BLE001 - the caller re-raises it
                future.set_exception(error)


def _parent_death_signal_setter() -> Callable[[], None] | None:
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: stop() and atexit still clean up
    pr_set_pdeathsig = 1

    def set_parent_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_parent_death_signal


class _Child:
    """One server (a uWSGI master and its worker) in its own process group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log = log
        self.ready_url = ""
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        if self.running():
            raise CloudError(f"{self.name} is already running")
        with self.log.open("ab") as out:
            self.popen = _Spawner.get().popen(
                self.args, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )

    def running(self) -> bool:
        return self.popen is not None and self.popen.returncode is None and not self._exited()

    def _exited(self) -> bool:
        """Has the leader exited? Checked without reaping it, see stop()."""
        assert self.popen is not None
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._exited():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def terminate(self) -> None:
        """Ask the whole group to exit, without waiting (``stop()`` waits)."""
        if self.running():
            self._signal_group(signal.SIGTERM)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the whole group, then reap the leader; idempotent.

        The leader is reaped last on purpose: until then its zombie keeps the group id ours,
        so the final SIGKILL cannot reach a stranger that reused the id.
        """
        if self.popen is None or self.popen.returncode is not None:
            return
        self._signal_group(sig)
        if not self._wait_exit(timeout):
            self._signal_group(signal.SIGKILL)
            self._wait_exit(timeout)
        self._signal_group(signal.SIGKILL)  # workers the leader left behind, if any
        self.popen.wait()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _http_status(url: str, timeout: float = 2.0) -> int | None:
    # No proxy handler: a proxy from the environment must never see loopback traffic.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def _free_ports(count: int) -> list[int]:
    # All sockets stay open until every port is chosen, so no port is handed out twice.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.create_server((LOOPBACK, 0))) for _ in range(count)]
        return [sock.getsockname()[1] for sock in sockets]


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _write_key_repository(path: Path) -> None:
    """What ``keystone-manage fernet_setup`` writes: a staged key 0 and a primary key 1.

    Written here to save two Keystone start-ups (about 2 s of CPU each) per Keystone.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for index in ("0", "1"):
        (path / index).write_text(_fernet_key())
        (path / index).chmod(0o600)


def _ini(sections: dict[str, dict[str, object]]) -> str:
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in options.items()]
        lines.append("")
    return "\n".join(lines)


def _oslo_list(items: Iterable[object]) -> str:
    # oslo.config list options need the brackets, or Glance misreads them later.
    return "[" + ",".join(str(item) for item in items) + "]"


def _uwsgi_ini(port: int, module: str, threads: int) -> str:
    options: dict[str, object] = {
        "http-socket": f"{LOOPBACK}:{port}",
        "module": module,
        "master": "true",
        "processes": 1,
        "threads": threads,
        "enable-threads": "true",
        "lazy-apps": "true",
        "need-app": "true",
        "die-on-term": "true",  # SIGTERM means exit, not uWSGI's default "reload"
        # glanceclient streams 1 MiB chunks; the 1 MiB default limit fails every upload.
        "chunked-input-limit": 16777216,
        "buffer-size": 65535,
        # http-socket closes the connection after each response without saying so; clients
        # that reuse the connection then race the close and get "connection reset".
        "add-header": "Connection: close",
        # Who asked for what: the sync host's requests say python-glanceclient, those of
        # a Glance importing from another one say Python-urllib.
        "log-format": '%(addr) "%(method) %(uri)" %(status) %(size) "%(uagent)"',
        "reload-mercy": 5,
        "worker-reload-mercy": 5,
        "ignore-sigpipe": "true",
        "ignore-write-errors": "true",
        "disable-write-exception": "true",
    }
    return _ini({"uwsgi": options})


# ---------------------------------------------------------------------------------------------
# The cloud.


class TestCloud:
    """Two Keystones and four Glances on 127.0.0.1, started from the venv of install.py.

    ``start()`` / ``stop()`` (or ``with TestCloud(...) as cloud:``). After start:
    ``keystones["A"|"B"]`` (:class:`KeystoneServer`: ``auth_url``, ``admin_user``,
    ``admin_password``, ``admin_project``, ``users``, ``project_ids``), ``glances[region]``
    (:class:`GlanceServer`: ``url``), ``regions``, ``glance_urls``, and the helpers
    ``keystone_session()``, ``glance_client()``, ``kill_glance()``, ``start_glance()``,
    ``restart_glance()``, ``hang_glance()``, ``reset_faults()``, ``purge_images()``.
    """

    __test__ = False  # a helper, not a pytest test class despite its name

    def __init__(
        self,
        workdir: Path | str,
        venv: Path | str,
        *,
        proxied_regions: Iterable[str] = ("RegionB", MASTER_REGION),
        extra_master_regions: Iterable[str] = (),
    ) -> None:
        """``proxied_regions``: regions whose catalog endpoint is a :class:`HangingProxy`.

        Only those can be made to hang or have their downloads cut. Not every region,
        because the proxy costs the test process some CPU on every byte, which benchmarks
        would feel. ``extra_master_regions``: more regions (and Glances) in Keystone A.
        """
        self.workdir = Path(workdir).resolve()
        self.venv = Path(venv).resolve()
        self.keystones = {"A": _keystone_a(tuple(extra_master_regions)), "B": _keystone_b()}
        self.keystone_a = self.keystones["A"]
        self.keystone_b = self.keystones["B"]
        self.glances = {
            region: GlanceServer(region, ks.name)
            for ks in self.keystones.values()
            for region in ks.regions
        }
        self.regions = tuple(self.glances)
        self.master_region = MASTER_REGION
        self.domain = DOMAIN
        self.startup_seconds = 0.0
        self._proxied = tuple(proxied_regions)
        unknown = set(self._proxied) - set(self.regions)
        if unknown:
            raise ValueError(f"unknown proxied regions: {sorted(unknown)}")
        # The message bus the master's Glance notifies (see notify_to); None: it does not.
        self.notification_url: str | None = None
        self._children: dict[str, _Child] = {}
        self._seed_cache: dict[str, Path] = {}  # by Keystone name: its seeded-database cache
        self._lock = threading.RLock()
        self._started = False

    # -- public attributes derived from the servers ---------------------------------------

    @property
    def glance_urls(self) -> dict[str, str]:
        """Catalog URL of each region's Glance (the proxy for proxied regions)."""
        return {region: glance.url for region, glance in self.glances.items()}

    def keystone_of(self, region: str) -> KeystoneServer:
        return self.keystones[self.glances[region].keystone]

    def pids(self) -> dict[str, int]:
        """Process-group leader of every running server, by server name."""
        return {name: c.pid for name, c in self._children.items() if c.pid and c.running()}

    def log_path(self, name: str) -> Path:
        """Log file of a server: ``keystone-A``, ``glance-Master``, ..."""
        return self._children[name].log

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> TestCloud:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> TestCloud:
        with self._lock:
            if self._started:
                return self
            self._started = True
            atexit.register(self.stop)
            began = time.monotonic()
            try:
                self._start()
            except BaseException:
                self.stop()
                raise
            self.startup_seconds = time.monotonic() - began
            return self

    def stop(self) -> None:
        """Stop every process this cloud started (by process group), then the proxies."""
        with self._lock:
            children = list(self._children.values())
            for child in children:  # signal all first: they shut down in parallel
                child.terminate()
            for child in children:
                child.stop()
            for glance in self.glances.values():
                if glance.proxy:
                    glance.proxy.close()
            atexit.unregister(self.stop)
            self._started = False

    def _start(self) -> None:
        self._check_venv()
        for name in ("logs", "templates"):
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
        self._allocate_ports()
        templates = self._templates()
        for ks in self.keystones.values():
            self._prepare_keystone(ks, templates)
        for glance in self.glances.values():
            self._prepare_glance(glance, templates)
        # Glances load while the Keystones are bootstrapped: both are CPU-bound imports.
        glance_children = [self._start_child(f"glance-{region}") for region in self.glances]
        # A Keystone whose seeded database is cached needs neither bootstrap nor seeding.
        fresh = {name for name, path in self._seed_cache.items() if not path.exists()}
        self._bootstrap_keystones([self.keystones[name] for name in sorted(fresh)])
        keystone_children = [self._start_child(f"keystone-{name}") for name in self.keystones]
        self._wait_ready(keystone_children)
        for ks in self.keystones.values():
            if ks.name in fresh:
                self._seed_keystone(ks)
                self._save_seeded_database(ks)
            else:
                self._repoint_catalog(ks)
        self._wait_ready(glance_children)

    def _check_venv(self) -> None:
        missing = [t for t in ("uwsgi", "keystone-manage", "glance-manage") if not self._bin(t)]
        if missing:
            raise CloudError(
                f"{self.venv} lacks {', '.join(missing)}: run python tests/cloud/install.py"
            )

    def _bin(self, tool: str) -> str:
        path = self.venv / "bin" / tool
        return str(path) if path.exists() else ""

    def _allocate_ports(self) -> None:
        servers: list[KeystoneServer | GlanceServer] = [
            *self.keystones.values(),
            *self.glances.values(),
        ]
        for server, port in zip(servers, _free_ports(len(servers)), strict=True):
            server.port = port
        for region in self._proxied:
            glance = self.glances[region]
            glance.proxy = HangingProxy(glance.port)
            glance.proxy.start()

    def _templates(self) -> Path:
        """Migrated empty databases: the ones install.py made, else made here once."""
        for directory in (self.venv / TEMPLATES_DIR_NAME, self.workdir / "templates"):
            if (directory / "keystone.db").exists() and (directory / "glance.db").exists():
                return directory
        directory = self.workdir / "templates"
        build_templates(self.venv, directory, self.workdir / "logs" / "db-sync.log")
        return directory

    def _child_env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_SCRUBBED_ENV_PREFIXES) and key not in _SCRUBBED_ENV_NAMES
        }
        env.update(no_proxy=f"{LOOPBACK},localhost", NO_PROXY=f"{LOOPBACK},localhost")
        env.update(PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore::DeprecationWarning")
        env.update(extra)
        return env

    # -- Keystone -------------------------------------------------------------------------

    def _keystone_dir(self, ks: KeystoneServer) -> Path:
        return self.workdir / f"keystone-{ks.name}"

    def _seed_cache_path(self, ks: KeystoneServer, templates: Path) -> Path:
        """Where a bootstrapped and seeded copy of this Keystone's database is kept.

        Bootstrap and seeding cost about 5 s of CPU per start, so the result is reused; the
        name changes with the migrated template and with what is seeded.
        """
        digest = hashlib.sha256((templates / "keystone.db").read_bytes())
        # The quota seeding is named too, so a SEED_VERSION bumped on two branches for
        # different reasons cannot share a cache.
        quotas = GLANCE_RESOURCES if QUOTA_REGION in ks.regions else ()
        seed = (SEED_VERSION, ks.name, ks.regions, sorted(ks.users.items()), quotas)
        digest.update(repr(seed).encode())
        return templates / f"keystone-{ks.name}-seeded-{digest.hexdigest()[:16]}.db"

    def _prepare_keystone(self, ks: KeystoneServer, templates: Path) -> None:
        directory = self._keystone_dir(ks)
        directory.mkdir(parents=True, exist_ok=True)
        cache = self._seed_cache[ks.name] = self._seed_cache_path(ks, templates)
        source = cache if cache.exists() else templates / "keystone.db"
        shutil.copyfile(source, directory / "keystone.db")
        for repository in ("fernet-keys", "receipt-keys", "credential-keys"):
            _write_key_repository(directory / repository)
        conf = {
            "DEFAULT": {"debug": "false", "use_stderr": "true"},
            "database": {"connection": f"sqlite:///{directory / 'keystone.db'}"},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": directory / "fernet-keys"},
            "fernet_receipts": {"key_repository": directory / "receipt-keys"},
            "credential": {"key_repository": directory / "credential-keys"},
            # The default costs about 0.3 s of CPU per token; these are test passwords.
            "identity": {"password_hash_rounds": 4},
        }
        (directory / "keystone.conf").write_text(_ini(conf))
        (directory / "uwsgi.ini").write_text(_uwsgi_ini(ks.port, "keystone.wsgi.api", 8))
        self._children[f"keystone-{ks.name}"] = _Child(
            f"keystone-{ks.name}",
            [self._bin("uwsgi"), "--ini", str(directory / "uwsgi.ini")],
            self._child_env(OS_KEYSTONE_CONFIG_DIR=str(directory)),
            self.workdir / "logs" / f"keystone-{ks.name}.log",
        )
        self._children[f"keystone-{ks.name}"].ready_url = f"{ks.url}/v3"

    def _bootstrap_command(self, ks: KeystoneServer) -> list[str]:
        conf = self._keystone_dir(ks) / "keystone.conf"
        return [
            self._bin("keystone-manage"),
            "--config-file",
            str(conf),
            "bootstrap",
            *("--bootstrap-username", ks.admin.name),
            *("--bootstrap-password", ks.admin.password),
            *("--bootstrap-project-name", ks.admin.project),
            *("--bootstrap-role-name", ks.admin.role),
            *("--bootstrap-service-name", "keystone"),
            *("--bootstrap-region-id", ks.regions[0]),
            *("--bootstrap-public-url", ks.auth_url),
        ]

    def _bootstrap_keystones(self, keystones: list[KeystoneServer]) -> None:
        """``keystone-manage bootstrap`` of Keystones at once (admin, roles, first region)."""
        running = []
        for ks in keystones:
            log = self.workdir / "logs" / f"keystone-{ks.name}-bootstrap.log"
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    self._bootstrap_command(ks),
                    env=self._child_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                )
            running.append((ks, proc, log))
        for ks, proc, log in running:
            if proc.wait(timeout=START_TIMEOUT) != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                raise CloudError(f"bootstrap of keystone-{ks.name} failed, {log}:\n{tail}")

    def _keystone_admin(self, ks: KeystoneServer) -> Any:
        from keystoneclient.v3 import client as keystone_client

        # The catalog may still hold the URLs of the run that seeded a cached database.
        session = self.keystone_session(ks.name)
        return keystone_client.Client(session=session, endpoint_override=ks.auth_url)

    def _seed_keystone(self, ks: KeystoneServer) -> None:
        """Regions, projects, users and the image endpoints, through the Keystone API."""
        client = self._keystone_admin(ks)
        roles = {role.name: role for role in client.roles.list()}
        domain = client.domains.find(name=DOMAIN)
        for region in ks.regions[1:]:  # bootstrap made the first one
            client.regions.create(id=region)
        projects = {project.name: project for project in client.projects.list()}
        created = {}
        for user in ks.users.values():
            if user.name == ks.admin.name:
                continue
            if user.project not in projects:
                projects[user.project] = client.projects.create(user.project, domain)
            project = projects[user.project]
            created[user.name] = client.users.create(
                user.name, domain=domain, password=user.password, default_project=project
            )
            client.roles.grant(roles[user.role], user=created[user.name], project=project)
        service = client.services.create("glance", type="image", description="Image")
        for region in ks.regions:
            url = self.glances[region].url
            client.endpoints.create(service, url, interface="public", region=region)
        if QUOTA_REGION in ks.regions:
            # oslo.limit reads endpoints and limits with a system-scoped token.
            client.roles.grant(roles["reader"], user=created["glance"], system="all")
            for resource in GLANCE_RESOURCES:
                client.registered_limits.create(service, resource, -1, region=QUOTA_REGION)
        ks.project_ids = {name: project.id for name, project in projects.items()}

    def _save_seeded_database(self, ks: KeystoneServer) -> None:
        """Keep a consistent copy of the seeded database for the next starts (best effort)."""
        cache = self._seed_cache[ks.name]
        partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
        try:
            live = self._keystone_dir(ks) / "keystone.db"
            with (
                contextlib.closing(sqlite3.connect(live)) as src,
                contextlib.closing(sqlite3.connect(partial)) as dst,
            ):
                src.backup(dst)  # SQLite's online backup: consistent even while Keystone writes
            os.replace(partial, cache)
        except (OSError, sqlite3.Error):
            partial.unlink(missing_ok=True)  # no cache: the next start seeds again

    def _repoint_catalog(self, ks: KeystoneServer) -> None:
        """Point a cached database's endpoints at this run's ports."""
        client = self._keystone_admin(ks)
        service_types = {service.id: service.type for service in client.services.list()}
        for endpoint in client.endpoints.list():
            if service_types[endpoint.service_id] == "identity":
                url = ks.auth_url
            else:
                url = self.glances[endpoint.region].url
            if endpoint.url != url:
                client.endpoints.update(endpoint, url=url)
        ks.project_ids = {project.name: project.id for project in client.projects.list()}

    # -- Glance ---------------------------------------------------------------------------

    def _glance_dir(self, region: str) -> Path:
        return self.workdir / f"glance-{region}"

    def _glance_conf(self, glance: GlanceServer, directory: Path) -> dict[str, dict[str, object]]:
        ks = self.keystones[glance.keystone]
        service = ks.users["glance"]
        # glance-download and web-download fetch from other Glances on loopback: allow
        # every port of this cloud (the defaults allow only 80 and 443).
        ports = [g.port for g in self.glances.values()]
        ports += [g.proxy.port for g in self.glances.values() if g.proxy]
        methods = ["glance-direct", "web-download", "copy-image", "glance-download"]
        conf: dict[str, dict[str, object]] = {
            "DEFAULT": {
                "debug": "false",
                "use_stderr": "true",
                "enabled_backends": "fs:file",
                "enabled_import_methods": _oslo_list(methods),
                "worker_self_reference_url": glance.direct_url,
            },
            "database": {"connection": f"sqlite:///{directory / 'glance.db'}"},
            "glance_store": {"default_backend": "fs"},
            "fs": {"filesystem_store_datadir": directory / "images"},
            "os_glance_staging_store": {"filesystem_store_datadir": directory / "staging"},
            "os_glance_tasks_store": {"filesystem_store_datadir": directory / "tasks"},
            "keystone_authtoken": {
                "www_authenticate_uri": ks.auth_url,
                "auth_url": ks.auth_url,
                "auth_type": "password",
                "username": service.name,
                "password": service.password,
                "project_name": service.project,
                "user_domain_name": DOMAIN,
                "project_domain_name": DOMAIN,
                # Only public endpoints are registered; the middleware's default is internal.
                "interface": "public",
                # As deployed clouds set it: without it, the middleware refuses every
                # token of an application credential restricted by access rules.
                "service_type": "image",
            },
            "paste_deploy": {
                "flavor": "keystone",
                "config_file": directory / "glance-api-paste.ini",
            },
            "import_filtering_opts": {
                "allowed_schemes": _oslo_list(["http", "https"]),
                "allowed_hosts": _oslo_list([LOOPBACK, "localhost"]),
                "allowed_ports": _oslo_list(sorted(ports)),
            },
            "oslo_concurrency": {"lock_path": directory / "locks"},
        }
        for extra in (
            self._quota_conf(glance),
            self._format_conf(glance),
            self._notification_conf(glance),
        ):
            for section, options in extra.items():
                conf.setdefault(section, {}).update(options)
        return conf

    def _quota_conf(self, glance: GlanceServer) -> dict[str, dict[str, object]]:
        """Keystone unified limits for QUOTA_REGION's Glance, through oslo.limit.

        oslo.limit finds the limits by the Glance's endpoint, looked up by service type and
        region (its id is unknown when the Glance starts, since Keystone is seeded
        meanwhile), as the glance service user, who has the system reader role for it.
        """
        if glance.region != QUOTA_REGION:
            return {}
        ks = self.keystones[glance.keystone]
        service = ks.users["glance"]
        return {
            "DEFAULT": {"use_keystone_limits": "true"},
            "oslo_limit": {
                "auth_type": "password",
                "auth_url": ks.auth_url,
                "username": service.name,
                "password": service.password,
                "user_domain_name": DOMAIN,
                "system_scope": "all",
                "endpoint_service_type": "image",
                "endpoint_region_name": glance.region,
                "endpoint_interface": "public",
                # A plain list option (keystoneauth's): brackets would be read as part of it.
                "valid_interfaces": "public",
            },
        }

    def _notification_conf(self, glance: GlanceServer) -> dict[str, dict[str, object]]:
        """The master's Glance sends notifications to the bus of :meth:`notify_to`.

        ``retry``: a notification that cannot be sent is given up after one more try,
        so that a bus stopped by a test does not hold the Glance's requests forever.
        """
        if glance.region != MASTER_REGION or not self.notification_url:
            return {}
        return {
            "oslo_messaging_notifications": {
                "driver": "messagingv2",
                "transport_url": self.notification_url,
                "retry": "1",
            },
        }

    def _format_conf(self, glance: GlanceServer) -> dict[str, dict[str, object]]:
        if glance.region != NARROW_FORMATS_REGION:
            return {}
        # No brackets: this list option takes them as part of its first and last values.
        return {"image_format": {"disk_formats": ",".join(GLANCE_DISK_FORMATS)}}

    def _prepare_glance(self, glance: GlanceServer, templates: Path) -> None:
        directory = self._glance_dir(glance.region)
        for sub in ("images", "staging", "tasks", "locks"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(templates / "glance.db", directory / "glance.db")
        paste = self.venv / "etc" / "glance" / "glance-api-paste.ini"
        shutil.copyfile(paste, directory / "glance-api-paste.ini")
        (directory / "glance-api.conf").write_text(_ini(self._glance_conf(glance, directory)))
        (directory / "uwsgi.ini").write_text(_uwsgi_ini(glance.port, "glance.wsgi.api", 8))
        name = f"glance-{glance.region}"
        self._children[name] = _Child(
            name,
            [self._bin("uwsgi"), "--ini", str(directory / "uwsgi.ini")],
            self._child_env(OS_GLANCE_CONFIG_DIR=str(directory)),
            self.workdir / "logs" / f"{name}.log",
        )
        self._children[name].ready_url = f"{glance.direct_url}/healthcheck"

    # -- waiting ----------------------------------------------------------------------------

    def _start_child(self, name: str) -> _Child:
        child = self._children[name]
        child.start()
        return child

    def _wait_ready(self, children: list[_Child], timeout: float = START_TIMEOUT) -> None:
        pending = list(children)
        deadline = time.monotonic() + timeout
        while pending:
            for child in list(pending):
                if not child.running():
                    raise CloudError(
                        f"{child.name} exited during start-up; {child.log}:\n{child.log_tail()}"
                    )
                if _http_status(child.ready_url, timeout=1.0) == 200:
                    pending.remove(child)
            if pending and time.monotonic() > deadline:
                details = "\n".join(f"--- {c.log}:\n{c.log_tail()}" for c in pending)
                names = ", ".join(c.name for c in pending)
                raise CloudError(f"{names} did not answer within {timeout:.0f} s\n{details}")
            if pending:
                time.sleep(0.1)

    # -- clients for tests ---------------------------------------------------------------------

    def keystone_session(
        self,
        keystone: str = "A",
        user: str | None = None,
        password: str | None = None,
        project: str | None = None,
        timeout: float | None = None,
    ) -> Session:
        """A keystoneauth1 session scoped to a project (the user's own by default).

        ``user`` defaults to the Keystone's admin; the password and project of a seeded user
        are filled in, and may be overridden (to test bad credentials, for instance).
        ``timeout`` (seconds) applies to every request made through the session.
        """
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        ks = self.keystones[keystone]
        name = user or ks.admin.name
        seeded = ks.users.get(name)
        password = password if password is not None else seeded and seeded.password
        project = project or (seeded and seeded.project)
        if not password or not project:
            raise ValueError(f"user {name!r} is not seeded in keystone {keystone}: give both")
        auth = v3.Password(
            auth_url=ks.auth_url,
            username=name,
            password=password,
            project_name=project,
            user_domain_name=DOMAIN,
            project_domain_name=DOMAIN,
        )
        return ks_session.Session(auth=auth, timeout=timeout)

    def glance_client(
        self,
        keystone: str | None = None,
        region: str = MASTER_REGION,
        user: str | None = None,
        password: str | None = None,
        project: str | None = None,
        timeout: float | None = None,
    ) -> GlanceClient:
        """A glanceclient v2 ``Client`` on ``region``'s catalog URL.

        ``keystone`` defaults to the region's own Keystone; naming the other one builds a
        client whose token that Glance must reject.
        """
        from glanceclient import client as glance_client

        keystone = keystone or self.glances[region].keystone
        session = self.keystone_session(keystone, user, password, project, timeout)
        return glance_client.Client("2", session=session, endpoint=self.glances[region].url)

    def application_credential(
        self,
        name: str,
        keystone: str = "A",
        user: str | None = None,
        roles: Iterable[str] | None = None,
        access_rules: list[dict[str, str]] | None = None,
        expires_at: datetime.datetime | None = None,
    ) -> AppCredential:
        """Create an application credential of ``user`` (the admin by default) on its own
        project, as that user (Keystone lets only the owner create them)."""
        from keystoneclient.v3 import client as keystone_client

        ks = self.keystones[keystone]
        session = self.keystone_session(keystone, user=user)
        client = keystone_client.Client(session=session, endpoint_override=ks.auth_url)
        created = client.application_credentials.create(
            name,
            user=session.get_user_id(),
            roles=[{"name": role} for role in roles] if roles is not None else None,
            access_rules=access_rules,
            expires_at=expires_at,
        )
        return AppCredential(created.id, created.secret, name, session.get_user_id(), keystone)

    def delete_application_credential(self, credential: AppCredential) -> None:
        """Revoke it: Keystone deletes it (and the tokens it gave)."""
        from keystoneclient.v3 import client as keystone_client

        ks = self.keystones[credential.keystone]
        session = self.keystone_session(credential.keystone)
        client = keystone_client.Client(session=session, endpoint_override=ks.auth_url)
        client.application_credentials.delete(credential.id, user=credential.user_id)

    def purge_images(self, regions: Iterable[str] | None = None) -> int:
        """Delete every image (every project's, hidden ones too) as admin; return the count."""
        deleted = 0
        for region in regions or self.regions:
            client = self.glance_client(region=region)
            for hidden in (False, True):  # a plain listing leaves hidden images out
                for image in list(client.images.list(filters={"os_hidden": hidden})):
                    if image.get("protected"):
                        client.images.update(image["id"], protected=False)
                    client.images.delete(image["id"])
                    deleted += 1
        return deleted

    @contextlib.contextmanager
    def image_quota(self, resource: str, limit: int, project: str | None = None) -> Iterator[None]:
        """A Keystone project limit on QUOTA_REGION's Glance, for the block's duration.

        ``resource`` is one of GLANCE_RESOURCES (``image_size_total`` counts MiB);
        ``project`` defaults to Keystone A's admin project, the one GlanceSync uses. The
        Glance asks Keystone at every request, so the limit holds at once and ends with
        the block.
        """
        ks = self.keystone_of(QUOTA_REGION)
        client = self._keystone_admin(ks)
        [service] = client.services.list(type="image")
        project_id = ks.project_ids[project or ks.admin.project]
        created = client.limits.create(project_id, service, resource, limit, region=QUOTA_REGION)
        try:
            yield
        finally:
            client.limits.delete(created)

    def store_files(self, region: str) -> set[str]:
        """The names of the files in a region's Glance file store (one per image's data)."""
        directory = self._glance_dir(region) / "images"
        return {path.name for path in directory.iterdir() if path.is_file()}

    # -- fault injection -----------------------------------------------------------------------

    def kill_glance(self, region: str) -> None:
        """SIGKILL a region's Glance (master and worker), as a crash would."""
        with self._lock:
            self._children[f"glance-{region}"].stop(signal.SIGKILL)

    def start_glance(self, region: str, timeout: float = START_TIMEOUT) -> None:
        """Start a killed Glance again on the same port, with its data, and wait for it."""
        with self._lock:
            child = self._children[f"glance-{region}"]
            if child.running():
                return
            child.start()
            self._wait_ready([child], timeout)

    def notify_to(self, url: str | None) -> None:
        """Have the master's Glance send its notifications to the bus at ``url`` (None:
        none, as at start), by rewriting its configuration and restarting it."""
        with self._lock:
            if url == self.notification_url:
                return
            self.notification_url = url
            glance = self.glances[MASTER_REGION]
            directory = self._glance_dir(glance.region)
            (directory / "glance-api.conf").write_text(_ini(self._glance_conf(glance, directory)))
            self.restart_glance(glance.region)

    def restart_glance(self, region: str) -> None:
        self.kill_glance(region)
        self.start_glance(region)

    def glance_running(self, region: str) -> bool:
        return self._children[f"glance-{region}"].running()

    def stop_keystone(self, name: str) -> None:
        """Stop one Keystone ("A" or "B"), as an outage would: its port refuses connections."""
        with self._lock:
            self._children[f"keystone-{name}"].stop()

    def start_keystone(self, name: str, timeout: float = START_TIMEOUT) -> None:
        """Start a stopped Keystone again on the same port, with its data, and wait for it."""
        with self._lock:
            child = self._children[f"keystone-{name}"]
            if child.running():
                return
            child.start()
            self._wait_ready([child], timeout)

    def keystone_running(self, name: str) -> bool:
        return self._children[f"keystone-{name}"].running()

    @contextlib.contextmanager
    def behind_a_proxy(self, region: str) -> Iterator[HangingProxy]:
        """Put a fresh proxy in front of a region's Glance, in the catalog, for a while.

        For a benchmark that wants a proxy only for some runs: new tokens (a new
        ``sync.py``) see the proxy's URL in the catalog until the block ends.
        """
        glance = self.glances[region]
        proxy = HangingProxy(glance.port)
        proxy.start()
        try:
            self._set_catalog_url(region, proxy.url)
            yield proxy
        finally:
            self._set_catalog_url(region, glance.url)
            proxy.close()

    def _set_catalog_url(self, region: str, url: str) -> None:
        client = self._keystone_admin(self.keystone_of(region))
        service_types = {service.id: service.type for service in client.services.list()}
        for endpoint in client.endpoints.list():
            if endpoint.region == region and service_types[endpoint.service_id] == "image":
                client.endpoints.update(endpoint, url=url)

    def file_downloads(self, region: str) -> list[LoggedDownload]:
        """The image downloads a region's Glance served so far, from its request log."""
        found = []
        for line in self.log_path(f"glance-{region}").read_text(errors="replace").splitlines():
            logged = LoggedDownload.parse(line)
            if logged is not None:
                found.append(logged)
        return found

    def cut_downloads(self, region: str, after: int, times: int | None = 1) -> None:
        """Break a proxied region's next ``times`` image downloads after ``after`` bytes."""
        self._proxy(region).cut_downloads(after, times)

    def proxied_downloads(self, region: str) -> list[ProxiedDownload]:
        return list(self._proxy(region).downloads)

    def _proxy(self, region: str) -> HangingProxy:
        proxy = self.glances[region].proxy
        if proxy is None:
            raise ValueError(f"{region} has no proxy; proxied regions: {self._proxied}")
        return proxy

    def hang_glance(self, region: str, hanging: bool = True) -> None:
        """Make a proxied region's Glance accept connections but never answer (or undo it)."""
        proxy = self.glances[region].proxy
        if proxy is None:
            raise ValueError(f"{region} has no proxy; proxied regions: {self._proxied}")
        proxy.set_hanging(hanging)

    @contextlib.contextmanager
    def glance_hanging(self, region: str) -> Iterator[None]:
        self.hang_glance(region)
        try:
            yield
        finally:
            self.hang_glance(region, False)

    def reset_faults(self) -> None:
        """Undo every injected fault: stop hanging and cutting, start stopped servers."""
        for name in self.keystones:
            if not self.keystone_running(name):
                self.start_keystone(name)
        for region, glance in self.glances.items():
            if glance.proxy:
                glance.proxy.stop_cutting()
            if glance.proxy and glance.proxy.hanging:
                glance.proxy.set_hanging(False)
            if not self.glance_running(region):
                self.start_glance(region)

    # -- measurements ----------------------------------------------------------------------

    def memory_bytes(self) -> int:
        """Proportional set size (PSS) of all server processes together."""
        groups = {pid for pid in self.pids().values()}
        total = 0
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and _process_group(proc) in groups:
                total += _pss_bytes(proc)
        return total


def _process_group(proc: Path) -> int | None:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name: state, ppid, pgrp, ...
    return int(stat.rpartition(")")[2].split()[2])


def _pss_bytes(proc: Path) -> int:
    try:
        for line in (proc / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
