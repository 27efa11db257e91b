#!/usr/bin/env bash
# Capacity chosen by measurement, in one device call: `tiny` (runs/arvo_tiny/rolling.pt as it is) and
# `wide` (the same checkpoint grown function-preservingly to recon_width 32: reconstruction widths 32-64-128
# instead of 16-32-64, 4.62 M parameters, 18.5 MB of fp32 weights, under the 25 MB a second shipped
# weights file may have; recon_width 48 would be 35.8 MB, and the feature and flow widths cannot grow
# without changing what the model computes) train in turns for equal GPU seconds from one shard bank
# and are scored on the carried realistic set at 4 points (vsarvo.training.capacity's docstring).
#
# The device call:
#
#   run(command="bash training/gpu_capacity.sh", carry=["carry/capacity_footage", "carry/realistic_set.npz"],
#       timeout_s=540)
#
# Both carried paths are git-ignored (/carry/); make them here first with `make gpu-capacity-carry`, which
# runs (the footage shards are smaller than gpu_segment's 22 MiB so that tree + footage + realistic set
# stay under 60 MiB):
#   python -m vsarvo.training.realistic_eval save --photos data/photos --out carry/realistic_set.npz
#   rm -rf carry/capacity_footage && python -m vsarvo.training.shards footage --photos data/photos \
#       --out carry/capacity_footage --max-mb 11 --workers 2
# Sizes (measured 2026-12-04): tree 36.1 MB (34.4 MiB) + realistic set 13.5 MB (18 clips x 7 frames at
# 160 px) + footage shards 11.1 MB (41 clips) = 57 MiB, which the script prints; it refuses to train when
# that is over 60 MiB or the realistic set is missing. What comes back is 5 files, about 27 MB:
# capacity.json, capacity.png, capacity_log.txt and run.tar.000..001 (one tar of tiny.safetensors 7.9 MB,
# wide.safetensors 18.5 MB and their sidecars). CAPACITY_BUDGET (default 480 s) ends the python side;
# `timeout` ends it 25 s later at the latest, inside the call's 540 s.
#
# Afterwards, here, with FILES_AT the folder the reply names:
#   python -m vsarvo.training.capacity report FILES_AT --out runs/capacity
# (checks the files, measures CPU ms per 540p frame here, writes runs/capacity/capacity.json, capacity.md,
# capacity.png and winner.safetensors + winner.json). When wide wins, a later segment continues it with
#   python -m vsarvo.training.capacity checkpoint --resume runs/arvo_tiny/rolling.pt \
#       --weights runs/capacity/winner.safetensors --out runs/arvo_wide/rolling.pt
#   run(command="bash training/gpu_segment.sh --resume runs/arvo_wide/rolling.pt --slim", ...)
# (a slim checkpoint: no optimiser moments, 22.1 MB for the wide model; beside the 24 MB tiny rolling.pt
# it leaves about 4 MiB for footage shards under 60 MiB, so carry a smaller footage folder or take the
# tiny rolling.pt out of the tree).
#
# CAPACITY_RESUME, CAPACITY_REALISTIC and CAPACITY_FOOTAGE name the inputs (the defaults above); extra
# arguments go to `capacity device` (e.g. --grow recon_width=24, --batch-size 64, --device cpu for a rehearsal).
# PYTHON picks the interpreter (default python3).
set -uo pipefail

out="${OUT:-runs/gpu_capacity}"
budget="${CAPACITY_BUDGET:-480}"
python="${PYTHON:-python3}"
resume="${CAPACITY_RESUME:-runs/arvo_tiny/rolling.pt}"
realistic="${CAPACITY_REALISTIC:-carry/realistic_set.npz}"
footage="${CAPACITY_FOOTAGE:-carry/capacity_footage}"
mkdir -p "$out"
log="$out/capacity_log.txt"

if [ ! -f "$realistic" ]; then
    echo "gpu_capacity.sh: no realistic set at $realistic: write it with" \
         "'python -m vsarvo.training.realistic_eval save --photos data/photos --out $realistic' and carry it" | tee "$log" >&2
    exit 2
fi

source training/device_call.sh
mix=()
if [ -d "$footage" ]; then mix=(--carried-shards "$footage" --crop 96); fi

check_travelled gpu_capacity.sh "${CAPACITY_MAX_MIB:-60}" "render the footage shards with a smaller --max-mb" \
    "$log" "$realistic" ${mix[@]:+"$footage"} || exit 2

map_vsarvo
{ nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv 2>/dev/null || true; } >>"$log"
timeout -k 10 $((${budget%.*} + 25)) "$python" -m vsarvo.training.capacity device \
    --resume "$resume" --realistic "$realistic" --out "$out" --budget "$budget" "${mix[@]}" "$@" 2>&1 | tee -a "$log"
status=$?
rm -rf "$VSARVO_MAP"
exit $status
