"""Benchmark: the REST service under gunicorn (3 workers) on the persistent mock.

    .venv/bin/python bench/bench_service.py [--images 1000] [--clients 20] [--requests 2000]
                                            [--posts 30]

Builds a mock cloud whose region ``Bench`` synchronises ``--images`` images (the master
has them all; the region holds 90%, some with another checksum or other properties),
starts a small fake Keystone on 127.0.0.1 (it validates every token, so the service's
real token path runs, cache included), upgrades a fresh SQLite database and starts
``run.py gunicornserver -w 3``. Then:

1. ``GET /regions/Bench`` from ``--clients`` concurrent clients, ``--requests`` in all
   (after a warm-up): throughput and p50/p99 latency.
2. ``--posts`` times, one after the other: ``POST /regions/Bench``, then the time until
   the worker logs that it started the sync (the log line's timestamp), and the time
   until the task is ``synced``.

Everything listens on 127.0.0.1 and is stopped at the end. Figures go to standard output.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import datetime as dt
import hashlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TOKEN = "bench-token"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- fake Keystone


def token_document() -> dict:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    return {
        "token": {
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "methods": ["password"],
            "user": {"id": "u-bench", "name": "bench", "domain": {"id": "default"}},
            "project": {"id": "p-bench", "name": "admin", "domain": {"id": "default"}},
            "roles": [{"id": "r-admin", "name": "admin"}],
            "catalog": [],
        }
    }


class FakeKeystone(BaseHTTPRequestHandler):
    """Issues the service's own token and accepts every caller's token."""

    validations = 0

    def _answer(self, status: int, headers: dict[str, str]) -> None:
        body = json.dumps(token_document()).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(201, {"X-Subject-Token": "service-token"})

    def do_GET(self) -> None:
        FakeKeystone.validations += 1
        self._answer(200, {"X-Subject-Token": self.headers.get("X-Subject-Token", "")})

    def log_message(self, format: str, *args: object) -> None:
        pass


# --------------------------------------------------------------------------- the mock cloud


def checksum(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def write_store(store: Path, images: int) -> None:
    """A master with ``images`` images; region Bench holds 90% of them, 5% stale."""
    store.mkdir(parents=True)
    master_rows, regional_rows = [], []
    for n in range(images):
        name, size = f"img{n:05d}", 1048576 * (1 + n % 300)
        properties = {"type": "baseimages", "nid": n}
        master_rows.append(
            ["Master", name, f"m{n}", "active", size, checksum(name), "tenant1id", True, properties]
        )
        if n % 10:
            regional_sum = checksum(name) if n % 20 != 1 else checksum(name + "old")
            regional_rows.append(
                [
                    "Bench",
                    name,
                    f"b{n}",
                    "active",
                    size,
                    regional_sum,
                    "tenant1id",
                    True,
                    properties,
                ]
            )
    for region, rows in (("Master", master_rows), ("Bench", regional_rows)):
        with open(store / f"backup_{region}.csv", "w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(rows)


def write_files(work: Path, keystone_port: int, images: int, threads: int) -> dict[str, str]:
    write_store(work / "store", images)
    (work / "glancesync.conf").write_text(
        "[main]\nmaster_region = Master\n\n[master]\n"
        "credential = admin,YmVuY2g=,http://127.0.0.1:1/v3,tenant1\n"
        "metadata_set = type, nid\nreplace = any\n"
    )
    (work / "fiware-glancesync.cfg").write_text(
        "[openstack]\n"
        f"KEYSTONE_URL = http://127.0.0.1:{keystone_port}/v3\n"
        "ADM_USER = glancesync\nADM_PASS = bench\nADM_TENANT_NAME = service\n"
        f"[gunicorn]\nLOGLEVEL = info\nTHREADS = {threads}\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC"))}
    environ.update(
        GLANCESYNC_CONFIG=str(work / "glancesync.conf"),
        GLANCESYNC_SETTINGS_FILE=str(work / "fiware-glancesync.cfg"),
        GLANCESYNC_MOCKPERSISTENT_PATH=str(work / "store"),
        GLANCESYNCAPP_DATABASE_PATH=str(work),
    )
    return environ


# --------------------------------------------------------------------------- the service


def start_service(work: Path, environ: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    upgrade = subprocess.run(
        [PYTHON, str(ROOT / "run.py"), "db", "upgrade"], cwd=work, env=environ, capture_output=True
    )
    if upgrade.returncode:
        sys.exit(f"run.py db upgrade failed: {upgrade.stderr.decode()}")
    output = open(work / "gunicorn.out", "wb")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(
        [
            PYTHON,
            str(ROOT / "run.py"),
            "gunicornserver",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "3",
        ],
        cwd=work,
        env=environ,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop(server)
            sys.exit(f"the service did not start:\n{(work / 'gunicorn.out').read_text()}")
        time.sleep(0.2)


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --------------------------------------------------------------------------- measurements


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def status_load(url: str, clients: int, total: int, token: str = TOKEN) -> dict[str, float]:
    """``total`` GETs shared by ``clients`` threads, each with its own connection."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    per_client = total // clients

    def client() -> None:
        nonlocal errors
        session = requests.Session()
        session.headers["X-Auth-Token"] = token
        for _ in range(per_client):
            began = time.perf_counter()
            response = session.get(url, timeout=60)
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)
                errors += response.status_code != 200

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": wall,
        "throughput": len(latencies) / wall,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
    }


LOG_LINE = re.compile(
    r"^(\S+) INFO \[\d+\] fiwareglancesync\.app\.runner: Task (\S+): sync of region \S+ started"
)


def started_at(log: Path, task_id: str) -> float | None:
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match and match.group(2) == task_id:
            return dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    return None


def post_to_start(base: str, log: Path, posts: int) -> dict[str, float]:
    headers = {"X-Auth-Token": TOKEN}
    to_start, answered, to_end = [], [], []
    for _ in range(posts):
        sent = time.time()
        response = requests.post(f"{base}/regions/Bench", headers=headers, timeout=60)
        answered.append(time.time() - sent)
        task_id = response.json()["taskId"]
        while True:
            task = requests.get(f"{base}/regions/Bench/tasks/{task_id}", headers=headers).json()
            if task["status"] != "syncing":
                break
            time.sleep(0.01)
        to_end.append(time.time() - sent)
        if task["status"] != "synced":
            sys.exit(f"the benchmark sync failed: {task}")
        start = started_at(log, task_id)
        if start is not None:
            to_start.append(start - sent)
    return {
        "posts": posts,
        "answer_p50": statistics.median(answered) * 1000,
        "start_p50": statistics.median(to_start) * 1000,
        "start_max": max(to_start) * 1000,
        "synced_p50": statistics.median(to_end) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--posts", type=int, default=30)
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = parser.parse_args()

    keystone = ThreadingHTTPServer(("127.0.0.1", 0), FakeKeystone)
    threading.Thread(target=keystone.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="bench-service-") as directory:
        work = Path(directory)
        environ = write_files(work, keystone.server_address[1], args.images, args.threads)
        port = free_port()
        server = start_service(work, environ, port)
        base = f"http://127.0.0.1:{port}"
        try:
            answer = requests.get(f"{base}/regions/Bench", headers={"X-Auth-Token": TOKEN})
            body = answer.json()
            if answer.status_code != 200:
                sys.exit(f"GET /regions/Bench answered {answer.status_code}: {body}")
            print(f"region Bench: {len(body['images'])} images in the status document")
            status_load(f"{base}/regions/Bench", args.clients, args.clients * 5)  # warm-up
            load = status_load(f"{base}/regions/Bench", args.clients, args.requests)
            print(
                f"GET /regions/Bench, {args.clients} clients, {load['requests']} requests "
                f"({load['errors']} errors): {load['throughput']:.1f} req/s, "
                f"p50 {load['p50']:.0f} ms, p99 {load['p99']:.0f} ms"
            )
            sync = post_to_start(base, work / "glancesync-api.log", args.posts)
            print(
                f"POST /regions/Bench x{sync['posts']}: answered in {sync['answer_p50']:.1f} ms "
                f"(median); sync started {sync['start_p50']:.1f} ms after the POST was sent "
                f"(median, max {sync['start_max']:.1f} ms); task synced after "
                f"{sync['synced_p50']:.0f} ms (median)"
            )
            print(f"token validations that reached Keystone: {FakeKeystone.validations}")
        finally:
            stop(server)
            keystone.shutdown()


if __name__ == "__main__":
    main()
