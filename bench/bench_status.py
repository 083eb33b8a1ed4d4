"""Benchmark: ``sync.py --show-status`` over many regions on the persistent mock.

    .venv/bin/python bench/bench_status.py [--regions 20] [--images 1000 10000 50000]

For each image count it writes a scenario (a master with N images and R regions each
holding 90% of them, some with other checksums or properties), loads it with the mock
loader, then times ``sync.py --show-status`` in a fresh process (load of every region
plus planning; median of three runs) and reads its CPU time and peak RSS. Figures go to standard output as a table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fiwareglancesync.image import Image, write_csv

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def checksum(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _image(
    region: str, name: str, image_id: str, size: int, digest: str, properties: dict
) -> Image:
    return Image(name, image_id, region, "active", size, digest, "tenant1id", "public", properties)


def _write(path: Path, images: list[Image]) -> int:
    with open(path, "w", newline="") as out:
        write_csv(out, images)
    return len(images)


def write_scenario(
    folder: Path, images: int, regions: int, missing_every: int = 10, metadata_every: int = 53
) -> int:
    """Write the backups; return the number of rows written.

    Each region lacks one image in ``missing_every``, has another checksum for one in 37
    and other properties for one in ``metadata_every``.
    """
    master = [
        _image(
            "Master",
            f"img{n:06d}",
            f"m{n}",
            1048576 * (1 + n % 500),
            checksum(f"c{n}"),
            {"type": "baseimages" if n % 3 else "ngimages", "nid": n},
        )
        for n in range(images)
    ]
    rows = _write(folder / "backup_Master.csv", master)
    for r in range(regions):
        region = f"Region{r:02d}"
        copies = []
        for n, original in enumerate(master):
            if (n + r) % missing_every == 0:
                continue  # missing: pending_upload
            digest, properties = original.checksum or "", original.user_properties
            if (n + r) % 37 == 0:
                digest = checksum(f"old{n}")  # replaced by 'any'
            if (n + r) % metadata_every == 0:
                properties = {**properties, "nid": -1}  # pending_metadata
            copies.append(
                _image(region, original.name, f"{region}-{n}", original.size, digest, properties)
            )
        rows += _write(folder / f"backup_{region}.csv", copies)
    return rows


CONFIG = """[main]
master_region = Master

[DEFAULT]
metadata_set = type, nid
replace = any

[master]
credential = admin,c2VjcmV0,http://127.0.0.1:5000/v3,tenant1
"""


def timed(argv: list[str], environ: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one command, and its output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(argv, env=environ, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - start
        if child.returncode:
            raise SystemExit(f"{argv} failed with status {child.returncode}")
        out.seek(0)
        text = out.read()
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def measure(images: int, regions: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "scenario"
        folder.mkdir()
        rows = write_scenario(folder, images, regions)
        (Path(work) / "glancesync.conf").write_text(CONFIG)
        store = Path(work) / "store"
        environ = dict(os.environ, GLANCESYNC_CONFIG=str(Path(work) / "glancesync.conf"))
        load_seconds, _, load_peak, _ = timed(
            [PYTHON, "-m", "fiwareglancesync.mock", "--path", str(store), str(folder)], environ
        )
        environ["GLANCESYNC_MOCKPERSISTENT_PATH"] = str(store)
        runs = [timed([PYTHON, str(ROOT / "sync.py"), "--show-status"], environ) for _ in range(3)]
        wall, cpu, peak, out = sorted(runs)[1]
    return {
        "images": images,
        "regions": regions,
        "rows": rows,
        "status_lines": out.count("\n"),
        "loader_s": load_seconds,
        "loader_mib": load_peak,
        "status_s": wall,
        "status_cpu_s": cpu,
        "peak_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 10000, 50000])
    args = parser.parse_args()
    print(
        "| images | regions | CSV rows | status lines | loader (s) | loader RSS (MiB) "
        "| --show-status wall (s) | CPU (s) | peak RSS (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for images in sorted(args.images):
        r = measure(images, args.regions)
        print(
            f"| {r['images']:,} | {r['regions']} | {r['rows']:,} | {r['status_lines']:,} | "
            f"{r['loader_s']:.2f} | {r['loader_mib']:.0f} | {r['status_s']:.2f} | "
            f"{r['status_cpu_s']:.2f} | {r['peak_mib']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
