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
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from bench_service import status_load  # noqa: E402
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


class ServiceOf(LiveService):
    """A LiveService whose run.py is another checkout's."""

    def __init__(self, cloud, workdir: Path, source: Path, master_cache: float | None):
        super().__init__(cloud, workdir, master_cache_seconds=master_cache)
        self.source = source

    def environ(self) -> dict[str, str]:
        environ = super().environ()
        environ["PYTHONPATH"] = str(self.source)
        return environ


def measure(cloud, source: Path, args: argparse.Namespace) -> dict[str, float]:
    import service_support

    service_support.REPO = source  # run.py of that checkout
    with tempfile.TemporaryDirectory() as folder:
        service = ServiceOf(cloud, Path(folder), source, args.master_cache).start()
        try:
            token = service.token()
            url = f"{service.url}/regions/RegionA"
            warm = status_load(url, args.clients, args.clients * 2, token)
            assert warm["errors"] == 0, "the service failed during the warm-up"
            return status_load(url, args.clients, args.requests, token)
        finally:
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--source", type=Path, action="append", help="a checkout to measure")
    parser.add_argument(
        "--master-cache", type=float, help="MASTER_CACHE_SECONDS (default: the service's)"
    )
    args = parser.parse_args()
    sources = args.source or [ROOT]
    cloud = SHARED.acquire(lambda: Path(tempfile.mkdtemp(prefix="bench-cloud-")))
    try:
        cloud.purge_images()
        with tempfile.TemporaryDirectory() as folder:
            seed(LiveService(cloud, Path(folder)), args.images)
        print(f"{args.images} images in Master, {args.clients} clients, {args.requests} requests")
        print("source                                     req/s   p50 (ms)  p99 (ms)   errors")
        for source in sources:
            figures = measure(cloud, source.resolve(), args)
            print(
                f"{str(source)[:40]:40} {figures['throughput']:8.1f} {figures['p50']:9.0f} "
                f"{figures['p99']:9.0f} {figures['errors']:8d}"
            )
    finally:
        cloud.purge_images()
        SHARED.release()


if __name__ == "__main__":
    os.environ.setdefault("GLANCESYNC_CLOUD_VENV", str(ROOT / ".cloud-venv"))
    main()
