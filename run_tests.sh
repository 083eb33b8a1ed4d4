#!/usr/bin/env bash
# Runs the whole test suite from nothing: the project's virtualenv, the test cloud's
# virtualenv (real Keystone and Glance servers from PyPI), lint, then pytest.
# Extra arguments go to pytest (e.g. ./run_tests.sh tests/unit -x).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
fi
echo "== installing the project and its test requirements into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt -r test-requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
    # The status page's tests look at it in a real browser: Debian's Chromium.
    echo "== installing chromium and chromium-driver (Debian packages)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    # A failed install fails the browser tests (they say so), not the whole run.
    { $SUDO apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver >/dev/null; } ||
        echo "== could not install chromium: the browser tests will fail"
fi
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
    # The reverse-proxy tests run the shipped docker/nginx.conf with Debian's nginx.
    echo "== installing nginx (Debian package)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nginx >/dev/null; } ||
        echo "== could not install nginx: the reverse-proxy tests will fail"
    # The tests start their own nginx on 127.0.0.1; where systemd started Debian's
    # default site (port 80, every address) on install, stop it again.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
        $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
fi
if ! [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    # The agent's tests follow the master Glance's notifications on a RabbitMQ of their
    # own (tests/fixtures/rabbitmq.py starts it on 127.0.0.1): Debian's rabbitmq-server.
    echo "== installing rabbitmq-server (Debian package)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q rabbitmq-server >/dev/null; } ||
        echo "== could not install rabbitmq-server: the agent's notification tests will fail"
    # Where systemd started Debian's own broker on install (port 5672, every address),
    # stop it again: the tests start theirs.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
        $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
    fi
fi
if ! command -v redis-server >/dev/null 2>&1 && ! [ -x /usr/bin/redis-server ]; then
    # The coordination tests (coordination_url = redis://...) run Debian's Redis.
    echo "== installing redis-server (Debian package)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q redis-server >/dev/null; } ||
        echo "== could not install redis-server: the Redis coordination tests will fail"
    # The tests start their own redis-server on 127.0.0.1; where systemd started
    # Debian's service on install, stop it again.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
        $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
fi
echo "== installing the test cloud (Keystone, Glance) into .cloud-venv"
.venv/bin/python tests/cloud/install.py
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
