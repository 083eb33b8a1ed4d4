"""Benchmark: ``sync.py --show-status`` over many regions on the persistent mock.

    .venv/bin/python bench/bench_status.py [--regions 20] [--images 1000 10000 50000]

For each image count it writes a scenario (a master with N images and R regions each
holding 90% of them, some with other checksums or properties), loads it with the mock
loader, then times ``sync.py --show-status`` in a fresh process (load of every region
plus planning) and reads its peak RSS. Figures go to standard output as a table.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def checksum(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def write_scenario(folder: Path, images: int, regions: int) -> int:
    """Write the backups; return the number of rows written."""
    rows = 0
    master = []
    for n in range(images):
        properties = {"type": "baseimages" if n % 3 else "ngimages", "nid": n}
        master.append(
            [f"img{n:06d}", f"m{n}", 1048576 * (1 + n % 500), checksum(f"c{n}"), properties]
        )
    with open(folder / "backup_Master.csv", "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for name, image_id, size, digest, properties in master:
            writer.writerow(
                [
                    "Master",
                    name,
                    image_id,
                    "active",
                    size,
                    digest,
                    "tenant1id",
                    True,
                    repr(properties),
                ]
            )
            rows += 1
    for r in range(regions):
        region = f"Region{r:02d}"
        with open(folder / f"backup_{region}.csv", "w", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            for n, (name, _, size, digest, properties) in enumerate(master):
                if (n + r) % 10 == 0:
                    continue  # 10% missing: pending_upload
                if (n + r) % 37 == 0:
                    digest = checksum(f"old{n}")  # replaced by 'any'
                if (n + r) % 53 == 0:
                    properties = {**properties, "nid": -1}  # pending_metadata
                writer.writerow(
                    [
                        region,
                        name,
                        f"{region}-{n}",
                        "active",
                        size,
                        digest,
                        "tenant1id",
                        True,
                        repr(properties),
                    ]
                )
                rows += 1
    return rows


CONFIG = """[main]
master_region = Master

[DEFAULT]
metadata_set = type, nid
replace = any

[master]
credential = admin,c2VjcmV0,http://127.0.0.1:5000/v3,tenant1
"""


def timed(argv: list[str], environ: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MiB) of one command run in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    result = subprocess.run(argv, env=environ, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the maximum over all of them: run the biggest case last.
    return elapsed, max(peak, before) / 1024, result.stdout


def measure(images: int, regions: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "scenario"
        folder.mkdir()
        rows = write_scenario(folder, images, regions)
        (Path(work) / "glancesync.conf").write_text(CONFIG)
        store = Path(work) / "store"
        environ = dict(os.environ, GLANCESYNC_CONFIG=str(Path(work) / "glancesync.conf"))
        load_seconds, _, _ = timed(
            [PYTHON, "-m", "fiwareglancesync.mock", "--path", str(store), str(folder)], environ
        )
        environ["GLANCESYNC_MOCKPERSISTENT_PATH"] = str(store)
        runs = []
        for _ in range(3):
            seconds, peak, out = timed([PYTHON, str(ROOT / "sync.py"), "--show-status"], environ)
            runs.append(seconds)
        lines = out.count("\n")
    return {
        "images": images,
        "regions": regions,
        "rows": rows,
        "status_lines": lines,
        "loader_s": load_seconds,
        "status_s": sorted(runs)[1],
        "peak_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 10000, 50000])
    args = parser.parse_args()
    print(
        "| images | regions | CSV rows | status lines | loader (s) | --show-status (s, median of 3) | peak RSS (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for images in sorted(args.images):
        r = measure(images, args.regions)
        print(
            f"| {r['images']:,} | {r['regions']} | {r['rows']:,} | {r['status_lines']:,} | "
            f"{r['loader_s']:.2f} | {r['status_s']:.2f} | {r['peak_mib']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
