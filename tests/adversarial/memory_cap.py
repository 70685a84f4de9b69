"""Run stylekit commands in a subprocess whose address space may grow by at most `headroom` bytes.

The child imports torch and stylekit first, then sets RLIMIT_AS to what it already maps plus the
headroom, then runs each command in-process (one child for many commands: imports cost seconds).
A loader that allocates what a hostile file declares (gigabytes) hits the limit and fails with
MemoryError (exit 1); one that refuses the file first exits 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEADROOM = 1 << 30  # 1 GiB: every bomb in tests/adversarial declares several GiB or more

_CHILD = """
import json, resource, sys
import torch, safetensors.torch, stylekit.metrics.style, stylekit.metrics.score, stylekit.nets.stylegan2.load
from typer.testing import CliRunner
from stylekit.cli.app import app
commands = json.loads(sys.stdin.read())
runner = CliRunner()
runner.invoke(app, ['--help'])
vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize:')).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[1]), resource.RLIM_INFINITY))
results = []
for args in commands:
    res = runner.invoke(app, args)
    results.append({'code': res.exit_code, 'stdout': res.stdout, 'stderr': res.stderr + repr(res.exception or '')})
print(json.dumps(results))
"""


def run_capped(commands: list[list[str]], headroom: int = HEADROOM, timeout: float = 300) -> list[dict[str, object]]:
    """Each `stylekit ARGS` under the address-space cap: [{"code", "stdout", "stderr"}, ...]."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "OMP_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        "STYLEKIT_OFFLINE": "1",
    }
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(headroom)], input=json.dumps(commands), capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
