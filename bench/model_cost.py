"""Parameter counts and analytic FLOPs of ARVo per stage call and per output frame, per stage part.

    python -m bench.model_cost [--sizes 540p 720p 1080p] [--configs tiny paper]

FLOPs follow bench.flops.CONVENTION (1 multiply-add = 2 FLOPs; convolutions, matrix products and
attention; counted shape-only at the real frame size, padding included). In streaming, the filter
computes each stage's frame once, so one output frame costs ``stages`` stage calls (2 for the
paper's two stages): output-frame FLOPs = stages x stage FLOPs.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.flops import CONVENTION, FlopCount, count_flops
from bench.record import RESULTS_DIR, envelope, write_json
from vsarvo.model import PRESETS, ARVo, ARVoConfig

__all__ = ["SIZES", "PARTS", "bench_configs", "stage_flops", "parameter_counts", "cost_rows", "main"]

SIZES: dict[str, tuple[int, int]] = {"540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080)}

# Stage part -> module path under ARVoStage (FlopCounterMode names the root by its class).
PARTS = {"flow": "flow", "encoder": "encoder", "aggregation": "aggregation", "reconstruction": "reconstruction"}


def bench_configs(names: list[str] | None = None) -> dict[str, ARVoConfig]:
    """The configurations benchmarked: ``tiny`` and ``paper``, plus ``shipped`` when the shipped
    weights exist with a configuration that is neither (speed does not depend on weight values)."""
    configs = {name: build() for name, build in PRESETS.items()}
    shipped = shipped_config()
    if shipped is not None and shipped not in configs.values():
        configs["shipped"] = shipped
    if names is None:
        return configs
    unknown = [n for n in names if n not in configs]
    if unknown:
        raise ValueError(f"unknown configuration(s) {unknown}; choose from {sorted(configs)}")
    return {n: configs[n] for n in names}


def shipped_config() -> ARVoConfig | None:
    """The configuration of the shipped default weights, or None where they are not there yet."""
    from vsarvo.weights import default_weights_path, read_metadata

    path = default_weights_path()
    if not path.is_file():
        return None
    return ARVoConfig.from_dict(read_metadata(path)["config"])


def shipped_config_name() -> str | None:
    """Which of ``bench_configs()``' names the shipped weights have ("tiny", "paper" or "shipped")."""
    shipped = shipped_config()
    if shipped is None:
        return None
    return next((name for name, cfg in bench_configs().items() if cfg == shipped), "shipped")


def parse_size(text: str) -> tuple[str, int, int]:
    """"720p" or "WIDTHxHEIGHT" -> (label, width, height)."""
    if text in SIZES:
        return (text, *SIZES[text])
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be one of {list(SIZES)} or WIDTHxHEIGHT, got {text!r}") from None
    return text, w, h


def stage_flops(config: ARVoConfig, width: int, height: int) -> FlopCount:
    """FLOPs of one stage call (3 frames -> 1) at width x height, batch 1."""
    stage = ARVo(config).stage.eval()
    shape = (1, 3, height, width)
    return count_flops(stage, shape, shape, shape)


def parameter_counts(config: ARVoConfig) -> dict[str, Any]:
    """Parameters in total and per stage part (the stage's weights are all of the model's)."""
    stage = ARVo(config).stage
    by_part = {
        part: sum(p.numel() for p in getattr(stage, attr).parameters()) if getattr(stage, attr) is not None else 0
        for part, attr in PARTS.items()
    }
    return {"params": sum(p.numel() for p in stage.parameters()), "params_by_part": by_part}


def cost_rows(configs: dict[str, ARVoConfig], sizes: list[str]) -> list[dict[str, Any]]:
    """One row per (configuration, size): parameters, FLOPs per stage call and per output frame, per part."""
    rows = []
    for name, config in configs.items():
        params = parameter_counts(config)
        for size in sizes:
            label, width, height = parse_size(size)
            count = stage_flops(config, width, height)
            by_part = {part: count.part(f"ARVoStage.{attr}") for part, attr in PARTS.items()}
            calls = config.stages
            rows.append({
                "config": name,
                "config_fields": config.to_dict(),
                **params,
                "size": label,
                "width": width,
                "height": height,
                "stage_flops": count.total,
                "stage_flops_by_part": by_part,
                # FLOPs outside the four parts (0 when the parts cover the stage, as they should).
                "stage_flops_unattributed": count.total - sum(by_part.values()),
                "stage_flops_by_op": count.by_op,
                "stage_calls_per_output_frame": calls,
                "output_frame_flops": calls * count.total,
                "output_frame_flops_by_part": {k: calls * v for k, v in by_part.items()},
            })
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    parts = list(PARTS)
    print(f"{'config':8} {'params':>10} {'size':>6} {'GFLOP/stage':>12} {'GFLOP/frame':>12}  "
          + "  ".join(f"{p:>14}" for p in parts))
    for r in rows:
        shares = "  ".join(f"{r['stage_flops_by_part'][p] / 1e9:8.1f} ({100 * r['stage_flops_by_part'][p] / r['stage_flops']:3.0f}%)"
                           for p in parts)
        print(f"{r['config']:8} {r['params']:>10,} {r['size']:>6} {r['stage_flops'] / 1e9:12.1f} "
              f"{r['output_frame_flops'] / 1e9:12.1f}  {shares}")
    print(f"(parts: GFLOP per stage call; convention: {CONVENTION})")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.model_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="540p, 720p, 1080p or WIDTHxHEIGHT")
    parser.add_argument("--configs", nargs="+", default=None, help="tiny, paper (default: both, and shipped)")
    parser.add_argument("--note", default=None, help="conditions worth recording (e.g. background load)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "model_cost.json"))
    args = parser.parse_args(argv)
    result = envelope("model_cost", argv, args.note)
    result["convention"] = CONVENTION
    result["rows"] = cost_rows(bench_configs(args.configs), args.sizes)
    print_table(result["rows"])
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
