#!/usr/bin/env bash
# A lent GPU's whole window in ONE device call: first a training segment for the shipped weights
# (training/gpu_segment.sh), then the GPU inference benchmark (bench/gpu_run.sh), as the project's
# brief orders them, then the CUDA-only tests (tests/test_gpu.py, marker gpu), which no other machine
# runs. One call because a window is 15 minutes of device time, start-up included, and
# each call of at most 9 minutes; two calls would pay for two waits and leave the benchmark little.
#
# Here, first (about two minutes, all git-ignored):
#   make gpu-window-carry       (footage shards at --max-mb 18; in .whl/ the VapourSynth and pytest wheels)
# The device call:
#   run(command="bash gpu_window.sh", carry=["carry/footage_shards", ".whl"], timeout_s=540)
# Afterwards, here, with FILES_AT the folder the reply names:
#   python -m vsarvo.training.gpu_segment join FILES_AT/train --into /tmp/gpu_segment --run runs/arvo_tiny
#   cat FILES_AT/train/train_log.txt >> runs/arvo_tiny/train_log.txt
#   cp FILES_AT/bench/gpu.json bench/results/gpu.json && python -m bench.report --readme README.md
# then re-evaluate (arvo eval --set realistic ...), re-render the model card, ship weights only if better;
# read the GPU tests' result at the end of FILES_AT/bench/gpu.log and file an issue for each failure.
#
# Time (seconds of the command; the call's limit is 540): WINDOW_TRAIN_S (default 230) for the
# training's python side, which `timeout` ends 25 s later (35 s with its kill) at the latest, then
# WINDOW_BENCH_S (default 170) for the benchmark, ended 30 s past it (35 s with its kill), then
# WINDOW_TESTS_S (default 60) for the GPU tests, ended at it (65 s with its kill); the two wheel
# installs, the imports checked before the benchmark and the size check take about 15 s. Each python
# side normally ends by its budget: 230 + 170 + 60 + 15 = 475 s. Only when all three also run out their
# kill margins (265 + 205 + 65 + 15 = 550 s) does the call's limit cut the end of the tests, the last
# step, and what is under $OUT still comes back.
# What comes back (at most 8 files, 16 MiB each, 64 MiB together): train/ segment.json, curves.png,
# train_log.txt, run.tar.000..002 (about 40 MB); bench/ gpu.json and gpu.log (nvidia-smi's output and
# the GPU tests' output folded into it; TABLE.md is re-rendered here by bench.report). The script refuses
# to start when what travelled (tree + carried) is over WINDOW_MAX_MIB (default 63), and says so when
# more than 8 files are left. Its exit status is the training's when that failed, else the benchmark's:
# what it says is whether the returned files can be joined and copied as above. The GPU tests' status is
# only reported (on stderr and at the end of gpu.log): a failing CUDA path is an issue to file, not a
# reason to doubt the checkpoint or the benchmark's rows.
set -uo pipefail

out="${OUT:-runs/gpu_window}"
train_s="${WINDOW_TRAIN_S:-230}"
bench_s="${WINDOW_BENCH_S:-170}"
tests_s="${WINDOW_TESTS_S:-60}"
max_mib="${WINDOW_MAX_MIB:-63}"
mkdir -p "$out/train" "$out/bench"

source training/device_call.sh
check_travelled gpu_window.sh "$max_mib" "re-make the footage shards smaller (make gpu-window-carry)" /dev/null \
    carry/footage_shards .whl >&2 || exit 2
echo "gpu_window.sh: training ${train_s} s, then benchmark ${bench_s} s, then GPU tests ${tests_s} s" >&2

# 1. Training. Its own size check counts only the footage shards; the whole was checked above.
OUT="$out/train" GPU_SEGMENT_BUDGET="$train_s" GPU_SEGMENT_MAX_MIB="$max_mib" bash training/gpu_segment.sh
train_status=$?
echo "gpu_window.sh: training ended with status $train_status" >&2

# 2. The benchmark, whatever the training did: its rows are the other half of the window's worth.
OUT="$out/bench" BENCH_GPU_BUDGET="$bench_s" bash bench/gpu_run.sh
bench_status=$?
echo "gpu_window.sh: benchmark ended with status $bench_status" >&2
if [ -f "$out/bench/nvidia-smi.txt" ]; then
    { echo "--- nvidia-smi"; cat "$out/bench/nvidia-smi.txt"; } >>"$out/bench/gpu.log"
    rm -f "$out/bench/nvidia-smi.txt"
fi
rm -f "$out/bench/TABLE.md"

# 3. The CUDA-only tests, after the benchmark: its rows are what the benchmark's issue needs, and the
# training and the benchmark already say whether CUDA works at all (a broken path shows as their errors
# in train_log.txt and gpu.log), so running the tests first would buy little and put the rows at risk
# should the tests overrun. Last, they are the step the call's limit cuts when everything overruns.
# Their output goes to the end of gpu.log (no file of their own: 8 come back); a subshell keeps the
# wheels' and the mapping's paths out of this script. PYTHONSAFEPATH (map_vsarvo) keeps the checkout's
# vsarvo/ from hiding the mapped package, whose vsarvo.training the training test imports.
log="$out/bench/gpu.log"
echo "--- python3 -m pytest -q -m gpu tests/test_gpu.py (WINDOW_TESTS_S ${tests_s} s)" >>"$log"
(
    carried_wheels || exit 1
    map_vsarvo
    timeout -k 5 "$tests_s" python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider
    status=$?
    rm -rf "$VSARVO_MAP"
    exit $status
) >>"$log" 2>&1
tests_status=$?
if [ "$tests_status" -eq 124 ] || [ "$tests_status" -eq 137 ]; then
    tests_result="stopped at its budget of ${tests_s} s"
else
    tests_result="$(tail -n 1 "$log")"
fi
echo "--- GPU tests ended with status $tests_status" >>"$log"
echo "gpu_window.sh: GPU tests ended with status $tests_status ($tests_result; see the end of bench/gpu.log)" >&2

returning=$(find "$out" -type f | wc -l)
echo "gpu_window.sh: $returning files under \$OUT:" $(cd "$out" && find . -type f | sort) >&2
if [ "$returning" -gt 8 ]; then
    echo "gpu_window.sh: more than the 8 files a call returns: the last ones will be missing" >&2
fi
if [ "$train_status" -ne 0 ]; then exit "$train_status"; fi
exit "$bench_status"
