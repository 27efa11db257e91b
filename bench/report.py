"""Render bench/results/*.json as the README's performance tables (markdown), never typed by hand.

    python -m bench.report [--results bench/results] [--out bench/results/TABLE.md] [--readme README.md]

Each section comes from one result file and names the machine, its load, the reference rate and
the command that reproduces it. With ``--readme`` the text between the lines
``<!-- bench:start -->`` and ``<!-- bench:end -->`` in that file is replaced by the tables.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from bench.record import RESULTS_DIR, load_results
from vsarvo.atomic import write_text_atomic

__all__ = ["render", "readme_with_tables", "replace_between_markers", "archive_gpu_hours", "START_MARKER", "END_MARKER", "main"]

START_MARKER = "<!-- bench:start -->"
END_MARKER = "<!-- bench:end -->"
PARTS = ("flow", "encoder", "aggregation", "reconstruction")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _g(flops: float) -> str:
    return f"{flops / 1e9:,.1f}"


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:,.0f}"


def _conditions(data: dict[str, Any], extra: str = "") -> list[str]:
    m = data["machine"]
    # The threads the timed work ran with (set after the machine was described), when recorded.
    threads = data.get("threads") or m["torch_threads"]
    where = f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({threads} thread{'' if threads == 1 else 's'})"
    if m.get("gpus"):
        where += ", GPU: " + ", ".join(m["gpus"])
    text = f"_Measured {m['utc']} on {where}; load average {m['load_average'][0]:.1f} at the start"
    if extra:
        text += f"; {extra}"
    text += f". Reproduce: `{data['command']}`._"
    lines = [text]
    if data.get("note"):
        lines.append(f"_Note: {data['note']}_")
    return lines


def _model_cost(data: dict[str, Any]) -> list[str]:
    header = ["config", "params", "size", "GFLOP / stage call", "GFLOP / output frame",
              *[f"{p} (GFLOP, share)" for p in PARTS]]
    rows = []
    for r in data["rows"]:
        parts = [f"{_g(r['stage_flops_by_part'][p])} ({100 * r['stage_flops_by_part'][p] / r['stage_flops']:.0f}%)" for p in PARTS]
        rows.append([r["config"], f"{r['params']:,}", r["size"], _g(r["stage_flops"]), _g(r["output_frame_flops"]), *parts])
    calls = sorted({r["stage_calls_per_output_frame"] for r in data["rows"]})
    return ["### Model cost", "", *_table(header, rows), "",
            f"Parts per stage call; an output frame costs {'/'.join(map(str, calls))} stage calls in streaming. "
            f"FLOPs: {data['convention']}", "", *_conditions(data)]


def _reference_text(data: dict[str, Any]) -> str:
    s = data["sgemm"]
    text = f"fp32 sgemm {s['reference_flops_per_s'] / 1e9:.0f} GFLOP/s (best of start/end of the run)"
    if "gpu_dense" in data:
        d = data["gpu_dense"]
        text += (f"; {d['device_name']} dense {d['n']}^3: bf16 {d['bf16']['flops_per_s'] / 1e12:.0f}, "
                 f"fp16 {d['fp16']['flops_per_s'] / 1e12:.0f}, fp32 {d['fp32']['flops_per_s'] / 1e12:.0f} TFLOP/s")
    return text


def _throughput(data: dict[str, Any]) -> list[str]:
    header = ["config", "size", "backend", "device", "precision", "frames/s", "s / frame", "peak memory (MB)",
              "% of reference", "bottleneck"]
    rows, skipped = [], []
    for r in data["rows"]:
        if r["kind"] != "backend":
            continue
        device = r["device"] if r["device"] == "cpu" else f"{r['device']} ({r.get('device_name', '?')})"
        if r["status"] != "ok":
            skipped.append(f"- {r['config']} {r['size']} {r['label']} {r['device']} {r['precision']}: "
                           f"{r['status']} ({r['reason']})")
            continue
        memory = _mb(r["cuda_peak_allocated_bytes"]) + " (GPU)" if "cuda_peak_allocated_bytes" in r else _mb(r["peak_growth_bytes"])
        bottleneck = "-"
        if "bottleneck" in r:
            b = r["bottleneck"]
            bottleneck = f"{b} ({100 * r['parts'][b]['share']:.0f}%)"
        rows.append([r["config"], r["size"], r["label"], device, r["precision"], f"{r['output_fps']:.3g}",
                     f"{r['output_frame_s']:.3g}", memory, f"{100 * r['fraction_of_reference']:.1f}", bottleneck])
    lines = ["### Throughput", "", *_table(header, rows), ""]
    lines.append("Frames/s of a full output frame (stage calls x best timed call); peak memory is RSS growth over "
                 "the loaded model (GPU: peak allocated); % of reference = analytic FLOP/s over the reference rate.")
    if skipped:
        lines += ["", "Not measured:", *skipped]
    filter_rows = [r for r in data["rows"] if r["kind"] == "filter"]
    if filter_rows:
        lines += ["", "#### Filter path vs bare model", ""]
        fheader = ["config", "size", "frames", "device", "filter s / frame", "bare model s / frame", "overhead",
                   "model calls / output frame"]
        frows, fskipped = [], []
        for r in filter_rows:
            if r["status"] != "ok":
                fskipped.append(f"- {r['config']} {r['size']} {r['device']}: {r['status']} ({r['reason']})")
                continue
            device = r["device"] if r["device"] == "cpu" else f"{r['device']} ({r['device_name']})"
            frows.append([r["config"], r["size"], str(r["frames"]), device, f"{r['filter_s_per_output_frame']:.3g}",
                          f"{r['bare_s_per_output_frame']:.3g}", f"{r['overhead_pct']:+.1f}%",
                          f"{r['model_calls_per_output_frame']:.2f}"])
        lines += _table(fheader, frows)
        lines += ["", "vsarvo.Deblur on a YUV420P8 clip through `clip.frames()` (source time subtracted) vs the same "
                  "runner on the same frames; best of the alternating runs.", *fskipped]
    return lines + ["", *_conditions(data, "reference: " + _reference_text(data))]


def _aggregation_memory(data: dict[str, Any]) -> list[str]:
    header = ["method", "largest map (queries x keys)", "peak growth there (MB)", "time there (s)",
              "memory ~ queries^", "time ~ queries^"]
    rows = []
    for method, fit in data["summary"]["methods"].items():
        points = [p for p in data["points"] if p["method"] == method and p.get("status") == "ok"]
        top = max(points, key=lambda p: p["queries"])
        exp = "n/a" if fit["memory_exponent"] is None else f"{fit['memory_exponent']:.2f}"
        texp = "n/a" if fit["time_exponent"] is None else f"{fit['time_exponent']:.2f}"
        rows.append([f"`{method}`", f"{top['queries']:,} x {top['keys']:,}", _mb(top["peak_growth_bytes"]),
                     f"{top['seconds']:.3g}", exp, texp])
    checks = ", ".join(f"{name}: {'n/a' if ok is None else 'yes' if ok else 'NO'}"
                       for name, ok in data["summary"]["checks"].items())
    skipped = [f"- `{p['method']}` at {p['side']}x{p['side']}: {p['reason']}" for p in data["points"]
               if p.get("status") != "ok"]
    lines = ["### Aggregation memory", "", *_table(header, rows), "",
             f"Keys = queries/4 (level 1), C = {data['channels']}, fp32; exponents are log-log fits over the sweep "
             f"(memory over points with >= 1 MiB growth). Checks: {checks}."]
    if data.get("plot"):
        lines += ["", f"![aggregate vs aggregate_naive]({data['plot']})"]
    if skipped:
        lines += ["", "Not measured:", *skipped]
    return lines + ["", *_conditions(data)]


def _peer(data: dict[str, Any]) -> list[str]:
    lines = ["### Side by side with BasicVSR++ (vsbasicvsrpp)", ""]
    if "skipped" in data:
        return lines + [f"Not measured: {data['skipped']}", "", *_conditions(data)]
    header = ["model", "params", "size", "GFLOP / frame", "of which deformable", "s / frame", "frames/s",
              "GFLOP/s", "% of sgemm"]
    rows = [[r["model"], f"{r['params']:,}", f"{r['width']}x{r['height']}", _g(r["flops_per_frame"]),
             _g(r["deform_conv_flops_per_frame"]), f"{r['s_per_frame']:.3g}", f"{r['fps']:.3g}",
             f"{r['achieved_flops_per_s'] / 1e9:.1f}", f"{100 * r['fraction_of_sgemm']:.1f}"] for r in data["rows"]]
    lines += _table(header, rows)
    peer = next(r for r in data["rows"] if r["model"] == "BasicVSR++")
    lines += ["", f"Peer: {peer['source']}, random weights, {peer['frames_per_call']}-frame sequences; ARVo per output "
              "frame in streaming. Eager fp32 on the CPU, alternating, best of the runs."]
    g = data["goals"]
    where = g["size"] + ("" if g["at_720p"] else ", not 720p")
    if "throughput" in g:
        t = g["throughput"]
        lines.append(f"- Goal: {t['model']} at >= {t['goal']:.0f}x the peer's frames/s (720p): "
                     f"{t['ratio_to_peer']:.2f}x at {where}, {'met' if t['met'] else 'not met'}.")
    for model, e in g["efficiency"].items():
        lines.append(f"- Goal: {model} at least the peer's fraction of sgemm: {e['ratio_to_peer']:.2f}x, "
                     f"{'met' if e['met'] else 'not met'}.")
    s = data["sgemm"]
    return lines + ["", *_conditions(data, f"fp32 sgemm {s['reference_flops_per_s'] / 1e9:.0f} GFLOP/s")]


ARCHIVE_HOURS = 10_000
ARCHIVE_FPS = 25


def archive_gpu_hours(fps: float, *, hours: float = ARCHIVE_HOURS, video_fps: float = ARCHIVE_FPS) -> float:
    """GPU-hours to process ``hours`` of video at ``video_fps`` on one GPU that does ``fps`` frames/s."""
    if fps <= 0:
        raise ValueError(f"frames/s must be > 0, got {fps}")
    return hours * 3600 * video_fps / fps / 3600


def _archive_lines(data: dict[str, Any]) -> list[str]:
    """One line per configuration: the archive's cost at the end-to-end filter rate where one was
    measured, else at the fastest model path, at 1080p (else the largest size measured)."""
    lines = []
    ok = [r for r in data["rows"] if r["status"] == "ok" and r["kind"] in ("model", "filter")]
    for config in dict.fromkeys(r["config"] for r in ok):
        rows = [r for r in ok if r["config"] == config]
        size = "1080p" if any(r["size"] == "1080p" for r in rows) else max(rows, key=lambda r: r["width"] * r["height"])["size"]
        at_size = [r for r in rows if r["size"] == size]
        filters = [r for r in at_size if r["kind"] == "filter"]
        if filters:
            fastest = max(filters, key=lambda r: r["fps_after_warmup"])
            fps, how = fastest["fps_after_warmup"], f"the filter through {fastest['runner']}"
        else:
            best = max(at_size, key=lambda r: r["output_fps"])
            fps, how = best["output_fps"], f"the model alone, {best['path']}"
        unit = "GPU" if data["mode"] == "gpu" else "CPU"
        lines.append(f"- A {ARCHIVE_HOURS:,}-hour archive at {ARCHIVE_FPS} fps costs {archive_gpu_hours(fps):,.0f} "
                     f"{unit}-hours at the measured rate of `{config}` at {size} ({fps:.3g} frames/s, {how}, "
                     f"{data['device_name']}).")
    return lines


def _gpu(data: dict[str, Any]) -> list[str]:
    rows, skipped = [], []
    for r in data["rows"]:
        if r["status"] != "ok":
            skipped.append(f"- {r['kind']} {r['config']} {r['size']} {r.get('path', '')}".rstrip()
                           + f": {r['status']} ({r.get('reason')})")
        elif r["kind"] == "model":
            path = r["path"] + (f", tiled {r['tile']}" if r.get("tile") else "")
            speedup = "-" if r.get("speedup_vs_baseline") is None else f"{r['speedup_vs_baseline']:.2f}x"
            memory = r["peak_allocated_bytes"] if "peak_allocated_bytes" in r else r["peak_rss_growth_bytes"]
            rows.append([r["config"], r["size"], path, f"{r['output_fps']:.3g}", speedup, f"{1000 * r['stage_s']:.3g}",
                         f"{100 * r['fraction_of_bf16_matmul']:.2f}", _mb(memory)])
    memory_kind = "GPU peak allocated" if data["mode"] == "gpu" else "RSS growth"
    header = ["config", "size", "path", "frames/s", f"vs {data['baseline']}", "ms / stage call", "% of bf16 matmul",
              f"peak memory (MB, {memory_kind})"]
    title = f"### GPU: {data['device_name']}" if data["mode"] == "gpu" else "### GPU benchmark, CPU tiny mode"
    lines = [title, "", *_table(header, rows), "",
             "Frames/s of a full output frame (stage calls x median stage call, device-resident frames, "
             "channels-last, after warm-up; compiled paths compiled once at the row's size); % of bf16 matmul = "
             "analytic FLOP/s over the bf16 matrix-product rate measured in the same run."]
    parity = [r for r in data["rows"] if r["kind"] == "parity" and r["status"] == "ok"]
    if parity:
        precisions = list(dict.fromkeys(p for r in parity for p in r["psnr_db"]))
        prows = [[r["config"], r["size"], *[f"{r['psnr_db'][p]:.1f}" if p in r["psnr_db"] else "-" for p in precisions],
                  "yes" if r["counts"] else "NO"] for r in parity]
        lines += ["", "#### Parity with fp32", "",
                  *_table(["config", "size", *[f"{p} vs fp32 (dB)" for p in precisions],
                           f">= {data['parity_threshold_db']:.0f} dB"], prows)]
    filters = [r for r in data["rows"] if r["kind"] == "filter" and r["status"] == "ok"]
    if filters:
        frows = [[r["config"], r["size"], str(r["frames"]), r["runner"], r["precision"], str(r.get("streams", 1)),
                  f"{r['fps_after_warmup']:.3g}",
                  f"{r['bare_fps']:.3g}" if "bare_fps" in r else "-",
                  f"{r['ratio_to_bare']:.2f}" if "ratio_to_bare" in r else "-"] for r in filters]
        lines += ["", "#### The filter end to end", "",
                  *_table(["config", "size", "frames", "runner", "precision", "streams", "frames/s after warm-up",
                           "bare model frames/s", "filter / bare"], frows), "",
                  "vsarvo.Deblur on a YUV420P8 clip held in memory; frames/s after warm-up = the extra frames "
                  "over the difference of two runs' output times (first frames only, all frames)."]
    lines += ["", "#### Batch cost", "", *_archive_lines(data)]
    if skipped:
        lines += ["", "Not measured:", *skipped]
    m = data["matmul"]
    rates = ", ".join(f"{p} {m[p]['flops_per_s'] / 1e12:.3g}" for p in ("bf16", "fp16", "fp32") if p in m)
    extra = (f"{data['device_name']}, torch {data['torch']}, CUDA {data['cuda'] or 'none'}; reference: "
             f"{m['n']}^3 matmul {rates} TFLOP/s")
    return lines + ["", *_conditions(data, extra)]


SECTIONS: list[tuple[str, Callable[[dict[str, Any]], list[str]]]] = [
    ("model_cost", _model_cost),
    ("throughput", _throughput),
    ("aggregation_memory", _aggregation_memory),
    ("peer_basicvsrpp", _peer),
    ("gpu", _gpu),
]


def render(results: dict[str, dict[str, Any]]) -> str:
    """Markdown for every known benchmark present in ``results`` (as ``load_results`` returns them)."""
    blocks = [render_fn(results[name]) for name, render_fn in SECTIONS if name in results]
    if not blocks:
        raise ValueError(f"no benchmark results to render (expected any of {[n for n, _ in SECTIONS]})")
    lines = ["<!-- generated by `python -m bench.report` from bench/results/*.json; do not edit by hand -->", ""]
    for block in blocks:
        lines += block + [""]
    return "\n".join(lines)


def replace_between_markers(text: str, table: str) -> str:
    """``text`` with everything between START_MARKER and END_MARKER lines replaced by ``table``."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the file needs a {START_MARKER} line followed by a {END_MARKER} line")
    return text[:start + len(START_MARKER)] + "\n" + table.rstrip("\n") + "\n" + text[end:]


def readme_with_tables(readme: Path, results: str | os.PathLike[str]) -> str:
    """``readme``'s text with its generated block replaced by a fresh render of ``results``; image links
    in the tables are relative to the results folder, so they are made relative to the README."""
    table = render(load_results(results))
    prefix = os.path.relpath(Path(results).resolve(), readme.resolve().parent)
    linked = re.sub(r"\]\((?![a-z]+://|/)([^)]+\.png)\)", lambda m: f"]({prefix}/{m.group(1)})", table)
    return replace_between_markers(readme.read_text(), linked)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(RESULTS_DIR), help="folder of result JSON files")
    parser.add_argument("--out", default=None, help="markdown output (default: TABLE.md in --results)")
    parser.add_argument("--readme", default=None, help=f"also replace the text between {START_MARKER} and {END_MARKER} here")
    args = parser.parse_args(argv)
    table = render(load_results(args.results))
    out = Path(args.out) if args.out else Path(args.results) / "TABLE.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, table)
    print(table)
    print(f"wrote {out}", file=sys.stderr)
    if args.readme:
        readme = Path(args.readme)
        write_text_atomic(readme, readme_with_tables(readme, args.results))
        print(f"updated {readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
