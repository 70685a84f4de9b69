"""Stress the 2-process torchrun teardown: run the tiny DDP job N times, report every non-zero exit.

A torchrun job once ended with SIGABRT ("terminate called without an active exception") after it had
finished (issue 12, item 9): a rank tore its process group down while its peer still had a collective
in flight. This runs tests/ddp_tiny_train.py under `torchrun --standalone --nproc_per_node 2` N times
(default 50) and prints one JSON line: runs, passed, failures with their exit codes and stderr tails.
Not part of the test suite (minutes of CPU); run it niced on an otherwise idle machine:

    nice -n 10 python scripts/ddp_stress.py [--runs 50] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "ddp_tiny_train.py"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    failures, seconds = [], []
    with tempfile.TemporaryDirectory(prefix="ddp-stress-") as tmp:
        for run in range(args.runs):
            out = Path(tmp) / f"run{run}"
            t0 = time.monotonic()
            proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(SCRIPT), "--out", str(out),
                                   "--steps", str(args.steps), "--save-every", "4"],
                                  env=env, capture_output=True, text=True, timeout=600)
            seconds.append(time.monotonic() - t0)
            aborted = "terminate called" in proc.stderr or "SIGABRT" in proc.stderr
            if proc.returncode != 0 or aborted:
                failures.append({"run": run, "exit": proc.returncode, "stderr": proc.stderr[-800:]})
            print(f"run {run + 1}/{args.runs}: exit {proc.returncode}{' (abort message)' if aborted else ''}", file=sys.stderr)
    print(json.dumps({"what": "torchrun 2-process teardown stress", "runs": args.runs, "passed": args.runs - len(failures),
                      "failures": failures, "mean_seconds": round(sum(seconds) / len(seconds), 2)}))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
