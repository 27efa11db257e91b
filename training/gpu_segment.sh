#!/usr/bin/env bash
# One GPU training segment in one device call: resumes runs/arvo_tiny/rolling.pt, trains bf16 +
# channels-last + torch.compile from uint8 shards that the machine's other cores render meanwhile,
# validates, and writes at most 8 files under $OUT (vsarvo.training.gpu_segment's docstring lists them).
#
# The device call (the working tree travels as it is and nothing else is carried: the rolling checkpoint
# is tracked, and the shards are rendered there by the machine's other cores while the GPU trains):
#
#   run(command="bash training/gpu_segment.sh", carry=[], timeout_s=540)
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

# The device image has torch but not this package: map the checkout's folders in as vsarvo, as setup.py does.
pkg="$(mktemp -d)"
mkdir -p "$pkg/vsarvo"
for entry in vsarvo/*; do ln -s "$PWD/$entry" "$pkg/vsarvo/"; done
ln -s "$PWD/training" "$pkg/vsarvo/training"
ln -s "$PWD/export" "$pkg/vsarvo/export"
export PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv 2>/dev/null || true; } >"$out/train_log.txt"
timeout -k 10 $((${budget%.*} + 25)) "$python" -m vsarvo.training.gpu_segment run \
    --resume runs/arvo_tiny/rolling.pt --out "$out" --budget "$budget" "$@" 2>&1 | tee -a "$out/train_log.txt"
status=$?
rm -rf "$pkg"
exit $status
