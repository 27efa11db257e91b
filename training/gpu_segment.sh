#!/usr/bin/env bash
# One GPU training segment in one device call: resumes runs/arvo_tiny/rolling.pt, trains bf16 +
# channels-last + torch.compile from uint8 shards that the machine's other cores render meanwhile,
# validates, and writes at most 8 files under $OUT (vsarvo.training.gpu_segment's docstring lists them).
#
# The device call (the working tree travels as it is: the rolling checkpoint is tracked, and the
# procedural shards are rendered there by the machine's other cores while the GPU trains; the realistic
# footage shards, which need ffmpeg and the photos that machine lacks, are rendered here and carried):
#
#   run(command="bash training/gpu_segment.sh", carry=["carry/footage_shards"], timeout_s=540)
#
# The carried folder is git-ignored (/carry/); re-create it here in about a minute with
#   rm -rf carry/footage_shards && python -m vsarvo.training.shards footage --photos data/photos \
#       --out carry/footage_shards --max-mb 22 --workers 2
# (80 clips of 5 frames at 128 px from the train photos, 21.8 MiB, measured 2026-12-04). When the folder
# exists, 60 % of each batch (--footage-share) comes from it and crops are 96 px so a clip yields many
# distinct crops; pass --crop 128 for a throughput run comparable with earlier segments. The script
# prints the size of what travelled (tree + carried) and refuses to train when it is over 60 MiB.
#
# Sizes (measured 2026-12-04): the tracked tree is 35.9 MB, 34.2 MiB (`git ls-files -z | xargs -0 du -cb
# | tail -1`), 24.0 MB of it runs/arvo_tiny/rolling.pt, under the 64 MiB a call may carry. What comes back
# is 6 files, about 34-42 MB: segment.json, curves.png, train_log.txt and run.tar.000..002 (15 MiB parts
# of one tar of checkpoint.pt 24 MB, arvo.safetensors 8 MB, best.safetensors 8 MB when validation
# improved, history.json 1.7 MB, train_config.json). The budget (500 s) ends the python side; the
# `timeout` below ends it 25 s later at the latest, inside the call's 540 s.
#
# Afterwards, here, with FILES_AT the folder the reply names:
#   python -m vsarvo.training.gpu_segment join FILES_AT --into /tmp/gpu_segment --run runs/arvo_tiny
# (--into outside the tree: its 40 MB would otherwise travel with the next call)
# (checks the parts' SHA-256, makes the checkpoint runs/arvo_tiny/rolling.pt, appends the record to
# runs/arvo_tiny/segments.jsonl; copy FILES_AT/train_log.txt onto the end of runs/arvo_tiny/train_log.txt).
#
# GPU_SEGMENT_BUDGET (default 500 s) is the time from start to written outputs; extra arguments go to
# `gpu_segment run` (e.g. --batch-size 256, --no-compile). PYTHON picks the interpreter (default python3).
set -uo pipefail

out="${OUT:-runs/gpu_segment}"
budget="${GPU_SEGMENT_BUDGET:-500}"
python="${PYTHON:-python3}"
mkdir -p "$out"

source training/device_call.sh
footage="${GPU_SEGMENT_FOOTAGE:-carry/footage_shards}"
mix=()
if [ -d "$footage" ]; then mix=(--carried-shards "$footage" --crop 96); fi

check_travelled gpu_segment.sh "${GPU_SEGMENT_MAX_MIB:-60}" "render the footage shards with a smaller --max-mb" \
    "$out/train_log.txt" "$footage" || exit 2

map_vsarvo
{ nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv 2>/dev/null || true; } >>"$out/train_log.txt"
timeout -k 10 $((${budget%.*} + 25)) "$python" -m vsarvo.training.gpu_segment run \
    --resume runs/arvo_tiny/rolling.pt --out "$out" --budget "$budget" "${mix[@]}" "$@" 2>&1 | tee -a "$out/train_log.txt"
status=$?
rm -rf "$VSARVO_MAP"
exit $status
