#!/usr/bin/env bash
# make gpu-check: every command tiny on CUDA with --amp, torchrun with 2 processes on >= 2 GPUs, resume
# after kill -9, throughput figures; a pass/fail table on stdout and OUT/gpu-check.json (default OUT:
# gpu-check-out). Exit 0 all passed, 1 a check failed, 3 no CUDA GPU here. See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/gpu_check.py "$@"
