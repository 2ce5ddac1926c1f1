#!/usr/bin/env bash
# Set up (if needed) and run the offline demo end to end: a real PyTorch training job whose 4-second
# "session budget" runs out again and again; each time we re-run the SAME command, as after a Colab
# disconnect, and it resumes from the newest checkpoint until the job completes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DEMO_HOME=${DEMO_HOME:-$PWD/demo-work/jobs}
mkdir -p "$DEMO_HOME"
PYBIN="$PWD/.venv/bin/python"
run() { "$PYBIN" -m orchestrator "$@"; }
cd examples/demo
for session in $(seq 1 20); do
  echo "=== session $session: python -m orchestrator run job.yaml"
  set +e; run run job.yaml; code=$?; set -e
  [ "$code" = 0 ] && break
  [ "$code" = 75 ] || exit "$code"
done
echo "=== python -m orchestrator status job.yaml"
run status job.yaml
cat "$DEMO_HOME/demo-mlp/output/final.txt"
