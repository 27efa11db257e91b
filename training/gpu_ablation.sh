#!/usr/bin/env bash
# The realistic ablation in one device call: the five variants (full, stages-1, levels-0, no-flow,
# single-frame) of the shipped architecture (--preset tiny) each trained from scratch for an equal share
# of the call's time on the GPU (bf16 autocast, channels-last; footage shards and procedural shards held
# on the GPU as ShardBanks), variants with flow starting from one flow net pretrained first on synthetic
# pairs with known flow (the pairs rendered by the machine's other cores), frozen; each scored on the carried saved realistic set (the same interior frames for every variant) and on held-out
# procedural clips. vsarvo.training.ablate's docstring says what it does, ablation_table how it judges.
#
# The device call:
#
#   run(command="bash training/gpu_ablation.sh", carry=["carry/ablation_footage", "carry/realistic_set.npz"], timeout_s=540)
#
# Both carried paths are git-ignored (/carry/); re-create them here with `make gpu-ablation-carry`, which runs
#   rm -rf carry/ablation_footage && python -m vsarvo.training.shards footage --photos data/photos \
#       --out carry/ablation_footage --max-mb 12 --workers 2
#   python -m vsarvo.training.realistic_eval save --photos data/photos --out carry/realistic_set.npz
# The footage folder is smaller than gpu_segment.sh's carry/footage_shards (22 MiB) so that the tree, it
# and the realistic set stay under 60 MiB together; the script prints the three sizes and refuses to run
# over 60 MiB (GPU_ABLATION_MAX_MIB).
#
# Sizes (measured 2026-12-04): the tree that travels (`git ls-files -co --exclude-standard`) 34.4 MiB,
# carry/ablation_footage 11.7 MiB (44 clips of 5 frames at 128 px, rendered in 51 s), carry/realistic_set.npz
# 12.9 MiB (18 clips of 7 frames at 160 px): 59.0 MiB. What comes back: 3 files under $OUT, tens of KB
# (20 KB in the CPU tiny mode): ablation.json, ablation.md and ablation_log.txt (no weights: the card
# needs none). Rehearsed here on the CPU with these carried files (`OUT=/tmp/x PYTHON=.venv/bin/python
# GPU_ABLATION_BUDGET=400 bash training/gpu_ablation.sh --variants full stages-1 single-frame --steps 1
# --batch-size 2 --clips 4 --render-workers 2 --flow-pretrain-steps 2 --test-clips 1 --score-reserve 60
# --threads 2`): exit 0 after 124 s, 3 files of 20 KB.
#
# Time: GPU_ABLATION_BUDGET (default 470 s) runs from the python side's start (after its imports) to the
# last table; ablate.py gives each variant an equal share of what the set-up leaves, less --score-reserve
# per variant for building and scoring it, and rewrites ablation.json after every variant, so a cut call
# still returns the variants that finished. The `timeout` below ends it 40 s after the budget at the
# latest, inside the call's 540 s. Extra arguments go to `python -m vsarvo.training.ablate` (e.g.
# --compile, --batch-size 64, --variants full no-flow); PYTHON picks the interpreter (default python3).
#
# Afterwards, here, with FILES_AT the folder the reply names:
#   cp FILES_AT/ablation.json runs/arvo_tiny/ablation_realistic.json
#   cp FILES_AT/ablation.md runs/arvo_tiny/ablation_realistic.md
#   cp FILES_AT/ablation_log.txt runs/arvo_tiny/ablation_realistic_log.txt
#   python -m vsarvo.training.model_card          # the card's Ablation section renders the file
#   python -m pytest -q tests/test_model_card.py tests/test_ablate.py
# and commit those files with vsarvo/weights/MODEL_CARD.md.
set -uo pipefail

out="${OUT:-runs/gpu_ablation}"
budget="${GPU_ABLATION_BUDGET:-470}"
python="${PYTHON:-python3}"
footage="${GPU_ABLATION_FOOTAGE:-carry/ablation_footage}"
realistic="${GPU_ABLATION_REALISTIC:-carry/realistic_set.npz}"
mkdir -p "$out"
log="$out/ablation_log.txt"

for carried in "$footage" "$realistic"; do
    if [ ! -e "$carried" ]; then
        echo "gpu_ablation.sh: $carried is missing: render it here as this script's header says and carry it" | tee "$log" >&2
        exit 2
    fi
done

source training/device_call.sh
check_travelled gpu_ablation.sh "${GPU_ABLATION_MAX_MIB:-60}" "render $footage with a smaller --max-mb" \
    "$log" "$footage" "$realistic" || exit 2
echo "gpu_ablation.sh: carried: footage $(( $(du -sb "$footage" | awk '{print $1}') / 1048576 )) MiB" \
     "+ realistic set $(( $(du -sb "$realistic" | awk '{print $1}') / 1048576 )) MiB" | tee -a "$log"

map_vsarvo
work="$(mktemp -d)"

{ nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv 2>/dev/null || echo "no nvidia-smi: no GPU"; } | tee -a "$log"
started=$(date +%s)
timeout -k 10 $((${budget%.*} + 40)) "$python" -m vsarvo.training.ablate --preset tiny --out "$out" --work "$work" \
    --budget "$budget" --score-reserve 15 --steps 1000000 --log-every 200 --batch-size 32 --crop 96 --lr 5e-4 \
    --footage-shards "$footage" --footage-share 0.6 --clips 128 --frames 7 --size 128 --render-workers 14 \
    --realistic-set "$realistic" --flow-pretrain-steps 300 \
    --test-clips 8 --test-frames 8 --test-size 160 "$@" 2>&1 | tee -a "$log"
status=$?
echo "gpu_ablation.sh: exit $status after $(( $(date +%s) - started )) s" | tee -a "$log"
rm -rf "$VSARVO_MAP" "$work"
exit $status
