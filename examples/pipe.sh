#!/usr/bin/env bash
# Deblur a video through `vspipe | ffmpeg`, copying the source's audio into the result.
#
#   examples/pipe.sh IN OUT [KEY=VALUE ...]
#
# KEY=VALUE pairs go to examples/deblur.vpy as vspipe -a arguments (weights=, backend=, device=,
# precision=, tile=). The video is encoded with x264 (CRF 16); set X264_CRF to change it. OUT is
# written under a temporary name and renamed when complete; an existing OUT is replaced only with
# FORCE=1 (as `arvo deblur --force`).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 IN OUT [KEY=VALUE ...]" >&2
  exit 2
fi
in=$(realpath -- "$1")  # vspipe evaluates the script from its own folder: relative paths would break
out=$2
shift 2
if [[ -e $out && ${FORCE:-0} != 1 ]]; then
  echo "$0: $out exists; set FORCE=1 to replace it" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

vs_args=(-a "src=$in")
for pair in "$@"; do
  [[ $pair == weights=* ]] && pair="weights=$(realpath -- "${pair#weights=}")"
  vs_args+=(-a "$pair")
done

# Keep the extension so ffmpeg picks the container from OUT's name.
partial="$(dirname "$out")/.partial.$$.$(basename "$out")"
trap 'rm -f "$partial"' EXIT

vspipe -c y4m "${vs_args[@]}" "$here/deblur.vpy" - \
  | ffmpeg -hide_banner -loglevel error -y \
      -f yuv4mpegpipe -i - -i "$in" \
      -map 0:v:0 -map '1:a?' \
      -c:v libx264 -crf "${X264_CRF:-16}" -preset medium -c:a copy \
      "$partial"
mv -f "$partial" "$out"
