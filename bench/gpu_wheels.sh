#!/usr/bin/env bash
# Download into .whl/ the wheels the device machine lacks (it has torch, numpy and safetensors but
# neither VapourSynth nor pytest), for its Python 3.12 on x86-64; bench/gpu_run.sh and gpu_window.sh's
# GPU tests install them into /tmp/site there:
#
#   bash bench/gpu_wheels.sh            (from the repository root; .whl/ is git-ignored)
#
# The versions are the ones this checkout's .venv has (the ones the tests ran with): VapourSynth (its
# wheel needs no other package), and pytest with what it requires on Python 3.12 on Linux (pluggy,
# iniconfig, packaging, pygments; all pure Python). Prints the wheels' total size: with the working
# tree and the footage shards it must stay under the 64 MiB a device call carries.
set -euo pipefail

python="${PYTHON:-.venv/bin/python}"
packages=(vapoursynth pytest pluggy iniconfig packaging pygments)
read -r -a pins < <("$python" -c 'import sys; from importlib.metadata import version
print(" ".join(f"{p}=={version(p)}" for p in sys.argv[1:]))' "${packages[@]}")
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
# One version of each package: two stop the whole install on the device machine. Wheel names may
# differ from the package's in case (Pygments-...), so compare in lower case.
shopt -s nocaseglob nullglob
for pin in "${pins[@]}"; do
    name="${pin%%==*}" version="${pin#*==}"
    for stale in .whl/"$name"-*.whl; do
        lower="${stale,,}"
        case "$lower" in .whl/"$name"-"${version,,}"-*) ;; *) rm -f "$stale" ;; esac
    done
done
du -ch .whl/*.whl | tail -1
