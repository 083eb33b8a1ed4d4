"""Benchmark: the REST service under gunicorn (3 workers) against the real test cloud.

    .venv/bin/python bench/bench_service_cloud.py [--images 50] [--clients 20]
                                                  [--requests 400] [--source DIR]

Starts the test cloud of the suite (two Keystones, four Glances on 127.0.0.1, see
tests/cloud), puts ``--images`` small public images in the master region and copies of
most of them in RegionA, starts ``run.py gunicornserver -w 3`` with real Keystone
settings, and sends ``GET /regions/RegionA`` with a real admin token from ``--clients``
concurrent clients, ``--requests`` in all after a warm-up: throughput, p50 and p99.

``--source DIR`` runs the service of another checkout (an older commit, say, made with
``git worktree add``) against the same cloud, so that two versions are measured the same
way, one after the other, in one run of this script: give ``--source`` several times.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from service_support import LiveService  # noqa: E402

from tests.cloud.conftest_helpers import SHARED  # noqa: E402


def seed(service: LiveService, images: int) -> None:
    master = service.cloud.glance_client(region="Master")
    region = service.cloud.glance_client(region="RegionA")
    for number in range(images):
        data = f"bench image {number}".encode() * 64
        created = master.images.create(
            name=f"bench-{number:03d}",
            disk_format="raw",
            container_format="bare",
            visibility="public",
            nid=str(number),
        )
        master.images.upload(created["id"], io.BytesIO(data), image_size=len(data))
        if number % 10:  # 90% already there, a few of them with other properties
            copy = region.images.create(
                name=f"bench-{number:03d}",
                disk_format="raw",
                container_format="bare",
                visibility="public",
                nid=str(number if number % 7 else -1),
            )
            region.images.upload(copy["id"], io.BytesIO(data), image_size=len(data))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def load(url: str, token: str, clients: int, total: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    remaining = [total]

    def client() -> None:
        nonlocal failures
        with requests.Session() as session:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                began = time.perf_counter()
                answer = session.get(url, headers={"X-Auth-Token": token}, timeout=120)
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    failures += answer.status_code != 200

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    wall = time.perf_counter() - began
    return {
        "requests": total,
        "failures": failures,
        "seconds": wall,
        "per_second": total / wall,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
    }


class ServiceOf(LiveService):
    """A LiveService whose run.py is another checkout's."""

    def __init__(self, cloud, workdir: Path, source: Path):
        super().__init__(cloud, workdir)
        self.source = source

    def environ(self) -> dict[str, str]:
        environ = super().environ()
        environ["PYTHONPATH"] = str(self.source)
        return environ


def measure(cloud, source: Path, args: argparse.Namespace) -> dict[str, float]:
    import service_support

    service_support.REPO = source  # run.py of that checkout
    with tempfile.TemporaryDirectory() as folder:
        service = ServiceOf(cloud, Path(folder), source).start()
        try:
            token = service.token()
            url = f"{service.url}/regions/RegionA"
            warm = load(url, token, args.clients, args.clients * 2)
            assert warm["failures"] == 0, "the service failed during the warm-up"
            return load(url, token, args.clients, args.requests)
        finally:
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--source", type=Path, action="append", help="a checkout to measure")
    args = parser.parse_args()
    sources = args.source or [ROOT]
    cloud = SHARED.acquire(lambda: Path(tempfile.mkdtemp(prefix="bench-cloud-")))
    try:
        cloud.purge_images()
        with tempfile.TemporaryDirectory() as folder:
            seed(LiveService(cloud, Path(folder)), args.images)
        print(f"{args.images} images in Master, {args.clients} clients, {args.requests} requests")
        print("source                                     req/s    p50 (s)  p99 (s)  failures")
        for source in sources:
            figures = measure(cloud, source.resolve(), args)
            print(
                f"{str(source)[:40]:40} {figures['per_second']:8.1f} {figures['p50']:9.3f} "
                f"{figures['p99']:8.3f} {figures['failures']:9d}"
            )
    finally:
        cloud.purge_images()
        SHARED.release()


if __name__ == "__main__":
    os.environ.setdefault("GLANCESYNC_CLOUD_VENV", str(ROOT / ".cloud-venv"))
    main()
