# What every device script shares (gpu_window.sh, training/gpu_segment.sh, gpu_capacity.sh,
# gpu_ablation.sh): `source training/device_call.sh` from the repository root, then call these.

# travelled_bytes PATH...: prints "TREE CARRIED", the bytes of the working tree a device call carries
# (git's view: tracked and untracked-not-ignored files; without git, everything but .git and the
# carried paths) and of the carried PATHs that exist. A call may carry 64 MiB in all.
travelled_bytes() {
    local carried=0 tree path
    for path in "$@"; do
        if [ -e "$path" ]; then carried=$((carried + $(du -sb "$path" | awk '{print $1}'))); fi
    done
    if command -v git >/dev/null && [ -d .git ]; then
        tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | awk 'END {print $1}')
    else
        tree=$(( $(du -sb --exclude=.git . | awk '{print $1}') - carried ))
    fi
    echo "$tree $carried"
}

# check_travelled NAME MAX_MIB FIX LOG PATH...: the size check every device script makes before it
# starts. Writes "NAME: tree T MiB + carried C MiB = S MiB" (travelled_bytes of PATH...) to stdout and
# into LOG (started afresh); when S is over MAX_MIB, also "NAME: S MiB is over MAX_MIB MiB: FIX" to
# stderr and LOG, and returns 2.
check_travelled() {
    local name=$1 max=$2 fix=$3 log=$4 tree carried total
    shift 4
    read -r tree carried < <(travelled_bytes "$@")
    total=$(( (tree + carried) / 1048576 ))
    echo "$name: tree $((tree / 1048576)) MiB + carried $((carried / 1048576)) MiB = $total MiB" | tee "$log"
    if [ "$total" -gt "$max" ]; then
        echo "$name: $total MiB is over $max MiB: $fix" | tee -a "$log" >&2
        return 2
    fi
}

# map_vsarvo: the device image has torch but not this package, so map the checkout's folders in as
# vsarvo (as setup.py does) in a temporary folder put first on PYTHONPATH; sets VSARVO_MAP (remove it
# when done) and makes Python's output unbuffered, so a call cut short keeps its log. PYTHONSAFEPATH
# keeps `python -m`/`-c` from putting the current folder first on sys.path: run from the repository
# root, the checkout's vsarvo/ (which has no training/ or export/) would hide the mapped one and
# `python3 -m vsarvo.training.gpu_segment` would fail with "No module named 'vsarvo.training'".
map_vsarvo() {
    VSARVO_MAP="$(mktemp -d)"
    mkdir -p "$VSARVO_MAP/vsarvo"
    local entry
    for entry in vsarvo/*; do ln -s "$PWD/$entry" "$VSARVO_MAP/vsarvo/"; done
    ln -s "$PWD/training" "$VSARVO_MAP/vsarvo/training"
    ln -s "$PWD/export" "$VSARVO_MAP/vsarvo/export"
    export PYTHONPATH="$VSARVO_MAP${PYTHONPATH:+:$PYTHONPATH}"
    export PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1
}

# carried_wheels: installs the wheels a call carries in .whl/ (bench/gpu_wheels.sh: VapourSynth, pytest
# and what pytest needs; the device image has neither) into /tmp/site, as the device README says, and
# puts /tmp/site first on PYTHONPATH and PATH. Does nothing without .whl/; returns 1, saying so, when
# the install fails. bench/gpu_run.sh and gpu_window.sh's test step both call it.
carried_wheels() {
    compgen -G ".whl/*.whl" >/dev/null || return 0
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing the carried wheels from .whl/ failed" >&2; return 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="/tmp/site/bin:$PATH"
}
