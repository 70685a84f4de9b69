"""Run stylekit commands in one subprocess and measure how much memory each one took at its peak.

A refusal must be told apart from a crash: a loader that allocates what a hostile file declares and
then fails (MemoryError caught somewhere, or an allocation that happened to fit) can still exit 2.
So each command reports its exit code and output AND its peak resident memory: before each command
the child resets its high-water mark (`echo 5 > /proc/self/clear_refs`), and after it reads VmHWM
from /proc/self/status; `peak_mb` is that peak above the resident memory before the command (torch
and stylekit are imported first, so their cost is not counted). The child also caps its address
space (memory_cap.HEADROOM above what it maps after imports by default) so an unfixed loader cannot
take the shared machine's memory: it then fails with a MemoryError, whose output never carries the
refusal message a test asserts.

A command is either CLI arguments (`["generate", "--network", ...]`) or `{"py": "code"}`: Python run
in the child whose StylekitError becomes its exit code and message (library doors without a command).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from memory_cap import HEADROOM

_CHILD = r"""
import json, re, resource, sys, traceback
import torch, safetensors.torch, numpy, PIL.Image
import stylekit.metrics.style, stylekit.metrics.score, stylekit.nets.stylegan2.load, stylekit.io.checkpoint
from typer.testing import CliRunner
from stylekit.cli.app import app
from stylekit.errors import StylekitError

def status(key):
    return int(re.search(key + r':\s+(\d+)', open('/proc/self/status').read()).group(1)) * 1024

commands = json.loads(sys.stdin.read())
runner = CliRunner()
runner.invoke(app, ['--help'])
resource.setrlimit(resource.RLIMIT_AS, (status('VmSize') + int(sys.argv[1]), resource.RLIM_INFINITY))
results = []
for command in commands:
    with open('/proc/self/clear_refs', 'w') as fh:
        fh.write('5')
    before = status('VmRSS')
    if isinstance(command, dict):
        try:
            exec(command['py'], {})
            code, output = 0, ''
        except StylekitError as exc:
            code, output = exc.exit_code, exc.message + ' ' + (exc.hint or '')
        except BaseException as exc:
            code, output = 1, ''.join(traceback.format_exception_only(type(exc), exc))
    else:
        res = runner.invoke(app, command)
        code, output = res.exit_code, res.stdout + res.stderr + repr(res.exception or '')
    results.append({'code': code, 'output': output, 'peak_mb': (status('VmHWM') - before) / 2**20})
print(json.dumps(results))
"""


def run_measured(commands: list[Any], headroom: int = HEADROOM, timeout: float = 300) -> list[dict[str, Any]]:
    """Each command in one child: [{"code", "output", "peak_mb"}, ...] in order."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "OMP_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        "STYLEKIT_OFFLINE": "1",
        "COLUMNS": "400",  # one error line stays one line
    }
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(headroom)], input=json.dumps([_plain(c) for c in commands]),
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _plain(command: Any) -> Any:
    return command if isinstance(command, dict) else [str(a) for a in command]
