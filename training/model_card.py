"""`python -m vsarvo.training.model_card`: write vsarvo/weights/MODEL_CARD.md from the measured files.

Every figure in the card is read from a file a command wrote: the weights' JSON sidecar (config,
hash, steps), the run's ``segments.jsonl`` (each training segment's steps, device, command and best
validation), the last segment's ``train_config.json`` and ``history.json``, ``arvo eval``'s
``report.json`` (procedural held-out set) and ``eval_realistic.json`` (realistic held-out set), the
real camera clip's ``real_clip.json``, the ablations' ``ablation.json`` (procedural clips, on a CPU) and
``ablation_realistic.json`` (realistic set, on a GPU: ``training/gpu_ablation.sh``) and, when the flow net was
retrained with ``vsarvo.training.flow_pretrain --report``, its ``flow_report.json``, and the shipped file's
flow net as ``flow_pretrain --measure`` scored it, ``flow_shipped.json``. The photo sources
come from the catalogue (``vsarvo.training.data.photo_catalogue``) and its fixed split; their installed
versions from ``photo_versions.json``, which this command writes from ``data/photos/manifest.json``
when the photos are installed, so the card renders the same with or without them. ``commands.json``
names the commands that wrote the evaluation, ablation, flow and clip files. Nothing is typed by hand;
sentences that judge the weights (where they help or harm, which targets they miss) are chosen by
rules on the figures.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from vsarvo.atomic import write_text_atomic

from .ablation_table import SWITCHES, budget_sentences, part_verdicts, variant_rows
from .segments import changed_settings, command_settings, read_segments, settings_of

__all__ = ["render", "render_run", "main", "SHIPPED_RUN", "help_harm_sentence", "comparison_table"]

# The run that produced the shipped weights: its logs, results and rolling checkpoint.
SHIPPED_RUN = Path("runs/arvo_tiny")
# The realistic ablation's result in a run folder (gpu_ablation.sh's ablation.json, copied there).
ABLATION_REALISTIC = "ablation_realistic.json"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def validation_of(checkpoint: Path | None) -> tuple[str, int]:
    """(validation set, first step scored on it) as the training checkpoint records them."""
    if checkpoint is None or not checkpoint.is_file():
        return "validation windows", 0
    from .checkpoint import read_checkpoint

    state = read_checkpoint(checkpoint)
    return state.get("val_set", "validation windows"), int(state.get("val_since", 0))


def lineage(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The segments whose training reached the shipped weights (side trials left out)."""
    return [s for s in segments if s["kind"] != "side"]


def after_shipped(segment: dict[str, Any], meta: dict[str, Any]) -> bool:
    """Whether a segment started after the shipped file's step: it trained the rolling checkpoint only."""
    shipped = meta.get("train_steps")
    return isinstance(shipped, int) and segment["start"] is not None and segment["start"] >= shipped


def shipped_validation(segments: list[dict[str, Any]]) -> tuple[str, int] | None:
    """(validation set, first step scored on it) of the shipped file: the set its last segment names, since
    the start of the earliest segment in the unbroken run of segments that name it."""
    named = [s for s in lineage(segments) if s.get("val_set")]
    if not named:
        return None
    val_set, since = named[-1]["val_set"], named[-1]["start"]
    for seg in reversed(named):
        if seg["val_set"] != val_set:
            break
        since = seg["start"]
    return val_set, int(since or 0)


def device_spans(segments: list[dict[str, Any]]) -> str:
    """Where the lineage ran, e.g. "steps 0-21200 on cpu, 21200-22373 on one NVIDIA H200"."""
    spans: list[list[Any]] = []
    for seg in lineage(segments):
        if spans and spans[-1][0] == seg["device"]:
            spans[-1][2] = max(spans[-1][2], seg["end"])
        else:
            spans.append([seg["device"], seg["start"], seg["end"]])
    return "steps " + ", ".join(f"{a}-{b} on {device}" for device, a, b in spans)


def _flow_line(epe: list[list[float]], report: dict[str, Any] | None, command: str | None) -> str:
    if report is not None:
        start = "re-initialised and trained" if report.get("fresh") else "trained further"
        return (f"- Flow net {start} on synthetic pairs with known flow, sharp and blurred alike (batch "
                f"{report['batch_size']}, {report['size']}x{report['size']}), for {report['steps']} steps"
                + f": end-point error on held-out pairs {report['epe_after']:.2f} px, against "
                f"{report['zero_flow_epe']:.2f} px for predicting no motion."
                + (f"\n  Command: `{command}`" if command else ""))
    if epe:
        return (f"- Flow net pretrained on synthetic pairs with known flow (batch 8, 128x128) for {len(epe)} "
                f"steps: end-point error {epe[0][1]:.2f} px at the first step, {epe[-1][1]:.2f} px at the last.")
    return "- Flow net: no supervised pretraining recorded."


def flow_does_not_align(measured: dict[str, Any] | None, meta: dict[str, Any]) -> bool:
    """Whether ``flow_shipped.json`` is of the shipped file and its flow net does worse than no motion."""
    return (measured is not None and measured.get("sha256") == meta.get("sha256")
            and measured["epe"] > measured["zero_flow_epe"])


def shipped_flow_lines(measured: dict[str, Any] | None, meta: dict[str, Any], command: str | None,
                       pretrained: dict[str, Any] | None = None) -> list[str]:
    """What the shipped file's flow net does now (``flow_pretrain --measure``), which may differ from what
    it did when it was pretrained: a flow net trained jointly without flow supervision can drift."""
    if measured is None:
        return []
    if measured.get("sha256") != meta.get("sha256"):
        return [f"- The flow net's measured error (`flow_shipped.json`) is of another weights file: measure the "
                f"shipped one again (`{command}`)."]
    line = (f"- The shipped file's flow net: end-point error {measured['epe']:.2f} px on {measured['pairs']} held-out "
            f"pairs, against {measured['zero_flow_epe']:.2f} px for predicting no motion")
    if flow_does_not_align(measured, meta):
        line += ": it does not align the neighbours"
        if pretrained is not None:
            line += (f" (after the pretraining above it was at {pretrained['epe_after']:.2f} px: segments that train "
                     "it jointly with the restorer give it no flow supervision)")
    return [line + "." + (f"\n  Command: `{command}`" if command else "")]


def _schedule(cfg: dict[str, Any]) -> str:
    """The learning-rate schedule in words; a halving period past the run's last step is a constant rate."""
    windows = cfg["procedural_clips"] * (cfg["procedural_frames"] - 2 * cfg["model"]["stages"])  # as RenderedClips
    epoch_steps = max(1, -(-windows // cfg["batch_size"])) if cfg.get("data") is None else 1
    if cfg["lr_halve_epochs"] * epoch_steps >= cfg["steps"]:
        return "(constant in that segment)"
    return f"halved every {cfg['lr_halve_epochs']} epochs"


# Issue 20's bar for the realistic held-out set: the mean gain, the share of frames made worse and the
# mild-blur subset's gain the shipped default weights must reach.
REALISTIC_TARGET_DB = 2.0
REALISTIC_MAX_WORSE = 0.05
MILD_MIN_GAIN_DB = 0.0
# How the card names each blur class of the realistic set: in its table, and in its sentences.
BLUR_CLASS_ROWS = {"none": "no blur", "mild": "mild blur", "strong": "strong blur"}
BLUR_CLASS_WORDS = {"none": "sharp (none)", "mild": "mild-blur", "strong": "strong-blur"}
# The file under a run folder recording the installed photo packages' versions (from the manifest).
PHOTO_VERSIONS = "photo_versions.json"


def image_link(alt: str, image: Path, card_dir: Path) -> str:
    """A Markdown image whose path is relative to the card's folder, so it resolves on GitHub and on disk."""
    return f"![{alt}]({Path(os.path.relpath(image, card_dir)).as_posix()})"


def training_data_kinds(cfg: dict[str, Any], segments: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each kind of training data a lineage segment (or the last segment's config) used, with the segments
    that used it: "footage" (``--data-kind footage``), "folder" (``--data``), else "procedural"."""
    kinds: dict[str, list[str]] = {}
    last = {f"--{k.replace('_', '-')}": str(v) for k, v in cfg.items() if v is not None and k != "model"}
    for name, settings in [*((s["name"], settings_of(s)) for s in lineage(segments) if s["kind"] == "train"),
                           ("train_config.json", last)]:
        kind = "footage" if settings.get("--data-kind") == "footage" else "folder" if settings.get("--data") else "procedural"
        kinds.setdefault(kind, []).append(name)
    return kinds


def training_data_line(cfg: dict[str, Any], segments: list[dict[str, Any]]) -> str:
    kinds = training_data_kinds(cfg, segments)
    checked = (f"{sum(s['kind'] == 'train' for s in lineage(segments))} training segments in `segments.jsonl` "
               "and the last segment's `train_config.json`")
    if set(kinds) == {"procedural"}:
        return (f"- **The shipped weights were trained on procedural data only**: none of the {checked} names "
                "`--data-kind footage` or `--data`,\n  so the real photos below were not used to train them; "
                "they serve the realistic held-out set under Results.")
    used = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(kinds.items()) if kind != "procedural")
    return f"- Training data other than procedural clips, from the {checked}: {used}."


def photo_versions(run: Path) -> dict[str, str]:
    """The installed version of each photo package, as the run's ``photo_versions.json`` records it."""
    path = run / PHOTO_VERSIONS
    return _load(path)["versions"] if path.is_file() else {}


def record_photo_versions(run: Path, photos: Path) -> bool:
    """Write the run's ``photo_versions.json`` from ``<photos>/manifest.json``; False when none is installed."""
    from .data.photos import MANIFEST, read_manifest

    if not (photos / MANIFEST).is_file():
        return False
    versions = {e["package"]: e["version"] for e in sorted(read_manifest(photos), key=lambda e: e["package"])}
    write_text_atomic(run / PHOTO_VERSIONS, json.dumps({"versions": versions}, indent=1) + "\n")
    return True


def photo_sources_table(versions: dict[str, str]) -> list[str]:
    """One row per photo package of the catalogue: registry, version, licences, photos per split."""
    from .data.photo_catalogue import CATALOGUE, packages
    from .data.photos import split_of

    lines = ["| package | registry | version | licence | photos | train | held out |", "|---|---|---|---|---|---|---|"]
    for kind, registry in (("deb", "Debian"), ("pypi", "PyPI")):
        for package in packages(kind):
            photos = [p for p in CATALOGUE if p.package == package]
            held = sum(split_of(p.name) == "held_out" for p in photos)
            licences = ", ".join(sorted({p.licence for p in photos}))
            lines.append(f"| `{package}` | {registry} | {versions.get(package, 'not recorded')} | {licences} | "
                         f"{len(photos)} | {len(photos) - held} | {held} |")
    held_all = sum(split_of(p.name) == "held_out" for p in CATALOGUE)
    lines.append(f"| all | | | | {len(CATALOGUE)} | {len(CATALOGUE) - held_all} | {held_all} |")
    return lines


def photo_credits() -> list[str]:
    """Every catalogued photo with its credit, licence and split, folded away."""
    from .data.photo_catalogue import CATALOGUE
    from .data.photos import split_of

    rows = [f"<li>{html.escape(p.name)}: {html.escape(p.credit)}, {html.escape(p.licence)}, "
            f"{split_of(p.name).replace('_', ' ')}</li>" for p in CATALOGUE]
    return ["<details><summary>Every photo: credit, licence, split</summary>", "", "<ul>", *rows, "</ul>",
            "</details>"]


def photos_section(versions: dict[str, str], commands: dict[str, str]) -> list[str]:
    """The real photographs: where they come from, under which licence, and how they are split."""
    version_note = ("Versions as installed by the command below (`data/photos/manifest.json`, recorded in "
                    f"`{SHIPPED_RUN / PHOTO_VERSIONS}`)." if versions else
                    "Versions are recorded once the photos are installed and this card is rendered again.")
    return ["", "### Real photographs", "",
            "Listed by `vsarvo.training.data.photo_catalogue`; the split is fixed per source image by "
            "`vsarvo.training.data.photos.split_of`.", f"{version_note} Each package's copyright file is copied "
            "to `data/photos/copyright/`." + (f" Install: `{commands['photos']}`" if "photos" in commands else ""), "",
            *photo_sources_table(versions), "", *photo_credits()]


def _span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if format(low, fmt) == format(high, fmt) else f"{format(low, fmt)}-{format(high, fmt)}"


def realistic_set_lines(real: dict[str, Any]) -> list[str]:
    """What the realistic held-out set is, with the ranges its clips' records show."""
    spec, records = real["set"], [v["record"] for v in real["videos"].values()]
    codecs = " and ".join(sorted({r["codec"] for r in records}))
    return [f"Realistic held-out set: {real['frames']} scored frames (the interior {real['frames'] // len(records)} of "
            f"each clip) from {spec['photos']} held-out photos x {spec['clips_per_photo']} clips x {spec['frames']} "
            f"frames at {spec['size']}x{spec['size']}, seed {spec['seed']}:",
            f"hand-held camera paths, moving objects, shutter duty {_span([100 * r['duty'] for r in records], '.0f')} "
            f"%, sensor noise, {codecs} at CRF {_span([r['crf'] for r in records], 'd')} in yuv420p,",
            f"scored on the YUV420-decoded frames against the clean ones, border crop {real['crop']} px."]


def _row(name: str, frames: int, inp: float, out: float, inp_ssim: float, out_ssim: float, worse: float) -> str:
    return (f"| {name} | {frames} | {inp:.2f} | {out:.2f} | {out - inp:+.2f} | {inp_ssim:.4f} | {out_ssim:.4f} | "
            f"{100 * worse:.1f} % |")


def comparison_table(rep: dict[str, Any], real: dict[str, Any]) -> list[str]:
    """The procedural and the realistic held-out set side by side, and the realistic set per blur class."""
    i, m = rep["input"], rep["model"]
    lines = ["| held-out set | frames | input PSNR (dB) | model PSNR (dB) | gain (dB) | input SSIM | model SSIM "
             "| frames worse |", "|---|---|---|---|---|---|---|---|",
             _row("procedural", i["frames"], i["mean_psnr"], m["mean_psnr"], i["mean_ssim"], m["mean_ssim"],
                  rep["frames_worse"]),
             _row("realistic, all", real["frames"], real["input_psnr"], real["model_psnr"], real["input_ssim"],
                  real["model_ssim"], real["frames_worse"])]
    for name, c in real["by_class"].items():
        lines.append(_row(f"realistic, {BLUR_CLASS_ROWS.get(name, name)}", c["frames"], c["input_psnr"],
                          c["model_psnr"], c["input_ssim"], c["model_ssim"], c["frames_worse"]))
    return lines


def _classes(names: list[str], gains: dict[str, float]) -> str:
    words = [f"{BLUR_CLASS_WORDS.get(n, n)}" for n in names]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"{listed} clips ({', '.join(f'{gains[n]:+.2f} dB' for n in names)})"


def help_harm_sentence(by_class: dict[str, dict[str, Any]]) -> str:
    """Where the weights help and where they harm, by the sign of each blur class's mean gain (to 0.01 dB)."""
    gains = {name: round(c["gain_db"], 2) for name, c in by_class.items()}
    parts = []
    for verb, names in (("lower PSNR on", [n for n, g in gains.items() if g < 0]),
                        ("raise PSNR on", [n for n, g in gains.items() if g > 0]),
                        ("leave PSNR unchanged on", [n for n, g in gains.items() if g == 0])):
        if names:
            parts.append(f"{verb} {_classes(names, gains)}")
    text = "; they ".join(parts)
    return f"On the realistic held-out set the shipped weights {text}."


def real_clip_lines(clip: dict[str, Any], image: str | None, command: str) -> list[str]:
    """The real camera clip's before/after and how much the weights changed it (it has no ground truth)."""
    src = clip["source"]
    return ["", f"Real camera clip: `{Path(src['file']).name}`, {src['content']}; from the package "
            f"{src['package']} {src['version']}, licence {src['licence']}; frame {clip['frame']}, box {clip['box']}.",
            f"It has no sharp original, so only the change is measured: the {clip['weights']} weights change its "
            f"pixels by {clip['mean_abs_change_levels']:.2f} 8-bit levels on average and "
            f"{100 * clip['pixels_changed_over_2_levels']:.1f} % of them by more than 2 levels.",
            f"Command: `{command}`"] + ([] if image is None else ["", image + " (input | restored; below, a zoom of a smaller box)"])


def realistic_lines(rep: dict[str, Any], real: dict[str, Any], clip: dict[str, Any] | None,
                    images: dict[str, str], commands: dict[str, str]) -> list[str]:
    """Results on the realistic held-out set next to the procedural one, and the real clip."""
    lines = ["", "### Realistic held-out set", "", *realistic_set_lines(real), f"Command: `{commands['realistic_eval']}`",
             "", *comparison_table(rep, real), "", f"- {help_harm_sentence(real['by_class'])} Over the whole set: "
             f"**{real['gain_db']:+.2f} dB**, {100 * real['frames_worse']:.1f} % of frames made worse."]
    if "realistic" in images:
        lines += ["", images["realistic"] + " (realistic: decoded input | restored | sharp)"]
    if clip is not None:
        lines += real_clip_lines(clip, images.get("real_clip"), commands["real_clip"])
    return lines


def realistic_limits(real: dict[str, Any] | None) -> list[str]:
    """Where the shipped weights fall short of issue 20's bar on the realistic held-out set, from its figures."""
    if real is None:
        return ["- Not scored on the realistic held-out set (no `eval_realistic.json` in the run)."]
    short = []
    if real["gain_db"] < REALISTIC_TARGET_DB:
        short.append(f"the mean gain is {real['gain_db']:+.2f} dB, below the +{REALISTIC_TARGET_DB:.1f} dB target")
    if real["frames_worse"] > REALISTIC_MAX_WORSE:
        short.append(f"{100 * real['frames_worse']:.1f} % of frames are made worse (at most "
                     f"{100 * REALISTIC_MAX_WORSE:.0f} % allowed)")
    mild = real["by_class"].get("mild")
    if mild is not None and mild["gain_db"] < MILD_MIN_GAIN_DB:
        short.append(f"the mild-blur subset's mean PSNR drops by {-mild['gain_db']:.2f} dB (it must not drop)")
    if not short:
        return ["- On the realistic held-out set the shipped weights meet the bar (mean gain at least "
                f"+{REALISTIC_TARGET_DB:.1f} dB, at most {100 * REALISTIC_MAX_WORSE:.0f} % of frames worse, "
                "no loss on mild blur)."]
    return ["- On footage like users have (the realistic held-out set) the shipped weights do not yet do their job: "
            + "; ".join(short) + "."]


def model_section(meta: dict[str, Any], segments: list[dict[str, Any]]) -> list[str]:
    return [
        "# Model card: vsarvo default weights (`arvo_tiny`)",
        "",
        "ARVo (Li et al., CVPR 2021) in the `tiny` configuration, trained from scratch by this project (no",
        "pretrained ARVo or PWC-Net weights exist that we could download). This file is generated by",
        "`python -m vsarvo.training.model_card` from the files the commands under Reproduce wrote.",
        "",
        "## Model",
        "",
        f"- Configuration (`ARVoConfig`): `{json.dumps(meta['config'], sort_keys=True)}`",
        f"- Config digest `{meta['config_digest']}`; weights file SHA-256 `{meta['sha256']}`",
        f"- Training steps: {meta.get('train_steps', 'unknown')}, in {len(lineage(segments))} segments "
        f"joined by `--resume`: {device_spans(segments)}.",
        "- Input: RGB in [0, 1], any size >= 64x64; output: the restored middle frame of a 5-frame window.",
    ]


def data_section(cfg: dict[str, Any], segments: list[dict[str, Any]]) -> list[str]:
    return [
        "",
        "## Data",
        "",
        f"- {cfg['procedural_clips']} procedural clips of {cfg['procedural_frames']} frames at "
        f"{cfg['procedural_size']}x{cfg['procedural_size']} in the last segment (`vsarvo.training.data.procedural`).",
        "- Textures from the train split of the source images (scikit-image photos plus procedural 1/f noise, "
        "polygons, text, foliage), moved along random smooth camera paths with independently moving layers.",
        "- Blur: sub-frame renders averaged in linear light, with sensor noise; settings "
        "`vsarvo.training.data.rendered.TRAIN_BLUR`.",
        "- Validation picks the shipped file on clips of their own from the same train split; the test set "
        "below uses source images training never saw.",
        training_data_line(cfg, segments),
    ]


def recipe_section(cfg: dict[str, Any], epe: list[list[float]], flow_report: dict[str, Any] | None,
                   commands: dict[str, str], shipped_flow: list[str] = ()) -> list[str]:
    frozen = cfg.get("freeze_flow_steps", 0) >= cfg.get("steps", 0)
    loss = f"- Loss: {cfg.get('pixel_loss', 'l1').upper()} on every stage output"
    if cfg["adv_weight"] > 0:
        loss += f" + {cfg['adv_weight']} x adversarial loss from the temporal discriminator (the paper uses 0.1)."
    else:
        loss += (". The adversarial term (the paper: 0.1 x the temporal discriminator's loss) is switched off in "
                 "the segment that produced the shipped file (`--adv-weight 0`): it buys perceptual sharpness "
                 "at some cost in PSNR, the figure this card reports.")
    return [
        "",
        "## Recipe",
        "",
        "The settings below are those of the segment that produced the shipped file; Reproduce lists what "
        "each earlier segment changed.",
        "",
        _flow_line(epe, flow_report, commands.get("flow")),
        *shipped_flow,
        f"- Curriculum: one stage on 3-frame windows up to step {cfg['stage1_steps']}, then the two progressive "
        "stages with shared weights on 5-frame windows; the flow net "
        + ("stays frozen." if frozen else f"trains jointly from step {cfg.get('freeze_flow_steps', 0)}."),
        loss,
        f"- Adam, lr {cfg['lr']:g} " + _schedule(cfg) + f", batch {cfg['batch_size']}, "
        f"{cfg['crop']}x{cfg['crop']} crops, flips and 90-degree rotations, gradient clipping {cfg['clip_grad']}, "
        f"seed {cfg['seed']}, mixed precision {'on' if cfg.get('amp') else 'off'}.",
    ]


def _validation_lines(hist: dict[str, Any], validation: tuple[str, int], meta: dict[str, Any]) -> list[str]:
    val_set, val_since = validation
    val = [sv for sv in hist.get("val_psnr") or [] if sv[0] > val_since]  # scores on one set only
    if not val:
        return []
    best_step, best = max(val, key=lambda sv: sv[1])
    return [f"- Validation PSNR during training ({val_set}, scored since step {val_since}): "
            f"{val[0][1]:.2f} dB at step {val[0][0]}, best {best:.2f} dB at step {best_step}, "
            f"{val[-1][1]:.2f} dB at step {val[-1][0]} (the run's last). The shipped file is the "
            f"best-validated one (step {meta.get('train_steps', 'unknown')})."]


def results_section(rep: dict[str, Any], hist: dict[str, Any], validation: tuple[str, int],
                    meta: dict[str, Any], commands: dict[str, str], image: str | None = None) -> list[str]:
    m, i = rep["model"], rep["input"]
    meets = rep["gain_db"] >= 2.0 and rep["frames_worse"] <= 0.05 and rep.get("static_psnr", 0) >= 35
    lines = [
        "",
        "## Results",
        "",
        f"Held-out procedural test set: {i['frames']} frames from source images training never saw, a seed "
        f"of its own, RGB uint8, border crop {rep['crop']} px.",
        f"Command: `{commands['eval']}`",
        "",
        "| | PSNR (dB) | SSIM | flicker |",
        "|---|---|---|---|",
        f"| blurry input | {i['mean_psnr']:.2f} | {i['mean_ssim']:.4f} | {i['mean_flicker']:.3f} |",
        f"| ARVo tiny (shipped) | {m['mean_psnr']:.2f} | {m['mean_ssim']:.4f} | {m['mean_flicker']:.3f} |",
        "",
        f"- Mean gain over the blurry input: **{rep['gain_db']:+.2f} dB**; frames made worse: "
        f"{100 * rep['frames_worse']:.1f} %.",
    ]
    if "static_psnr" in rep:
        lines.append(f"- A sharp, static clip comes out at {rep['static_psnr']:.2f} dB PSNR against itself.")
    lines += [
        "- The project's acceptance bar is a gain of at least 2.0 dB with at most 5 % of frames made worse "
        "and at least 35 dB on the static clip. "
        + ("These weights meet it." if meets else
           f"**These weights do not meet it yet**: training continues from `{SHIPPED_RUN / 'rolling.pt'}`."),
        "- Flicker: mean absolute difference (8-bit levels) between the frame-to-frame changes of the "
        "output and of the ground truth.",
        *_validation_lines(hist, validation, meta),
    ]
    if image is not None:
        lines += ["", image + " (procedural: blurry | restored | sharp)"]
    return lines


# The device call that runs the realistic ablation (training/gpu_ablation.sh's header says what to carry and
# how its result becomes the run's ablation_realistic.json).
REALISTIC_ABLATION_CALL = ('run(command="bash training/gpu_ablation.sh", carry=["carry/ablation_footage", '
                           '"carry/realistic_set.npz"], timeout_s=540)')


def wrapped_command(command: str, width: int = 100) -> list[str]:
    """A long shell command as a fenced block, cut between its words into lines of about ``width``."""
    import shlex

    lines, line = [], ""
    for word in shlex.split(command):
        word = shlex.quote(word)
        if line and len(line) + 1 + len(word) > width:
            lines.append(line + " \\")
            line = "    " + word
        else:
            line = f"{line} {word}" if line else word
    return ["```sh", *lines, line, "```"]


def part_sentences(parts: list[dict[str, Any]]) -> list[str]:
    """Whether each part helped at the ablation's budget, in plain words; a part that did not keeps its switch."""
    lines = []
    for p in parts:
        said = {"helped": "helped", "harmed": "made the restoration worse",
                "no clear difference": "made no clear difference"}[p["verdict"]]
        line = (f"- {p['part'][0].upper() + p['part'][1:]} {said} at this budget ({p['with']} against {p['without']}: "
                f"{p['difference_db']:+.2f} dB per realistic clip, standard error "
                + (f"{p['se_db']:.2f} dB" if p.get("se_db") is not None else "unknown") + f", {p['clips']} clips).")
        if p["verdict"] != "helped" and p["part"] in SWITCHES:
            line += f" It stays switchable: `{SWITCHES[p['part']]}`."
        lines.append(line)
    return lines


def realistic_ablation_lines(abl: dict[str, Any] | None) -> list[str]:
    """The realistic-set ablation from its result file, or that it has not been run yet and how to run it."""
    lines = ["", "### Realistic set", ""]
    if abl is None:
        return lines + ["The realistic ablation has not yet been run on a GPU. The device call is "
                        f"`{REALISTIC_ABLATION_CALL}` (`training/gpu_ablation.sh`'s header lists what it carries and how "
                        "its `ablation.json` becomes this section)."]
    b = abl["budget"]
    base = b.get("base_config") or {}
    lines += ["Each variant retrained from scratch and scored on the realistic held-out clips"
              + (f"; the full model: {', '.join(f'{k} {v}' for k, v in base.items())}." if base else "."),
              *budget_sentences(b), f"Device call: `{REALISTIC_ABLATION_CALL}`; the command it ran:", "",
              *wrapped_command(b["command"]), "", *variant_rows(abl["variants"])]
    if abl.get("skipped"):
        lines += ["", f"Not run (the call's time ran out first): {', '.join(abl['skipped'])}."]
    parts = part_verdicts(abl["variants"])
    if parts:
        lines += ["", "Does each part earn its cost? (helped: better than the variant without it by more than twice "
                  "the standard error of the per-clip differences)", "", *part_sentences(parts)]
    return lines


def ablation_section(abl: dict[str, Any] | None, command: str, realistic: dict[str, Any] | None) -> list[str]:
    """The Ablation section: the realistic-set ablation (or how to run it), then the procedural one when recorded."""
    lines = ["", "## Ablation (reduced budget)", *realistic_ablation_lines(realistic)]
    if abl is None:
        return lines
    b = abl["budget"]
    intro = (f"Each variant retrained from scratch for {b['steps']} steps (batch {b['batch_size']}, "
             f"{b['crop']} px crops, {b['clips']} clips), scored on held-out procedural clips.")
    if b.get("flow_pretrain_steps"):
        intro += (f" The variants with flow start from one flow net pretrained for {b['flow_pretrain_steps']} "
                  f"steps (held-out end-point error {b['flow_epe']:.2f} px; no motion: {b['zero_flow_epe']:.2f} px), frozen.")
    lines += ["", "### Procedural clips (variants retrained on the CPU)", "",
              intro + " At this budget the numbers rank the variants only roughly.",
              f"Command: `{command}`", "", "| variant | PSNR (dB) | SSIM | blurry input PSNR |", "|---|---|---|---|"]
    for name, r in abl["variants"].items():
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['input_psnr']:.2f} |")
    return lines


def limits_section(meta: dict[str, Any], cfg: dict[str, Any], segments: list[dict[str, Any]],
                   real: dict[str, Any] | None, flow_measured: dict[str, Any] | None = None) -> list[str]:
    data = ("procedural clips only" if set(training_data_kinds(cfg, segments)) == {"procedural"}
            else "synthetic blur only")
    return [
        "",
        "## Limits",
        "",
        *realistic_limits(real),
        *(["- The flow net does not align the neighbours (see Recipe): the temporal part of the model works "
           "from poorly aligned frames."]
          if flow_does_not_align(flow_measured, meta) else []),
        f"- Trained on {data} ({meta.get('train_steps', 'unknown')} steps for the shipped file, "
        "a small fraction of the paper's budget).",
        "- For real quality train the paper's configuration on DVD / GoPro / HFR-DVD on a GPU "
        "(`arvo train --preset paper --data ROOT`).",
        "- The paper's figures (DVD: 32.80 dB / 0.9352 SSIM) are for its full model and data; they do not "
        "describe these weights.",
    ]


def what_changed(seg: dict[str, Any], before: dict[str, Any] | None, settings_before: dict[str, str]) -> str:
    """A segment's change from the one before it, from their records: grown or retrained parts, the recipe
    flags that differ, the learning rate and stages its log shows, the device."""
    command = seg.get("command") or ""
    if before is None:
        return "first segment"
    notes, grown = [], {}
    if seg["kind"] == "flow":
        notes.append("flow net retrained alone"
                     + (f" (held-out end-point error {seg['flow_epe']:.2f} px at the end)" if seg.get("flow_epe") else ""))
    if command.startswith("python -m vsarvo.training.grow"):
        grown = {k: v for k, v in command_settings(command.split(", then ")[0]).items() if k not in ("--checkpoint", "--out")}
        notes.append("grown: " + " ".join(k if v == "on" else f"{k} {v}" for k, v in grown.items()))
    if seg["kind"] == "side":
        notes.append("side run, not in the shipped weights")
    if seg["kind"] != "flow":
        notes += [c for c in changed_settings(settings_before, settings_of(seg)) if c.split()[0] not in grown]
    if not command:
        if seg.get("lr") and seg["lr"] != before.get("lr"):
            notes.append(f"lr {seg['lr']:.0e} (log)")
        if seg.get("stages") and seg["stages"] != before.get("stages"):
            notes.append("stages " + ", ".join(map(str, seg["stages"])) + " (log)")
    if seg["device"] != before["device"]:
        notes.append(f"on {seg['device']}")
    return "; ".join(notes) or "continued"


def _cell(text: str) -> str:
    return f"<td>{html.escape(text)}</td>"


def _command_cell(command: str | None) -> list[str]:
    """The command in a code element, broken over lines of <= 100 characters (HTML joins them with a space)."""
    if not command:
        return ["<td>not recorded in the log</td>"]
    lines, line = [], ""
    for word in html.escape(command, quote=False).split(" "):
        if line and len(line) + len(word) > 100:
            lines.append(line)
            line = ""
        line = f"{line} {word}" if line else word
    return ["<td><code>", *lines, line, "</code></td>"]


def reproduce_section(segments: list[dict[str, Any]], meta: dict[str, Any], commands: dict[str, str]) -> list[str]:
    shipped = meta.get("train_steps")
    lines = ["", "## Reproduce", "",
             "One row per training segment, in the order they ran, from the run's `segments.jsonl`; best "
             "validation PSNR within the segment, on the validation set its record names.", "",
             "<table>", "<tr><th>segment</th><th>steps</th><th>device</th><th>best validation</th>"
             "<th>what changed</th><th>command</th></tr>"]
    before, settings_before = None, {}
    for seg in segments:
        name = seg["name"]
        if seg["kind"] != "side" and isinstance(shipped, int) and seg["start"] < shipped <= seg["end"]:
            name += f" (shipped weights: step {shipped})"
        elif after_shipped(seg, meta):
            name += " (after the shipped weights: the rolling checkpoint only)"
        steps = f"{seg['start']}-{seg['end']}" if seg["start"] is not None else f"to {seg['end']}"
        best = f"{seg['best_val'][1]:.2f} dB at step {seg['best_val'][0]}" if seg["best_val"] else "-"
        lines += ["<tr>" + _cell(name) + _cell(steps) + _cell(seg["device"]) + _cell(best)
                  + _cell(what_changed(seg, before, settings_before)), *_command_cell(seg["command"]), "</tr>"]
        if seg["kind"] != "side":
            before = seg
            settings_before = {**settings_before, **settings_of(seg)}
    lines += ["</table>", "",
              f"- Evaluation: `{commands['eval']}`",
              *(f"- {what}: `{commands[key]}`" for key, what in (
                  ("photos", "Real photographs"), ("realistic_eval", "Realistic evaluation"),
                  ("real_clip", "Real camera clip")) if key in commands),
              f"- This card: `{commands['card']}`",
              f"- The segments of a run are recorded by `arvo train` in `OUT_DIR/segments.jsonl`; those before that "
              f"record existed were converted from `{SHIPPED_RUN / 'train_log.txt'}` by "
              "`python -m vsarvo.training.segments_from_log`.", ""]
    return lines


def render(*, weights_json: Path, train_config: Path, history: Path, report: Path, segments: Path,
           ablation: Path | None, commands: dict[str, str], validation: tuple[str, int] = ("validation windows", 0),
           flow: Path | None = None, realistic: Path | None = None, real_clip: Path | None = None,
           versions: dict[str, str] | None = None, card_dir: Path | None = None,
           ablation_realistic: Path | None = None, flow_shipped: Path | None = None) -> str:
    """The model card's Markdown from the measured files; images are linked relative to ``card_dir``. With
    ``ablation_realistic`` (a path, present or not) the card has an Ablation section that renders that
    file or says the realistic ablation has not been run yet."""
    meta, cfg, hist, rep = _load(weights_json), _load(train_config), _load(history), _load(report)
    all_records = read_segments(segments)
    # The card describes the shipped file: segments that only trained the rolling checkpoint further are
    # listed under Reproduce alone.
    records = [s for s in all_records if not after_shipped(s, meta)]
    validation = shipped_validation(records) or validation
    flow_report = _load(flow) if flow is not None and flow.is_file() else None
    real = _load(realistic) if realistic is not None and realistic.is_file() else None
    clip = _load(real_clip) if real_clip is not None and real_clip.is_file() else None
    flow_measured = _load(flow_shipped) if flow_shipped is not None and flow_shipped.is_file() else None
    images = {name: image_link(f"{name} before/after", report.parent / file, card_dir or weights_json.parent)
              for name, file in (("procedural", "before_after.png"), ("realistic", "before_after_realistic.png"),
                                 ("real_clip", "real_clip.png")) if (report.parent / file).is_file()}
    lines = model_section(meta, records) + data_section(cfg, records)
    lines += photos_section(versions or {}, commands)
    lines += recipe_section(cfg, hist.get("flow_epe") or [], flow_report, commands,
                            shipped_flow_lines(flow_measured, meta, commands.get("flow_shipped"), flow_report))
    lines += results_section(rep, hist, validation, meta, commands, images.get("procedural"))
    if real is not None:
        lines += realistic_lines(rep, real, clip, images, commands)
    procedural_ablation = _load(ablation) if ablation is not None and ablation.is_file() else None
    if procedural_ablation is not None or ablation_realistic is not None:
        found = ablation_realistic is not None and ablation_realistic.is_file()
        realistic_ablation = _load(ablation_realistic) if found else None
        lines += ablation_section(procedural_ablation, commands.get("ablation", ""), realistic_ablation)
    lines += limits_section(meta, cfg, records, real, flow_measured) + reproduce_section(all_records, meta, commands)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsarvo.training.model_card", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights-json", type=Path, default=Path("vsarvo/weights/arvo_tiny.json"))
    p.add_argument("--run", type=Path, default=SHIPPED_RUN,
                   help="folder with segments.jsonl, train_config.json, history.json, report.json, commands.json "
                        "(and ablation.json, ablation_realistic.json, flow_report.json, flow_shipped.json, "
                        "eval_realistic.json, real_clip.json)")
    p.add_argument("--checkpoint", type=Path, default=SHIPPED_RUN / "rolling.pt",
                   help="the run's training checkpoint: which validation set its scores are on")
    p.add_argument("--photos", type=Path, default=Path("data/photos"),
                   help="the installed photos: when their manifest.json exists, the packages' versions are "
                        f"recorded in the run's {PHOTO_VERSIONS} first (the card itself reads only the run)")
    p.add_argument("--out", type=Path, default=Path("vsarvo/weights/MODEL_CARD.md"))
    args = p.parse_args(argv)
    if record_photo_versions(args.run, args.photos):
        print(f"recorded the photo packages' versions from {args.photos} in {args.run / PHOTO_VERSIONS}", file=sys.stderr)
    write_text_atomic(args.out, render_run(args.run, weights_json=args.weights_json, checkpoint=args.checkpoint,
                                           card_dir=args.out.parent))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def render_run(run: Path, *, weights_json: Path, checkpoint: Path | None, card_dir: Path | None = None) -> str:
    """The card for the run folder ``run`` (the files it holds under their usual names); images are linked
    relative to ``card_dir``, by default the weights' folder, where the card is written."""
    return render(weights_json=weights_json, train_config=run / "train_config.json", history=run / "history.json",
                  report=run / "report.json", segments=run / "segments.jsonl", ablation=run / "ablation.json",
                  commands=_load(run / "commands.json"), validation=validation_of(checkpoint),
                  flow=run / "flow_report.json", realistic=run / "eval_realistic.json",
                  real_clip=run / "real_clip.json", versions=photo_versions(run), card_dir=card_dir,
                  ablation_realistic=run / ABLATION_REALISTIC, flow_shipped=run / "flow_shipped.json")


if __name__ == "__main__":
    sys.exit(main())
