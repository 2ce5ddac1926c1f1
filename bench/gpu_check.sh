#!/usr/bin/env bash
# One command for a CUDA machine (<= 8 minutes): does every GPU path of this project work there?
#
#   DARKNET_SRC=/path/to/AlexeyAB-darknet bash bench/gpu_check.sh      # default: a shallow clone of AlexeyAB
#   bash bench/gpu_check.sh --dry-run                                  # no GPU: the stand-in darknet, CPU face
#
# 1. builds darknet through the darknet job (GPU=1; CUDNN=1 where cudnn.h is found), on the micro cfg of
#    ../shared/fixtures/darknet (MICRO_CFG to override) and a synthetic 8-image dataset;
# 2. trains it (train.gpus: auto) a few hundred iterations, kill -9's the whole session mid-run (like a lost VM),
#    runs the same command again, and checks the job completed from a synced backup with the final weights;
# 3. runs the face benchmark (bench/bench_face.py) on CUDA, and bench/gpu_face_precision.py: fp32 and fp16
#    frames per second, fp16's detections within tolerance of fp32's (same faces, IoU >= 0.9, score +-0.02);
# 4. prints one table (also in $WORK/gpu_check.txt). Exit code 0 when every check passed.
#
# --dry-run runs the same steps where no GPU is: the stand-in darknet (tests/fakes/darknet) instead of a build,
# the face checks on CPU with a few frames. It tests this script, not the GPU. Not yet run on a real GPU.
set -uo pipefail

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}
MICRO=${MICRO_CFG:-$ROOT/../shared/fixtures/darknet/micro.cfg}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$WORK"
LOG="$WORK/gpu_check.log"
ROWS=()
FAILED=0

row() {  # check, PASS|FAIL|SKIP, seconds, detail
  ROWS+=("$1|$2|$3|$4")
  [ "$2" = FAIL ] && FAILED=1
  printf '%-34s %-5s %6ss  %s\n' "$1" "$2" "$3" "$4" >>"$LOG"
}

orch() { "$PY" -m orchestrator "$@"; }

# ---------------------------------------------------------------------------------------------------- preflight
GPUS=0
if [ $DRY = 1 ]; then
  row "GPU" SKIP 0 "dry run: no GPU used"
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  GPUS=$(nvidia-smi -L | grep -c '^GPU ')
  row "GPU" PASS 0 "$GPUS x $(nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader | head -1)"
else
  row "GPU" FAIL 0 "nvidia-smi finds no GPU: run this on a CUDA machine, or with --dry-run"
fi
CUDNN=false
for header in /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h /usr/local/cuda/include/cudnn.h; do
  [ -f "$header" ] && CUDNN=true
done
[ $DRY = 0 ] && row "CUDA toolkit" "$(command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] && echo PASS || echo FAIL)" 0 \
  "nvcc $( (nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version 2>/dev/null) | grep -o 'release [0-9.]*' ); cuDNN headers: $CUDNN"

# ---------------------------------------------------------------------------------------- darknet job: files
MAX=800
[ "$GPUS" -ge 2 ] && MAX=1200   # past the one-GPU warm-up (1000): the switch to every GPU is exercised too
KILL_AT=350
"$PY" - "$WORK/data" <<'PY'
import sys
from pathlib import Path
import cv2, numpy as np
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
for i in range(8):  # a bright box on noise, its YOLO label beside it
    img = rng.integers(0, 80, (64, 64, 3), dtype=np.uint8)
    x, y, w, h = 8 + 3 * i, 10 + 2 * i, 24, 20
    img[y:y + h, x:x + w] = 230
    cv2.imwrite(str(out / f"img{i}.png"), img)
    (out / f"img{i}.txt").write_text(f"0 {(x + w / 2) / 64:.4f} {(y + h / 2) / 64:.4f} {w / 64:.4f} {h / 64:.4f}\n")
PY
sed "s/^max_batches=.*/max_batches=$MAX/" "$MICRO" >"$WORK/micro.cfg"
if [ $DRY = 1 ]; then
  mkdir -p "$WORK/bin"
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$PY" "$ROOT/tests/fakes/darknet" >"$WORK/bin/darknet"
  chmod +x "$WORK/bin/darknet"
  DARKNET="{binary: $WORK/bin/darknet, fork: alexeyab}"
  ENV='env: {FAKE_DARKNET_SLEEP: "0.01"}'
else
  SRC=${DARKNET_SRC:-https://github.com/AlexeyAB/darknet}
  DARKNET="{source: \"$SRC\", build: {gpu: true, cudnn: $CUDNN}}"
  ENV=""
fi
cat >"$WORK/job.yaml" <<YAML
name: gpu-check
kind: darknet
checkpoint_dir: $WORK/jobs
work_dir: $WORK/work
darknet: $DARKNET
dataset: {path: $WORK/data, format: yolo, classes: [box], test_fraction: 0.25}
cfg: $WORK/micro.cfg
train: {gpus: auto, stop_wait: 60s, chart_every: 10s}
session: {budget: 1h, margin: 0, clock: process, heartbeat: 2s}
restart: {max_restarts: 1, backoff: 1s}
$ENV
YAML
if orch validate "$WORK/job.yaml" >/dev/null 2>>"$LOG"; then
  row "job file" PASS 0 "$WORK/job.yaml"
else
  row "job file" FAIL 0 "orchestrator validate refused it (see $LOG)"
fi

# --------------------------------------------------------------------- build + train, kill -9, run again
last_iteration() {  # the newest iteration in the darknet logs of the job
  cat "$WORK"/jobs/gpu-check/logs/*.darknet.log 2>/dev/null | grep -aoE '^ *[0-9]+: [-0-9.naif]+, ' | tail -1 | grep -oE '[0-9]+' | head -1
}
journal_field() {  # journal_field EVENT KEY: KEY of the last EVENT in the journal
  "$PY" -c 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hits=[r for r in rows if r.get("event")==sys.argv[2] and (len(sys.argv)<5 or r.get("step")==sys.argv[4])]
print(hits[-1].get(sys.argv[3],"") if hits else "")' "$WORK/jobs/gpu-check/journal.jsonl" "$@" 2>/dev/null
}
start=$SECONDS
setsid "$PY" -m orchestrator run "$WORK/job.yaml" >>"$LOG" 2>&1 &
RUN=$!
killed=""
deadline=$((SECONDS + 330))   # build (minutes) and the first iterations
while kill -0 $RUN 2>/dev/null && [ $SECONDS -lt $deadline ]; do
  it=$(last_iteration)
  if [ -n "$it" ] && [ "$it" -ge $KILL_AT ]; then
    kill -9 -- -$RUN 2>/dev/null
    killed=$it
    break
  fi
  sleep 0.2
done
wait $RUN 2>/dev/null
build_s=$(journal_field step_done seconds darknet)
if [ $DRY = 1 ]; then
  row "darknet build" SKIP "${build_s:-0}" "dry run: the stand-in darknet"
elif [ -n "$build_s" ]; then
  row "darknet build (GPU=1 CUDNN=$([ $CUDNN = true ] && echo 1 || echo 0))" PASS "${build_s%.*}" "via the darknet job's build step"
else
  row "darknet build" FAIL $((SECONDS - start)) "no build step finished (see $LOG)"
fi
if grep -aqs "GPU isn't used" "$WORK"/jobs/gpu-check/logs/*.darknet.log && [ $DRY = 0 ]; then
  row "darknet on the GPU" FAIL 0 "darknet says: GPU isn't used"
fi
if [ -n "$killed" ]; then
  row "train, kill -9 mid-run" PASS $((SECONDS - start)) "killed the session at iteration $killed"
else
  row "train, kill -9 mid-run" FAIL $((SECONDS - start)) "never reached iteration $KILL_AT (last: $(last_iteration))"
fi
start=$SECONDS
timeout 150 "$PY" -m orchestrator run "$WORK/job.yaml" >>"$LOG" 2>&1
code=$?
resumed=$(journal_field resume_from counter)
final=$(journal_field checkpoint counter)
state=$(orch status "$WORK/job.yaml" --json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])')
if [ $code = 0 ] && [ "$state" = completed ] && [ -n "$resumed" ] && [ "$final" = "$MAX" ]; then
  row "resume to max_batches" PASS $((SECONDS - start)) "resumed at $resumed, final weights at $final; gpus: $(journal_field darknet_gpus gpus)"
else
  row "resume to max_batches" FAIL $((SECONDS - start)) "exit $code, state $state, resumed at ${resumed:-?}, last checkpoint ${final:-?}"
fi
[ -f "$WORK/jobs/gpu-check/results/final.weights" ] && row "results/" PASS 0 "$WORK/jobs/gpu-check/results" \
  || row "results/" FAIL 0 "no results/final.weights"

# -------------------------------------------------------------------------------------------- face on CUDA
DEVICE=cuda FRAMES=128 BATCH=32
[ $DRY = 1 ] && DEVICE=cpu FRAMES=4 BATCH=2
start=$SECONDS
if timeout 150 "$PY" "$ROOT/bench/bench_face.py" --device $DEVICE --frames $((FRAMES / 2)) --batch $BATCH --repeats 1 \
    >"$WORK/bench_face.txt" 2>&1; then
  row "bench_face.py ($DEVICE, fp32)" PASS $((SECONDS - start)) "$(grep -m1 '^pipeline ' "$WORK/bench_face.txt" | tr -s ' ')"
else
  row "bench_face.py ($DEVICE, fp32)" FAIL $((SECONDS - start)) "see $WORK/bench_face.txt"
fi
start=$SECONDS
if timeout 120 "$PY" "$ROOT/bench/gpu_face_precision.py" --device $DEVICE --frames $FRAMES --batch $BATCH \
    --json "$WORK/face_precision.json" >>"$LOG" 2>&1; then
  verdict=PASS
else
  verdict=FAIL
fi
detail=$("$PY" -c 'import json, sys
r = json.load(open(sys.argv[1]))
print("fp32 {fps_fp32} fps, fp16 {fps_fp16} fps; worst IoU {worst_iou}, score diff {worst_score_diff}, "
      "frames with another face count {frames_with_other_count}".format(**r))' \
  "$WORK/face_precision.json" 2>/dev/null || echo "no result (see $LOG)")
row "face fp16 vs fp32 ($DEVICE)" $verdict $((SECONDS - start)) "$detail"

# ------------------------------------------------------------------------------------------------ the table
{
  echo
  echo "gpu_check $([ $DRY = 1 ] && echo '(dry run: no GPU)')  $(date -u +%Y-%m-%dT%H:%M:%SZ)  work: $WORK"
  printf '%-34s %-5s %7s  %s\n' check result seconds detail
  for r in "${ROWS[@]}"; do
    IFS='|' read -r name verdict secs detail <<<"$r"
    printf '%-34s %-5s %7s  %s\n' "$name" "$verdict" "$secs" "$detail"
  done
  echo "total ${SECONDS}s; $([ $FAILED = 0 ] && echo 'all checks passed' || echo 'SOME CHECKS FAILED')"
} | tee "$WORK/gpu_check.txt"
exit $FAILED
