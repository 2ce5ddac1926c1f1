"""Make the demo's input video from the real photo shipped in tests/data: a slow pan across the astronaut's
portrait, 640x480, written with OpenCV (MJPG in .avi), so the face detector has a real face in every frame.

    python make_video.py OUT_FOLDER [--frames 360]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

PHOTO = Path(__file__).resolve().parents[2] / "tests" / "data" / "astronaut.jpg"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=360)
    args = parser.parse_args()
    photo = cv2.imread(str(PHOTO))
    if photo is None:
        raise SystemExit(f"cannot read {PHOTO}")
    big = cv2.resize(photo, (960, 960))
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "astronaut-pan.avi"
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 480))
    for i in range(args.frames):
        x = int(320 * i / max(1, args.frames - 1))
        writer.write(big[120:600, x:x + 640])
    writer.release()
    print(f"wrote {target} ({args.frames} frames)")


if __name__ == "__main__":
    main()
