"""Benchmark: answers while silent clients hold connections, plain gunicorn vs. nginx.

    .venv/bin/python bench/bench_slow_clients.py [--silent 40] [--requests 20]
                                                 [--timeout 10] [--payload half|none]

For each set-up, starts ``run.py gunicornserver`` with the shipped defaults (3 workers
x 4 threads, noauth, the example on the mock): ``plain`` on a TCP port of 127.0.0.1,
``proxy`` on a unix socket behind nginx with ``docker/nginx.conf``. Opens ``--silent``
connections that send half a request (``--payload half``) or nothing at all (``none``),
then sends ``--requests`` requests, alternately ``GET /`` and ``GET /regions/Leon``,
one after the other, each with a ``--timeout`` second client timeout. Prints, per
set-up, how many were answered and the median and largest answer time. Everything
listens on 127.0.0.1 or in a temporary folder, and is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "api"))

import proxy_support  # noqa: E402
from proxy_support import Endpoint, gunicorn, nginx  # noqa: E402

PATHS = ("/", "/regions/Leon")


def measure(front: Endpoint, requests: int, timeout: float) -> tuple[int, list[float]]:
    """(answered, seconds of each request, a timed-out one counting ``timeout``)."""
    answered, times = 0, []
    for number in range(requests):
        started = time.monotonic()
        try:
            status, _ = front.get(PATHS[number % 2], timeout=timeout)
            answered += status == 200
        except OSError:
            pass  # a client timeout: not answered
        times.append(time.monotonic() - started)
    return answered, times


def run(setup: str, args: argparse.Namespace) -> str:
    with (
        tempfile.TemporaryDirectory(prefix="bench-slow-") as folder,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(folder)
        upstream = stack.enter_context(gunicorn(workdir, unix_socket=setup == "proxy"))
        front = upstream
        if setup == "proxy":
            front = stack.enter_context(nginx(workdir / "nginx", upstream))
        stack.enter_context(proxy_support.half_requests(front, args.silent))
        time.sleep(1.0)  # let the workers take the silent connections first
        answered, times = measure(front, args.requests, args.timeout)
    return (
        f"{setup:6} {args.silent} silent ({args.payload}): {answered}/{args.requests} answered; "
        f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--silent", type=int, default=40)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--payload", choices=("half", "none"), default="half")
    parser.add_argument("--setups", default="plain,proxy")
    args = parser.parse_args()
    if args.payload == "none":
        proxy_support.HALF_REQUEST = b""  # connect, then send nothing at all
    for setup in args.setups.split(","):
        print(run(setup, args), flush=True)


if __name__ == "__main__":
    main()
