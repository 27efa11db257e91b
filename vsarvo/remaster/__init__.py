"""The batch tool behind ``arvo deblur`` and ``arvo remaster``: each video file goes source →
``core.arvo.Deblur`` → ``vspipe`` → ffmpeg, with its audio, subtitles, chapters and metadata copied;
a batch job is resumable, runs files in parallel (threads here, or Ray tasks) and records every file
in a manifest in its output folder.

Modules, in the order a job meets them:

- ``cli``: the two subcommands' arguments, and their entry points ``run_deblur`` / ``run_remaster``.
- ``job``: the vocabulary the other modules share (DeblurOptions, built from vsarvo.filter_options;
  FileTask, FileResult, Cancellation, UsageError, PARTIAL_MARK).
- ``disk``: an output folder that is read-only, not permitted or full, found before a job starts,
  and a full disk named when an encode runs out of space.
- ``leftovers``: the names of a file's temporary folder and partial output, and the removal of
  those that killed runs left.
- ``interrupts``: SIGINT/SIGTERM end a job with 128 + signal, its lock and partial files removed.
- ``lock``: the output folder's lock (one job per folder; a killed job's lock is taken over).
- ``sources``: which files the SRC arguments name, and each one's path under the output folder.
- ``planner``: the job's files as tasks, with the settings (and hash) that decide what a re-run redoes.
- ``manifest``: ``arvo-job.json`` (per-file status and settings hash) and the final summary.
- ``driver``: runs the planned files on a pool, turning its events into manifest entries, retries,
  progress and the summary.
- ``pools``: where files run: worker threads on this machine, or Ray tasks.
- ``transcode``: one file, vspipe → relay → ffmpeg, checked (frame count, frame size) and
  committed to its final name.
- ``probe``: what ffprobe says about a source that the output must keep (start offset, colour).
- ``encoder``: encoder presets and the ffmpeg command line.
- ``framepipe``: reading vspipe's y4m, writing the timestamped Matroska stream ffmpeg reads.
- ``progress``: the job's progress lines on stderr.

Importing this package (or any module in it) loads neither torch nor VapourSynth: the work happens
in vspipe processes.
"""
