#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite.
#   bash scripts/test.sh            every test (what CI runs)
#   bash scripts/test.sh --quick    skip the tests marked slow (kill-and-resume trials, 50 MB watcher, ...)
# Other arguments go to pytest, e.g. bash scripts/test.sh --quick tests/checkpoints -x
# Tests run in TEST_WORKERS pytest-xdist processes (default 2: most slow tests wait on subprocesses, mounts and
# sleeps, so two at once take about a third of the serial time on this 2-core machine); TEST_WORKERS=0: serial.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for arg in "$@"; do
  if [ "$arg" = "--quick" ]; then
    args+=(-m "not slow")
  else
    args+=("$arg")
  fi
done
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q --durations=20 -n "${TEST_WORKERS:-2}" ${args[@]+"${args[@]}"}
