"""The ablation's results as files: ``ablation.json``, the ``ablation.md`` table, and whether each part helped.

Torch-free, so the model card reads and judges a committed ``ablation.json`` with the same rule the
ablation wrote its table with. A part helped at the ablation's budget when the variant with it restores
the realistic clips better than the variant without it by more than twice the standard error of the
per-clip differences (PSNR of the restored interior frames, the same frames for every variant); it
harmed when it is worse by that margin; otherwise the budget shows no clear difference.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from vsarvo.atomic import write_text_atomic

__all__ = ["PARTS", "SWITCHES", "part_verdicts", "budget_sentences", "variant_rows", "verdict_lines", "markdown",
           "write_outputs"]

# (part, the variant with it, the variant without it)
PARTS = (
    ("flow alignment", "full", "no-flow"),
    ("correlation volume", "full", "levels-0"),
    ("second progressive stage", "full", "stages-1"),
    ("neighbouring frames (one stage)", "stages-1", "single-frame"),
    ("ARVo as a whole against one frame", "full", "single-frame"),
)
# The model flag that switches a part off (the parts without one are not switches of the model).
SWITCHES = {"flow alignment": "--no-use-flow", "correlation volume": "--levels 0", "second progressive stage": "--stages 1"}


def part_verdicts(variants: dict[str, Any]) -> list[dict[str, Any]]:
    """For each part whose two variants were scored on the realistic set: the mean per-clip PSNR difference
    (with - without), its standard error, and "helped", "harmed" or "no clear difference"."""
    verdicts = []
    for part, with_it, without in PARTS:
        a = (variants.get(with_it) or {}).get("realistic")
        b = (variants.get(without) or {}).get("realistic")
        clips = sorted(set(a["clip_psnr"]) & set(b["clip_psnr"])) if a and b else []
        if not clips:
            continue
        diffs = [a["clip_psnr"][c] - b["clip_psnr"][c] for c in clips]
        mean = statistics.fmean(diffs)
        se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
        if se is not None and mean - 2 * se > 0:
            verdict = "helped"
        elif se is not None and mean + 2 * se < 0:
            verdict = "harmed"
        else:
            verdict = "no clear difference"
        verdicts.append({"part": part, "with": with_it, "without": without, "clips": len(diffs),
                         "difference_db": mean, "se_db": se, "verdict": verdict})
    return verdicts


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def variant_rows(variants: dict[str, Any]) -> list[str]:
    """The table's header and one row per variant: cost, then the realistic and procedural scores."""
    lines = ["| variant | params | steps | samples/s | realistic gain (dB) | frames worse | mild gain (dB) | "
             "procedural PSNR (dB) | procedural gain (dB) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in variants.items():
        real = r.get("realistic") or {}
        worse = real.get("frames_worse")
        lines.append(f"| {name} | {r.get('params', 0):,} | {r.get('steps', '-')} | {_number(r.get('samples_per_s'), '.1f')} | "
                     f"{_number(real.get('gain_db'), '+.2f')} | {_number(None if worse is None else 100 * worse, '.1f')}"
                     f"{' %' if worse is not None else ''} | {_number(real.get('mild_gain_db'), '+.2f')} | "
                     f"{r['psnr']:.2f} | {r['psnr'] - r['input_psnr']:+.2f} |")
    return lines


def verdict_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    """One sentence per part: what it changed on the realistic set and whether that is more than the noise."""
    return [f"- {v['part']} ({v['with']} against {v['without']}): {v['difference_db']:+.2f} dB per clip "
            f"(standard error {_number(v['se_db'], '.2f')} dB, {v['clips']} clips): {v['verdict']}."
            for v in verdicts]


def budget_sentences(b: dict[str, Any]) -> list[str]:
    """The budget the table was made with, a sentence at a time."""
    if b.get("seconds_per_variant"):
        cap = f" (at most {b['steps']} steps)" if b["steps"] < 10**6 else ""
        budget = f"{b['seconds_per_variant']:.0f} s of training per variant{cap}, so a cheaper variant takes more steps"
    else:
        budget = f"{b['steps']} steps"
    data = (f"{b['clips']} procedural training clips" if not b.get("footage_clips") else
            f"{b['footage_clips']} footage clips ({100 * b['footage_share']:.0f} % of each batch)"
            + (f" and {b['clips']} procedural clips" if b['footage_share'] < 1 else ""))
    where = f" on {b['device']}" + (f", {b['date']}" if b.get("date") else "") if b.get("device") else ""
    sentences = [f"Ablation at a reduced budget: {budget}, batch {b['batch_size']}, {b['crop']}px crops, {data}{where};",
                 "held-out procedural test clips, border crop 4."]
    if b.get("flow_pretrain_steps"):
        sentences.append(f"Variants with flow start from one flow net pretrained for {b['flow_pretrain_steps']} steps (held-out "
                         f"end-point error {b['flow_epe']:.2f} px; no motion: {b['zero_flow_epe']:.2f} px), frozen.")
    if b.get("flow_from"):
        sentences.append(f"Variants with flow start from the flow net of {b['flow_from']} (held-out end-point error "
                         f"{b['flow_epe']:.2f} px; no motion: {b['zero_flow_epe']:.2f} px), frozen.")
    if b.get("realistic_set"):
        sentences.append(f"Realistic set: {b['realistic_set']}, the same interior frames for every variant.")
    return sentences


def markdown(results: dict[str, Any]) -> str:
    """``ablation.md``: the budget, the table, and the verdict on each part."""
    lines = [" ".join(budget_sentences(results["budget"])), "", *variant_rows(results["variants"])]
    if results.get("parts"):
        lines += ["", "Does each part help on the realistic set at this budget?", "", *verdict_lines(results["parts"])]
    if results.get("skipped"):
        lines += ["", f"Not run (the call's time ran out first): {', '.join(results['skipped'])}."]
    return "\n".join(lines) + "\n"


def write_outputs(results: dict[str, Any], out: Path) -> None:
    """Writes ``ablation.json`` (with the part verdicts) and ``ablation.md`` under ``out``."""
    results["parts"] = part_verdicts(results["variants"])
    table = markdown(results)
    for name, text in (("ablation.md", table), ("ablation.json", json.dumps(results, indent=1))):
        write_text_atomic(out / name, text)
    print(table, file=sys.stderr)
