"""A small, real PyTorch training script of the kind orchestrator runs: it saves a checkpoint every
``--save-every`` steps or ``--save-seconds`` seconds, whichever comes first (atomically: temp file + rename),
and continues from ``--resume PATH``. The result does not depend on when it saved: a checkpoint holds the model
and the optimizer, so a resumed run computes what an uninterrupted one does.

    python train_mlp.py OUTPUT_DIR [--resume ckpt-000200.pt] [--steps 600]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch import nn


def data(n: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 2, generator=g) * 4 - 2
    y = ((x[:, 0] ** 2 + x[:, 1] ** 2) < 1.5).float().unsqueeze(1)  # inside a circle or not
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--resume", type=Path)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--save-seconds", type=float, default=None, help="also save when this long since the last")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    step = 0
    if args.resume:
        state = torch.load(args.resume, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        print(f"resumed from {args.resume.name} at step {step}", flush=True)
    x, y = data()
    loss_fn = nn.BCEWithLogitsLoss()
    last_save = time.monotonic()
    while step < args.steps:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        step += 1
        if step % 10 == 0:
            acc = ((model(x) > 0).float() == y).float().mean().item()
            print(f"step {step}/{args.steps} loss={loss.item():.4f} acc={acc:.3f}", flush=True)
        overdue = args.save_seconds is not None and time.monotonic() - last_save >= args.save_seconds
        if step % args.save_every == 0 or step == args.steps or overdue:
            last_save = time.monotonic()
            target = args.output_dir / f"ckpt-{step:06d}.pt"
            tmp = target.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
            os.replace(tmp, target)
    acc = ((model(x) > 0).float() == y).float().mean().item()
    (args.output_dir / "final.txt").write_text(f"steps={step} accuracy={acc:.3f}\n")
    print(f"done: accuracy {acc:.3f}", flush=True)


if __name__ == "__main__":
    main()
