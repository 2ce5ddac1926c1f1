"""The darknet job's ``results/``: final (and best) weights, the cfg, obj.names, an obj.data with paths relative
to that folder, and ``HOW-TO-USE.txt`` with the ``detector test`` / ``detector map`` commands."""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.results import ResultsFolder

FINAL = "final.weights"
BEST = "best.weights"


def usage_text(cfg_name: str, has_best: bool, dataset_hint: str) -> str:
    weights = BEST if has_best else FINAL
    return f"""\
Trained darknet model. Everything here is relative to this folder: run darknet from inside it.

  {FINAL:<14} weights at the end of training
{f"  {BEST:<14} weights with the best mAP seen during training (-map)" + chr(10) if has_best else ""}\
  {cfg_name:<14} the network the weights belong to
  obj.names      class names, one a line
  obj.data       classes and names for darknet (paths relative to this folder)

Detect objects in an image (AlexeyAB's fork; pjreddie's takes the same arguments without -dont_show):

  cd "<this folder>"
  /path/to/darknet detector test obj.data {cfg_name} {weights} /path/to/image.jpg -dont_show

It prints each detection with its confidence and writes predictions.jpg.

Measure mAP on a labelled test set (images with YOLO .txt labels beside them, one image path a line in a
list file), after adding `valid = /path/to/test.txt` to obj.data:

  /path/to/darknet detector map obj.data {cfg_name} {weights}

{dataset_hint}
"""


def publish_results(folder: ResultsFolder, cfg: Path, names: Path, final: Path, best: Path | None,
                    dataset_hint: str = "") -> list[str]:
    """Fill ``folder`` from the trained job's files; returns the names written."""
    folder.copy(FINAL, final)
    if best is not None:
        folder.copy(BEST, best)
    folder.copy(cfg.name, cfg)
    folder.copy("obj.names", names)
    classes = sum(1 for line in names.read_text().splitlines() if line.strip())
    folder.write_text("obj.data", f"classes = {classes}\nnames = obj.names\nbackup = backup/\n")
    folder.write_text("HOW-TO-USE.txt", usage_text(cfg.name, best is not None, dataset_hint))
    return folder.files()
