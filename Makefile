# stylekit: every target does its own set-up from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out
GPU_CHECK_OUT ?= gpu-check-out

.PHONY: install test test-numerics-capped test-fast demo bench lint clean gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch/torchvision first with exact pins (they come from this machine's disk), then the project.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# make test: the whole suite, then the fast tests marked `numerics` (two computation paths compared, tolerance derived in tests/numerics.py)
# again under capped kernel ISAs: ATen's portable kernels and oneDNN limited to AVX2, so a tolerance that only
# holds on this CPU's kernels fails here. The slow multi-process comparisons run the same kernels on both sides.
CAPPED_ISA := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-numerics-capped

test-numerics-capped: $(STAMP)
	$(CAPPED_ISA) $(BIN)/python -m pytest -q -m "numerics and not slow"

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh $(DEMO_OUT)

# NVLABS=<clone of NVlabs/stylegan2-ada-pytorch> JUNYANZ=<clone of junyanz/pytorch-CycleGAN-and-pix2pix>:
# those benchmarks time the reference code beside stylekit (docs/performance.md). One JSON line each.
# benchmarks/pix2pix_style_code.py and pix2pix_amp.py are training studies (two pix2pix runs each), run by hand
# (docs/pix2pix.md, docs/performance.md).
bench: $(STAMP)
	@for b in benchmarks/*.py; do case "$$b" in benchmarks/common.py|benchmarks/pix2pix_style_code.py|benchmarks/pix2pix_amp.py) continue;; esac; echo "# $$b" >&2; \
		NVLABS="$(NVLABS)" JUNYANZ="$(JUNYANZ)" $(BIN)/python $$b || exit 1; done

# On a CUDA machine: every command tiny with --amp, torchrun x2 on >= 2 GPUs, resume, timings (docs/gpu.md).
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/gpu_check.sh $(GPU_CHECK_OUT)

lint: $(STAMP)
	$(BIN)/ruff check stylekit tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
