#!/usr/bin/env bash
# The Quick start's first command: load the bundled example scenario into a fresh mock
# store, show the status, synchronise, and show the status again. Needs only python3.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -e . >/dev/null
export GLANCESYNC_CONFIG="$PWD/examples/glancesync.conf"
eval "$(.venv/bin/python -m fiwareglancesync.mock --random examples/scenario)"
echo "== mock store: $GLANCESYNC_MOCKPERSISTENT_PATH"
# Both targets: every region of the master target, and every region of "other".
REGIONS="master: other:"
echo "== ./sync.py --show-status $REGIONS (before)"
.venv/bin/python sync.py --show-status $REGIONS
echo "== ./sync.py $REGIONS"
.venv/bin/python sync.py $REGIONS
echo "== ./sync.py --show-status $REGIONS (after)"
.venv/bin/python sync.py --show-status $REGIONS
