#!/usr/bin/env bash
# A batch remaster job: every video under SRC (folders searched recursively) deblurred into OUT,
# with its audio, subtitles, chapters and metadata. Safe to run again: finished files are skipped,
# files whose settings changed are redone, failed files are tried again, and an interrupted run
# never leaves a half-written file under a final name. While it runs, OUT is locked: a second job
# on the same folder is refused; the lock of a job that was killed outright is taken over.
#
#   examples/remaster_job.sh /archive/tapes /archive/remastered
#   ENCODER=ffv1 DEVICES=0,1 examples/remaster_job.sh in/ out/   # lossless, one worker per GPU
#   RAY=auto examples/remaster_job.sh /shared/in /shared/out     # a Ray cluster (storage shared by all nodes)
#
# Settings (environment): ENCODER (x264 | x265 | ffv1 | prores, default x264), CRF, CONTAINER
# (mkv | mp4 | mov, default mkv), WEIGHTS (default: the shipped weights), DEVICES (GPUs, one
# worker each), JOBS (files at once on this machine, default 1), RAY (a cluster address, or
# "local"), RETRIES (default 1).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 SRC OUT" >&2
  exit 2
fi
src=$1
out=$2

args=(remaster "$src" --out "$out" --encoder "${ENCODER:-x264}" --container "${CONTAINER:-mkv}"
      --retries "${RETRIES:-1}")
if [[ -n ${CRF:-} ]]; then args+=(--crf "$CRF"); fi
if [[ -n ${WEIGHTS:-} ]]; then args+=(--weights "$WEIGHTS"); fi
if [[ -n ${RAY:-} ]]; then
  args+=(--ray "$RAY")
elif [[ -n ${DEVICES:-} ]]; then
  args+=(--devices "$DEVICES")
else
  args+=(--jobs "${JOBS:-1}")
fi

status=0
arvo "${args[@]}" || status=$?
case $status in
  0) echo "remaster_job: every file is done; outputs and arvo-summary.json are in $out" >&2 ;;
  1) echo "remaster_job: some files failed; reasons in $out/arvo-summary.json, tool logs in $out/arvo-logs/;" \
          "run the same command again to retry them" >&2 ;;
  2) echo "remaster_job: the job could not start; the line above says why" >&2 ;;
  *) echo "remaster_job: the job stopped (exit $status); run the same command again to resume" >&2 ;;
esac
exit "$status"
