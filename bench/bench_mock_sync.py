"""Benchmark: a full ``sync.py`` of many regions on the persistent mock.

    .venv/bin/python bench/bench_mock_sync.py [--regions 20] [--images 2000 10000]

For each image count it writes the scenario of ``bench_status.py`` (a master with N
images and R regions each holding 90% of them, some with another checksum, replaced by
``replace = any``, some with other properties), loads it with the mock loader, and times
one ``sync.py`` (sequential, every region) in a fresh process, with its CPU time and peak
RSS. The operations are counted from the log lines; a ``--show-status`` afterwards must
find nothing pending. Figures go to standard output as a table.

Run from an export of another commit (``git archive <commit> | tar -x -C DIR``, then copy
this file and ``bench_status.py`` into ``DIR/bench``), it measures that commit's store:
the loader and ``sync.py`` run from the tree this file is in.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench_status import CONFIG, timed, write_scenario

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# The log line of each operation the sync makes through the facade.
UPLOADS = (": Uploading image ", ": Replacing image ", ": Renaming and replacing image ")
UPDATES = (": Updating the metadata of image ", ": updating obsolete image ")
REPLACES = ": Replacing image "


def count(log: str, markers: tuple[str, ...]) -> int:
    return sum(1 for line in log.splitlines() if any(marker in line for marker in markers))


def measure(images: int, regions: int, missing: int, metadata: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "scenario"
        folder.mkdir()
        write_scenario(folder, images, regions, missing, metadata)
        config = Path(work) / "glancesync.conf"
        config.write_text(CONFIG)
        store = Path(work) / "store"
        # PYTHONPATH: the loader and sync.py import the package of this tree.
        environ = dict(os.environ, GLANCESYNC_CONFIG=str(config), PYTHONPATH=str(ROOT))
        timed([PYTHON, "-m", "fiwareglancesync.mock", "--path", str(store), str(folder)], environ)
        environ["GLANCESYNC_MOCKPERSISTENT_PATH"] = str(store)
        wall, cpu, peak, log = timed([PYTHON, str(ROOT / "sync.py")], environ)
        _, _, _, status = timed([PYTHON, str(ROOT / "sync.py"), "--show-status"], environ)
    uploads, updates = count(log, UPLOADS), count(log, UPDATES)
    deletes = count(log, (REPLACES,))  # a replacement deletes the old copy
    pending = sum(1 for line in status.splitlines() if line.startswith("pending_"))
    if pending:
        raise SystemExit(f"{pending} images still pending after the sync")
    return {
        "images": images,
        "regions": regions,
        "uploads": uploads,
        "updates": updates,
        "deletes": deletes,
        "operations": uploads + updates + deletes,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--images", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument(
        "--missing-every", type=int, default=10, help="one image in N missing per region"
    )
    parser.add_argument(
        "--metadata-every", type=int, default=53, help="one in N with other properties"
    )
    args = parser.parse_args()
    print(
        "| images | regions | uploads | metadata updates | deletes | sync wall (s) "
        "| CPU (s) | operations/s | peak RSS (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for images in sorted(args.images):
        r = measure(images, args.regions, args.missing_every, args.metadata_every)
        print(
            f"| {r['images']:,} | {r['regions']} | {r['uploads']:,} | {r['updates']:,} | "
            f"{r['deletes']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['operations'] / r['wall_s']:,.0f} | {r['peak_mib']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
