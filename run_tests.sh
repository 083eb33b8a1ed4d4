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
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_UPDATED=""
# debian_install WHAT SERVICE PACKAGE...: install Debian packages the tests need. A
# failed install fails the tests that need them (they say so), not the whole run. The
# tests start their own servers on 127.0.0.1: where systemd started the package's own
# SERVICE on install (on every address), it is stopped again.
debian_install() {
    local what=$1 service=$2
    shift 2
    echo "== installing $* (Debian packages)"
    if { [ -n "$APT_UPDATED" ] || $SUDO apt-get update -q >/dev/null; } &&
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@" >/dev/null; then
        APT_UPDATED=yes
    else
        echo "== could not install $*: $what will fail"
    fi
    if [ -n "$service" ] && command -v systemctl >/dev/null 2>&1 &&
        systemctl is-active --quiet "$service" 2>/dev/null; then
        $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
}
# The status page's tests look at it in a real browser: Debian's Chromium.
if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
    debian_install "the browser tests" "" chromium chromium-driver
fi
# The reverse-proxy tests run the shipped docker/nginx.conf with Debian's nginx.
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
    debian_install "the reverse-proxy tests" nginx nginx
fi
# The agent's tests follow the master Glance's notifications on a RabbitMQ of their own.
if ! [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    debian_install "the agent's notification tests" rabbitmq-server rabbitmq-server
fi
# The coordination tests (coordination_url = redis://...) run Debian's Redis.
if ! command -v redis-server >/dev/null 2>&1 && ! [ -x /usr/bin/redis-server ]; then
    debian_install "the Redis coordination tests" redis-server redis-server
fi
echo "== installing the test cloud (Keystone, Glance) into .cloud-venv"
.venv/bin/python tests/cloud/install.py
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
