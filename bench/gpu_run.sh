#!/usr/bin/env bash
# The one command a session with a lent GPU runs, from the repository root on the device machine:
#
#   bash bench/gpu_run.sh [extra bench.gpu arguments]
#
# Before it, here: `bash bench/gpu_wheels.sh` (fills .whl/). The device call carries .whl and may
# take 480 s: the benchmark stops starting rows at its budget (BENCH_GPU_BUDGET, default 420 s,
# counted from its start) and is stopped 30 s past it in any case. Afterwards copy the returned
# gpu.json to bench/results/gpu.json and run `python -m bench.report --readme README.md`.
#
# The device machine has torch but not VapourSynth: the wheels under .whl/ are installed into
# /tmp/site, as the device README says. vsarvo itself is imported from this checkout (PYTHONPATH):
# the filter rows call vsarvo.Deblur from their script, so the native core.arvo shim is not needed.
#
# Writes under $OUT (bench/results/ when OUT is unset): gpu.json (rewritten after every row, so a
# run stopped early keeps its rows), gpu.log (everything printed), TABLE.md (bench.report's tables
# from gpu.json) and nvidia-smi.txt; the report is written even when the benchmark was stopped.
set -uo pipefail

out="${OUT:-bench/results}"
budget="${BENCH_GPU_BUDGET:-420}"
mkdir -p "$out"

source training/device_call.sh
carried_wheels || { echo "gpu_run: see above" >&2; exit 1; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

python3 -c "import torch, vapoursynth, vsarvo.filter; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'VapourSynth', vapoursynth.core.core_version.release_major, 'GPU', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)" \
    2>&1 | tee "$out/gpu.log" || { echo "gpu_run: torch, vapoursynth or vsarvo does not import (carry .whl?)" >&2; exit 1; }
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true

timeout -k 5 $((${budget%.*} + 30)) python3 -m bench.gpu --budget "$budget" --out "$out/gpu.json" "$@" 2>&1 \
    | tee -a "$out/gpu.log"
status=$?
if [ -f "$out/gpu.json" ]; then
    python3 -m bench.report --results "$out" --out "$out/TABLE.md" >/dev/null 2>>"$out/gpu.log" \
        || echo "gpu_run: bench.report failed (see gpu.log)" >&2
fi
exit "$status"
