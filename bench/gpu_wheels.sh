#!/usr/bin/env bash
# Download into .whl/ the wheels bench/gpu_run.sh installs on the device machine (which has torch,
# numpy and safetensors but not VapourSynth), for its Python 3.12 on x86-64:
#
#   bash bench/gpu_wheels.sh            (from the repository root; .whl/ is git-ignored)
#
# The VapourSynth version is the one this checkout's .venv has (the one the tests ran with). Its
# wheel needs no other package (no Requires-Dist). Prints the wheels' total size: with the working
# tree it must stay under the 64 MiB a device call carries.
set -euo pipefail

python="${PYTHON:-.venv/bin/python}"
version="$("$python" -c 'from importlib.metadata import version; print(version("vapoursynth"))')"
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "vapoursynth==$version"
# One version of each package: two stop the whole install on the device machine.
for stale in .whl/vapoursynth-*.whl; do
    case "$stale" in .whl/vapoursynth-"$version"-*) ;; *) rm -f "$stale" ;; esac
done
du -ch .whl/*.whl | tail -1
