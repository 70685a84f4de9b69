"""A tiny trainer built on the runner exactly as the real trainers are: the runner tests drive it.

    python tests/ddp_tiny_train.py --out DIR [--steps 24] [--batch 8] [--save-every 4] [--fresh] ...
    torchrun --standalone --nproc_per_node 2 tests/ddp_tiny_train.py --out DIR

`main(argv)` returns the exit code the CLI would give (StylekitError -> its code, Ctrl-C -> 130), so
tests can also call it in-process. The final weights are in DIR/checkpoints (module "model").
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from stylekit.errors import EXIT_INTERRUPTED, StylekitError
from stylekit.io.rundir import RunDir
from stylekit.train import (
    EMA,
    TrainRunner,
    all_reduce_mean,
    make_loader,
    seed_everything,
    wrap_ddp,
)
from stylekit.train.distributed import distributed_job


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


def make_dataset(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n, 8, generator=g)
    y = (x @ torch.randn(8, 1, generator=g)).sin()
    return TensorDataset(x, y)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--batch", type=int, default=8, help="global batch")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=4)
    p.add_argument("--keep", type=int, default=3)
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--noise", action="store_true", help="add input noise from the global RNG (tests RNG restore)")
    p.add_argument("--nan-at", type=int, default=0, help="make the loss nan at this step")
    p.add_argument("--sleep", type=float, default=0.0, help="seconds per step (gives tests time to signal)")
    p.add_argument("--fail-at", type=int, default=0, help="raise an unexpected error at this step ...")
    p.add_argument("--fail-rank", type=int, default=0, help="... on this rank only (the others are in a collective)")
    return p.parse_args(argv)


def train(cfg: argparse.Namespace) -> int:
    """The loop a trainer writes; returns the final step."""
    with distributed_job("cpu") as dist:
        seed_everything(cfg.seed, dist.rank)
        model = TinyNet()
        ema = EMA(model, decay=0.9)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.8)
        net = wrap_ddp(model, dist)
        loader = make_loader(make_dataset(), dist, batch_size=cfg.batch, seed=cfg.seed)
        config = {k: v for k, v in vars(cfg).items() if k not in ("fresh", "sleep")}
        with RunDir(cfg.out, fresh=cfg.fresh) as run_dir, TrainRunner(
            run_dir, dist, config=config, keep=cfg.keep, total=cfg.steps
        ) as runner:
            for name, obj in {"model": model, "model_ema": ema.module, "opt": opt, "sched": sched}.items():
                runner.register(name, obj)
            state = runner.resume()
            step, epoch, batch = state.get("step", 0), state.get("epoch", 0), state.get("batch", 0)
            with runner.progress("tiny") as bar:
                for e, i, (x, y) in loader.batches(epoch, batch, count=cfg.steps - step):
                    if cfg.noise:
                        x = x + 0.01 * torch.randn_like(x)
                    loss = F.mse_loss(net(x), y)
                    if step + 1 == cfg.nan_at:
                        loss = loss * float("nan")
                    if step + 1 == cfg.fail_at and dist.rank == cfg.fail_rank:
                        raise RuntimeError(f"injected failure on rank {dist.rank} at step {step + 1}")
                    runner.check_finite(step + 1, loss=loss)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    ema.update(model)
                    step, epoch, batch = step + 1, e, i + 1
                    runner.log_metrics(step, epoch=e, loss=all_reduce_mean(loss, dist), lr=sched.get_last_lr()[0])
                    bar.advance()
                    if step % cfg.save_every == 0:
                        runner.save(step, epoch=epoch, batch=batch)
                    runner.stop_if_requested(step, epoch=epoch, batch=batch)
                    if cfg.sleep:
                        time.sleep(cfg.sleep)
            runner.save(step, pin=True, epoch=epoch, batch=batch)
        return step


def main(argv: Sequence[str] | None = None) -> int:
    """Run like a stylekit command: one `error:` line and the exit code on failure."""
    cfg = parse(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg)
        return 0
    except StylekitError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    sys.exit(main())
