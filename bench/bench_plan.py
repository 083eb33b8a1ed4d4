"""Benchmark: the planner alone, ``plan_region`` over one region of N images.

    .venv/bin/python bench/bench_plan.py [--images 10000] [--ami-every 50] [--rounds 15]

The master and the region hold the same N images (the steady state a cron run meets
most), each with the properties of ``metadata_set``; one image in ``--ami-every`` names
the next one as its kernel. Each round plans the region five times; the figure is the
best round's CPU time per plan (CPU time, not wall time: the machine is shared).
"""

from __future__ import annotations

import argparse
import time

from fiwareglancesync.config import TargetConfig
from fiwareglancesync.credentials import Credential
from fiwareglancesync.image import Image
from fiwareglancesync.plan import plan_region, select_images
from fiwareglancesync.region import RegionRef

REGION = RegionRef("master", "R")


def _images(count: int, prefix: str) -> list[Image]:
    return [
        Image(
            name=f"image-{n:05d}",
            id=f"{prefix}{n}",
            region=prefix,
            size=n,
            checksum=f"{n:032x}",
            owner="tenant1id",
            visibility="public",
            user_properties={"type": "x", "nid": str(n)},
        )
        for n in range(count)
    ]


def _target() -> TargetConfig:
    credential = Credential.with_password("admin", "secret", "http://127.0.0.1:5000/v3", "p")
    return TargetConfig(
        name="master", credential=credential, metadata_set=frozenset({"type", "nid"})
    )


def measure(count: int, ami_every: int, rounds: int) -> float:
    """The best CPU seconds of one plan of ``count`` images."""
    master, regional = _images(count, "m"), _images(count, "r")
    for index in range(0, count - 1, ami_every):
        master[index].user_properties["kernel_id"] = master[index + 1].id
    target = _target()
    selected = select_images(master, target)
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(5):
            plan_region(REGION, master, regional, target, "tenant1id", selected)
        best = min(best, (time.process_time() - started) / 5)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--ami-every", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    seconds = measure(args.images, args.ami_every, args.rounds)
    print(f"plan_region, {args.images:,} images: {seconds * 1000:.1f} ms CPU per plan")


if __name__ == "__main__":
    main()
