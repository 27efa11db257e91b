#!/usr/bin/env bash
# The one command a session with a lent GPU runs, from the repository root on the device machine:
#
#   bash bench/gpu_run.sh [extra bench.gpu arguments]      (device run: carry [".whl"], timeout_s 480)
#
# The device machine has torch but not VapourSynth: the wheels under .whl/ (downloaded here with
# `bash bench/gpu_wheels.sh`) are installed into /tmp/site, as the device README says. vsarvo itself is imported from this checkout (PYTHONPATH): the filter rows call
# vsarvo.Deblur from their script, so the native core.arvo shim is not needed there.
#
# Writes under $OUT (bench/results/ when OUT is unset): gpu.json (rewritten after every row, so a
# run stopped early keeps its rows), gpu.log (everything printed), TABLE.md (bench.report's tables
# from gpu.json) and nvidia-smi.txt. BENCH_GPU_BUDGET (default 420 s) is the benchmark's own
# budget; it is stopped 45 s past it in any case, so the report still gets written.
set -uo pipefail

out="${OUT:-bench/results}"
budget="${BENCH_GPU_BUDGET:-420}"
mkdir -p "$out"

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_run: installing the carried wheels from .whl/ failed" >&2; exit 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="/tmp/site/bin:$PATH"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

python3 -c "import torch, vapoursynth, vsarvo.filter; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'VapourSynth', vapoursynth.core.core_version.release_major, 'GPU', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)" \
    2>&1 | tee "$out/gpu.log" || { echo "gpu_run: torch, vapoursynth or vsarvo does not import (carry .whl?)" >&2; exit 1; }
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true

timeout -k 10 $((${budget%.*} + 45)) python3 -m bench.gpu --budget "$budget" --out "$out/gpu.json" "$@" 2>&1 \
    | tee -a "$out/gpu.log"
status=$?
if [ -f "$out/gpu.json" ]; then
    python3 -m bench.report --results "$out" --out "$out/TABLE.md" >/dev/null 2>>"$out/gpu.log" \
        || echo "gpu_run: bench.report failed (see gpu.log)" >&2
fi
exit "$status"
