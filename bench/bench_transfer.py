"""Transfer benchmark: sync.py against a plain glanceclient upload, on the real test cloud.

    .venv/bin/python bench/bench_transfer.py [--size-mb 500] [--repeat 3] [--json OUT]
        [--stream-only]

Starts its own test cloud (tests/cloud, no proxies in front of the Glances), makes a
master image of SIZE MB and measures, interleaved so that every contender sees the same
machine state:

* ``plain``: glanceclient ``images.upload`` of the file to RegionA (the reference);
* ``file``: ``sync.py RegionA`` with the image in images_dir;
* ``stream``: ``sync.py RegionA`` streaming the image from the Master Glance;
* ``one`` / ``parallel``: ``sync.py RegionA`` vs ``sync.py --parallel RegionA RegionB
  other:RegionC`` (max_children = 3), whole runs, from images_dir;
* the peak RSS of every sync.py process (``wait4``), and of one run with a small image.

``--stream-only`` keeps ``plain`` and ``stream`` alone, alternately: more rounds of the
one ratio in the same time, for a before/after comparison on a noisy machine.

It is a script, not a test: it prints a table and the medians, and writes JSON on demand.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cloud.cloud import TestCloud  # noqa: E402
from tests.cloud.install import DEFAULT_VENV, ensure_venv  # noqa: E402

MiB = 1024 * 1024
MB = 1000 * 1000
IMAGE = "bench-image"


@dataclass
class SyncRun:
    wall: float  # the whole sync.py process
    upload: float | None  # "Uploading image" .. "Image uploaded." (sequential runs only)
    max_rss_mib: float
    status: int
    cpu: float  # CPU seconds of sync.py and its --parallel children
    output: list[str] = field(repr=False)


def servers_cpu(cloud: TestCloud) -> float:
    """CPU seconds used so far by every process of the test cloud's servers."""
    groups = set(cloud.pids().values())
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


def make_file(path: Path, size: int) -> str:
    """Incompressible data of ``size`` bytes; returns its MD5."""
    digest = hashlib.md5(usedforsecurity=False)
    block = os.urandom(8 * MiB)
    with open(path, "wb") as out:
        written, number = 0, 0
        while written < size:
            piece = (number.to_bytes(8, "big") + block[8:])[: size - written]
            out.write(piece)
            digest.update(piece)
            written += len(piece)
            number += 1
    return digest.hexdigest()


def write_config(cloud: TestCloud, workdir: Path, images_dir: Path) -> Path:
    a, b = cloud.keystones["A"], cloud.keystones["B"]
    password = base64.b64encode(a.admin_password.encode()).decode()
    text = f"""[main]
master_region = Master
images_dir = {images_dir}
max_children = 3

[master]
credential = {a.admin_user},{password},{a.auth_url},{a.admin_project}
# What is measured here is data through this host (bench_server_side.py compares
# glance-download).
transfer = stream

[other]
user = {b.admin_user}
password = {b.admin_password}
keystone_url = {b.auth_url}
tenant = {b.admin_project}
"""
    path = workdir / "glancesync.conf"
    path.write_text(text)
    return path


def run_sync(args: list[str], config: Path, cwd: Path) -> SyncRun:
    """Run sync.py as an operator would, timing its log lines as they arrive."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["GLANCESYNC_CONFIG"] = str(config)
    command = [sys.executable, "-u", str(REPO / "sync.py"), *args]
    began = time.monotonic()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines, marks = [], {}
    for line in process.stdout:
        now = time.monotonic()
        lines.append(line.rstrip("\n"))
        if ": Uploading image" in line:
            marks.setdefault("start", now)
        if ": Image uploaded." in line:
            marks["end"] = now
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - began
    upload = marks["end"] - marks["start"] if {"start", "end"} <= marks.keys() else None
    exit_status = os.waitstatus_to_exitcode(status)
    if exit_status != 0:
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(f"sync.py {' '.join(args)} failed with status {exit_status}")
    cpu = usage.ru_utime + usage.ru_stime
    return SyncRun(wall, upload, usage.ru_maxrss / 1024, exit_status, cpu, lines)


def plain_upload(cloud: TestCloud, path: Path, size: int) -> float:
    """Seconds for glanceclient images.upload of the file (the create is not counted)."""
    client = cloud.glance_client(region="RegionA")
    image = client.images.create(name="bench-plain", disk_format="raw", container_format="bare")
    with open(path, "rb") as data:
        began = time.monotonic()
        client.images.upload(image["id"], data, image_size=size)
        seconds = time.monotonic() - began
    client.images.delete(image["id"])
    return seconds


def clear_copies(cloud: TestCloud, regions: tuple[str, ...]) -> None:
    for region in regions:
        client = cloud.glance_client(region=region)
        for image in list(client.images.list()):
            if image["name"] == IMAGE:
                client.images.delete(image["id"])


def seed_master(cloud: TestCloud, path: Path, size: int) -> str:
    client = cloud.glance_client(region="Master")
    image = client.images.create(
        name=IMAGE, disk_format="raw", container_format="bare", visibility="public"
    )
    with open(path, "rb") as data:
        client.images.upload(image["id"], data, image_size=size)
    return image["id"]


def median(values: list[float]) -> float:
    return statistics.median(values)


def rate(size: int, seconds: float) -> float:
    return size / MB / seconds


def benchmark(
    cloud: TestCloud, workdir: Path, size: int, repeat: int, stream_only: bool = False
) -> dict[str, Any]:
    images_dir = workdir / "images"
    images_dir.mkdir()
    source = workdir / "source.raw"
    make_file(source, size)
    config = write_config(cloud, workdir, images_dir)
    master_id = seed_master(cloud, source, size)
    in_images_dir = images_dir / master_id
    targets = ("RegionA", "RegionB", "RegionC")

    times: dict[str, list[float]] = {
        k: [] for k in ("plain", "file", "stream", "one", "par", "one_stream", "par_stream")
    }
    walls: dict[str, list[float]] = {"file": [], "stream": []}
    rss: list[float] = []
    cpu: dict[str, list[tuple[float, float]]] = {k: [] for k in times if k[:3] in ("one", "par")}
    for round_number in range(1, repeat + 1):
        if stream_only:
            stream_round(cloud, config, workdir, source, size, times, targets)
            print(
                f"round {round_number}: plain {times['plain'][-1]:.2f}s, stream "
                f"{times['stream'][-1]:.2f}s",
                flush=True,
            )
            continue
        times["plain"].append(plain_upload(cloud, source, size))

        os.link(source, in_images_dir)
        run = run_sync(["RegionA"], config, workdir)
        times["file"].append(run.upload or run.wall)
        walls["file"].append(run.wall)
        rss.append(run.max_rss_mib)
        clear_copies(cloud, targets)

        in_images_dir.unlink()
        run = run_sync(["RegionA"], config, workdir)
        times["stream"].append(run.upload or run.wall)
        walls["stream"].append(run.wall)
        rss.append(run.max_rss_mib)
        clear_copies(cloud, targets)

        os.link(source, in_images_dir)
        before = servers_cpu(cloud)
        run = run_sync(["RegionA"], config, workdir)
        cpu["one"].append((run.cpu, servers_cpu(cloud) - before))
        times["one"].append(run.wall)
        rss.append(run.max_rss_mib)
        clear_copies(cloud, targets)
        before = servers_cpu(cloud)
        run = run_sync(["--parallel", "RegionA", "RegionB", "other:RegionC"], config, workdir)
        cpu["par"].append((run.cpu, servers_cpu(cloud) - before))
        times["par"].append(run.wall)
        rss.append(run.max_rss_mib)
        clear_copies(cloud, targets)
        in_images_dir.unlink()
        # The same comparison streaming from the master (no client-side MD5).
        before = servers_cpu(cloud)
        run = run_sync(["RegionA"], config, workdir)
        cpu["one_stream"].append((run.cpu, servers_cpu(cloud) - before))
        times["one_stream"].append(run.wall)
        clear_copies(cloud, targets)
        before = servers_cpu(cloud)
        run = run_sync(["--parallel", "RegionA", "RegionB", "other:RegionC"], config, workdir)
        cpu["par_stream"].append((run.cpu, servers_cpu(cloud) - before))
        times["par_stream"].append(run.wall)
        rss.append(run.max_rss_mib)
        clear_copies(cloud, targets)
        print(
            f"round {round_number}: plain {times['plain'][-1]:.2f}s, file "
            f"{times['file'][-1]:.2f}s, stream {times['stream'][-1]:.2f}s, one region "
            f"{times['one'][-1]:.2f}s, three in parallel {times['par'][-1]:.2f}s; streamed: "
            f"one {times['one_stream'][-1]:.2f}s, three {times['par_stream'][-1]:.2f}s",
            flush=True,
        )
    if stream_only:
        return stream_result(size, repeat, times)
    small_rss = small_image_rss(cloud, workdir, config)
    plain = rate(size, median(times["plain"]))
    result = {
        "size_bytes": size,
        "repeat": repeat,
        "plain_MBps": plain,
        "file_MBps": rate(size, median(times["file"])),
        "stream_MBps": rate(size, median(times["stream"])),
        "file_whole_run_MBps": rate(size, median(walls["file"])),
        "stream_whole_run_MBps": rate(size, median(walls["stream"])),
        "one_region_s": median(times["one"]),
        "three_regions_parallel_s": median(times["par"]),
        "peak_rss_MiB": max(rss),
        "peak_rss_small_image_MiB": small_rss,
        "raw_seconds": times,
        # (sync.py CPU seconds, servers' CPU seconds) of each round
        "cpu_one_region": cpu["one"],
        "cpu_three_regions": cpu["par"],
        "one_region_streamed_s": median(times["one_stream"]),
        "three_regions_parallel_streamed_s": median(times["par_stream"]),
        "cpu_one_region_streamed": cpu["one_stream"],
        "cpu_three_regions_streamed": cpu["par_stream"],
    }
    result["file_vs_plain"] = result["file_MBps"] / plain
    result["stream_vs_plain"] = result["stream_MBps"] / plain
    result["parallel_vs_one"] = result["three_regions_parallel_s"] / result["one_region_s"]
    result["parallel_vs_one_streamed"] = (
        result["three_regions_parallel_streamed_s"] / result["one_region_streamed_s"]
    )
    return result


def stream_round(
    cloud: TestCloud,
    config: Path,
    workdir: Path,
    source: Path,
    size: int,
    times: dict[str, list[float]],
    targets: tuple[str, ...],
) -> None:
    """One round of ``--stream-only``: the plain upload, then the streamed sync.py."""
    times["plain"].append(plain_upload(cloud, source, size))
    run = run_sync(["RegionA"], config, workdir)
    times["stream"].append(run.upload or run.wall)
    clear_copies(cloud, targets)


def stream_result(size: int, repeat: int, times: dict[str, list[float]]) -> dict[str, Any]:
    plain, stream = median(times["plain"]), median(times["stream"])
    return {
        "size_bytes": size,
        "repeat": repeat,
        "stream_only": True,
        "plain_s": times["plain"],
        "stream_s": times["stream"],
        "plain_median_s": plain,
        "stream_median_s": stream,
        "stream_vs_plain": plain / stream,
    }


def small_image_rss(cloud: TestCloud, workdir: Path, config: Path) -> float:
    """Peak RSS of a run moving a 1 MB image: the baseline memory of sync.py."""
    client = cloud.glance_client(region="Master")
    for image in list(client.images.list()):
        client.images.delete(image["id"])
    small = workdir / "small.raw"
    make_file(small, MB)
    seed_master(cloud, small, MB)
    run = run_sync(["RegionA"], config, workdir)
    clear_copies(cloud, ("RegionA",))
    return run.max_rss_mib


def report(result: dict[str, Any]) -> None:
    size_mb = result["size_bytes"] / MB
    if result.get("stream_only"):
        print(
            f"\nImage of {size_mb:.0f} MB, median of {result['repeat']} rounds: plain "
            f"{result['plain_median_s']:.2f} s, stream {result['stream_median_s']:.2f} s, "
            f"stream / plain {result['stream_vs_plain']:.2f}"
        )
        return
    for key, label in (
        ("cpu_one_region", "one region"),
        ("cpu_three_regions", "three regions"),
        ("cpu_one_region_streamed", "one region, streamed"),
        ("cpu_three_regions_streamed", "three regions, streamed"),
    ):
        client, servers = (median([pair[i] for pair in result[key]]) for i in (0, 1))
        print(f"CPU seconds, {label}: sync.py {client:.2f}, Keystone+Glance servers {servers:.2f}")
    print(f"\nImage of {size_mb:.0f} MB, median of {result['repeat']} rounds:")
    print(f"  plain glanceclient upload      {result['plain_MBps']:7.1f} MB/s")
    for key, label in (("file", "sync.py from images_dir"), ("stream", "sync.py from master")):
        print(
            f"  {label:<30} {result[key + '_MBps']:7.1f} MB/s "
            f"({result[key + '_vs_plain']:.0%} of plain; whole run "
            f"{result[key + '_whole_run_MBps']:.1f} MB/s)"
        )
    print(f"  one region (whole run)         {result['one_region_s']:7.2f} s")
    print(
        f"  three regions, --parallel      {result['three_regions_parallel_s']:7.2f} s "
        f"({result['parallel_vs_one']:.2f}x one region)"
    )
    print(
        f"  streamed: one region {result['one_region_streamed_s']:.2f} s, three regions "
        f"--parallel {result['three_regions_parallel_streamed_s']:.2f} s "
        f"({result['parallel_vs_one_streamed']:.2f}x)"
    )
    print(
        f"  peak RSS of sync.py            {result['peak_rss_MiB']:7.1f} MiB "
        f"(1 MB image: {result['peak_rss_small_image_MiB']:.1f} MiB)"
    )


def run_on_cloud(
    description: str,
    benchmark: Any,
    report: Any,
    *,
    stream_only_option: bool = False,
    **cloud_options: Any,
) -> int:
    """The command line of a benchmark on the test cloud: ``--size-mb``, ``--repeat``,
    ``--json`` (and ``--stream-only`` if asked); a cloud (unproxied, plus
    ``cloud_options``) for the run, then the report."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=500, help="image size in MB (10^6 bytes)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    if stream_only_option:
        parser.add_argument(
            "--stream-only",
            action="store_true",
            help="only the plain upload and the streamed sync.py, alternately",
        )
    args = parser.parse_args()
    options = {"stream_only": True} if getattr(args, "stream_only", False) else {}
    venv = ensure_venv(Path(os.environ.get("GLANCESYNC_CLOUD_VENV", DEFAULT_VENV)))
    with tempfile.TemporaryDirectory(prefix="glancesync-bench-") as scratch:
        workdir = Path(scratch)
        with TestCloud(workdir / "cloud", venv, proxied_regions=(), **cloud_options) as cloud:
            result = benchmark(cloud, workdir, args.size_mb * MB, args.repeat, **options)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def main() -> int:
    return run_on_cloud(__doc__, benchmark, report, stream_only_option=True)


if __name__ == "__main__":
    sys.exit(main())
