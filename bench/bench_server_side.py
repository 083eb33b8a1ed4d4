"""Server-side transfers: glance-download against streams, and the cost of a resumed stream.

    .venv/bin/python bench/bench_server_side.py [--size-mb 500] [--repeat 3] [--json OUT]

Starts its own test cloud (tests/cloud) with a third region, RegionD, in the master's
Keystone and no proxy in front of any Glance, makes a public master image of SIZE MB of
incompressible data and measures, in rounds that interleave the contenders so that each
sees the same machine:

* ``sync.py RegionA`` and ``sync.py --parallel RegionA RegionB RegionD``
  (``max_children = 3``), each by ``transfer = stream`` and by ``transfer = auto``
  (glance-download): wall time of the whole run, CPU seconds of sync.py (its children
  included), CPU seconds of the cloud's servers, and the image bytes that went through
  the sync host (from the master Glance's request log: bytes it served to glanceclient),
  next to what sync.py itself counted (``glancesync_streamed_bytes``);
* the CPU seconds of a ``sync.py RegionA`` with nothing to do (start-up, token,
  listings), to tell what the transfer itself costs;
* one streamed ``sync.py RegionA`` whose master download is cut once at 40 % of the image
  (a proxy put in front of the master Glance for that run): the bytes the master sent
  in all against the image's size.

It is a script, not a test: it prints a table and writes JSON on demand.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_transfer import (  # noqa: E402
    MB,
    clear_copies,
    make_file,
    run_on_cloud,
    run_sync,
    seed_master,
    servers_cpu,
)

from tests.cloud.cloud import MASTER_REGION, TestCloud  # noqa: E402

ONE = ("RegionA",)
THREE = ("RegionA", "RegionB", "RegionD")
CHUNK = 1024 * 1024  # what GlanceSync reads from the master at a time


def write_config(cloud: TestCloud, workdir: Path, transfer: str) -> Path:
    a = cloud.keystones["A"]
    path = workdir / f"glancesync-{transfer}.conf"
    path.write_text(
        f"""[main]
master_region = {MASTER_REGION}
images_dir = {workdir / "no-images"}
max_children = 3

[master]
user = {a.admin_user}
password = {a.admin_password}
keystone_url = {a.auth_url}
tenant = {a.admin_project}
transfer = {transfer}
"""
    )
    return path


def bytes_served_to_the_sync_host(cloud: TestCloud, image_id: str, skip: int) -> int:
    """Image bytes the master Glance logged for glanceclient, after the first ``skip``
    log entries of that image."""
    logged = [d for d in cloud.file_downloads(MASTER_REGION) if d.image_id == image_id]
    return sum(d.size for d in logged[skip:] if d.by_sync_host)


def streamed_metric(path: Path) -> int:
    total = 0
    for line in path.read_text().splitlines():
        if line.startswith("glancesync_streamed_bytes{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def one_run(
    cloud: TestCloud, workdir: Path, config: Path, regions: tuple[str, ...], image_id: str
) -> dict[str, float]:
    seen = len([d for d in cloud.file_downloads(MASTER_REGION) if d.image_id == image_id])
    metrics = workdir / "run.prom"
    metrics.unlink(missing_ok=True)
    args = ["--metrics-file", str(metrics)]
    args += ["--parallel", *regions] if len(regions) > 1 else list(regions)
    before = servers_cpu(cloud)
    run = run_sync(args, config, workdir)
    servers = servers_cpu(cloud) - before
    clear_copies(cloud, regions)
    imports = [
        float(line.rsplit(" in ", 1)[1].removesuffix(" s"))
        for line in run.output
        if " imported by glance-download from " in line
    ]
    return {
        "wall_s": run.wall,
        "longest_import_s": max(imports, default=0.0),
        "sync_cpu_s": run.cpu,
        "servers_cpu_s": servers,
        "host_bytes_master_log": bytes_served_to_the_sync_host(cloud, image_id, seen),
        "host_bytes_counted": streamed_metric(metrics),
    }


def idle_cpu(cloud: TestCloud, workdir: Path, config: Path, image_id: str) -> float:
    """CPU seconds of a sync.py run with nothing to do: start-up, token, two listings."""
    run_sync(["RegionA"], config, workdir)
    runs = [run_sync(["RegionA"], config, workdir) for _ in range(3)]
    assert all("Region is synchronized." in " ".join(run.output) for run in runs)
    clear_copies(cloud, ONE)
    return statistics.median(run.cpu for run in runs)


def resumed_run(cloud: TestCloud, workdir: Path, config: Path, size: int) -> dict[str, Any]:
    with cloud.behind_a_proxy(MASTER_REGION) as proxy:
        cut = int(size * 0.4)
        proxy.cut_downloads(cut, times=1)
        run = run_sync(["RegionA"], config, workdir)
    clear_copies(cloud, ONE)
    _, *rest = proxy.downloads
    offset = int(rest[0].range.removeprefix("bytes=").rstrip("-")) if rest else None
    sent = sum(d.sent for d in proxy.downloads)
    return {
        "wall_s": run.wall,
        "downloads": len(proxy.downloads),
        "cut_after_bytes": cut,
        "resumed_from_byte": offset,
        "bytes_sent_by_master": sent,
        "extra_bytes": sent - size,
        "one_chunk": CHUNK,
        "resumed_line": next((line for line in run.output if "resuming from" in line), ""),
    }


def benchmark(cloud: TestCloud, workdir: Path, size: int, repeat: int) -> dict[str, Any]:
    source = workdir / "source.raw"
    make_file(source, size)
    image_id = seed_master(cloud, source, size)
    configs = {method: write_config(cloud, workdir, method) for method in ("stream", "auto")}
    cases = [(method, regions) for regions in (ONE, THREE) for method in ("stream", "auto")]
    raw: dict[str, list[dict[str, float]]] = {}
    for round_number in range(1, repeat + 1):
        for method, regions in cases:
            key = f"{method} x{len(regions)}"
            figures = one_run(cloud, workdir, configs[method], regions, image_id)
            raw.setdefault(key, []).append(figures)
            print(
                f"round {round_number} {key:>9}: {figures['wall_s']:6.2f} s (import "
                f"{figures['longest_import_s']:.2f} s), sync.py "
                f"{figures['sync_cpu_s']:.2f} CPU s, servers {figures['servers_cpu_s']:.2f}, "
                f"{figures['host_bytes_master_log'] / MB:.0f} MB through the host",
                flush=True,
            )
    idle = idle_cpu(cloud, workdir, configs["auto"], image_id)
    resumed = resumed_run(cloud, workdir, configs["stream"], size)
    medians = {
        key: {name: statistics.median(run[name] for run in runs) for name in runs[0]}
        for key, runs in raw.items()
    }
    return {
        "size_bytes": size,
        "repeat": repeat,
        "medians": medians,
        "raw": raw,
        "idle_sync_cpu_s": idle,
        "resumed": resumed,
    }


def report(result: dict[str, Any]) -> None:
    size = result["size_bytes"]
    print(f"\nImage of {size / MB:.0f} MB, median of {result['repeat']} rounds")
    print(
        f"{'':<28}{'wall s':>8}{'sync CPU s':>12}{'servers CPU s':>15}{'MB via host':>13}"
        f"{'counted MB':>12}"
    )
    for key, figures in result["medians"].items():
        method, count = key.split(" x")
        label = f"{'glance-download' if method == 'auto' else 'stream'}, {count} region(s)"
        print(
            f"{label:<28}{figures['wall_s']:8.2f}{figures['sync_cpu_s']:12.2f}"
            f"{figures['servers_cpu_s']:15.2f}{figures['host_bytes_master_log'] / MB:13.1f}"
            f"{figures['host_bytes_counted'] / MB:12.1f}"
        )
    print(f"sync.py with nothing to do: {result['idle_sync_cpu_s']:.2f} CPU s")
    resumed = result["resumed"]
    print(
        f"\nStream cut once at byte {resumed['cut_after_bytes']}: {resumed['downloads']} "
        f"downloads, resumed from byte {resumed['resumed_from_byte']}; the master sent "
        f"{resumed['bytes_sent_by_master']} bytes, {resumed['extra_bytes']} more than the "
        f"image (one chunk: {resumed['one_chunk']}); {resumed['wall_s']:.2f} s"
    )


def main() -> int:
    return run_on_cloud(__doc__, benchmark, report, extra_master_regions=("RegionD",))


if __name__ == "__main__":
    sys.exit(main())
