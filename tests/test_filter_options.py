"""The filter's one list of options: it names exactly Deblur's keywords with Deblur's defaults, and the
command-line flags and settings built from it give the filter what the user asked for."""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import pytest

from vsarvo.filter_options import OPTIONS, PIXEL_OPTIONS, add_arguments, deblur_kwargs, pixel_settings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_the_list_names_every_deblur_keyword_with_its_default_and_nothing_else() -> None:
    from vsarvo.filter import Deblur

    parameters = list(inspect.signature(Deblur).parameters.values())[1:]  # after the clip
    assert [o.name for o in OPTIONS] == [p.name for p in parameters]
    for option, parameter in zip(OPTIONS, parameters):
        assert option.default == parameter.default, option.name


def test_pixel_changing_options() -> None:
    assert PIXEL_OPTIONS == ("weights", "backend", "precision", "stages", "scene_change", "sc_threshold", "nonfinite")


def test_no_flags_give_no_keywords_so_the_filter_defaults_apply() -> None:
    assert deblur_kwargs(parse([])) == {}


def test_flags_become_deblur_keywords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = parse(["--weights", "w.safetensors", "--backend", "trt", "--workspace", "2048", "--tile", "256",
                  "--tile-overlap", "8", "--no-scene-change", "--sc-threshold", "0.3", "--precision", "bf16",
                  "--optimization-level", "5", "--cache-dir", "/c"])
    assert deblur_kwargs(args) == {
        "weights": str(tmp_path / "w.safetensors"), "backend": "trt", "precision": "bf16", "tile": 256,
        "tile_overlap": 8, "scene_change": False, "sc_threshold": 0.3, "workspace": 2048,
        "optimization_level": 5, "cache_dir": "/c",
    }


def test_bad_flag_values_are_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--compile", "--compile-mode", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_compile_mode_flag_reaches_the_torch_backend_object() -> None:
    from vsarvo.backends import Backend
    from vsarvo.filter import _backend_options

    kwargs = deblur_kwargs(parse(["--backend", "torch", "--compile", "--compile-mode", "max-autotune"]))
    assert kwargs == {"backend": "torch", "compile": True, "compile_mode": "max-autotune"}
    backend = kwargs.pop("backend")
    assert _backend_options(backend, kwargs) == Backend.Torch(compile=True, compile_mode="max-autotune")
    # As core.arvo.Deblur hands it over: compile as an int, the mode as VapourSynth data (bytes).
    assert _backend_options("torch", {"compile": 1, "compile_mode": b"reduce-overhead"}) == Backend.Torch(
        compile=True, compile_mode="reduce-overhead")


def test_compile_mode_without_compile_is_a_filter_error_naming_the_fix() -> None:
    import vapoursynth as vs

    from vsarvo.filter import Deblur

    clip = vs.core.std.BlankClip(format=vs.RGBS, width=64, height=64, length=2)
    with pytest.raises(vs.Error, match="compile_mode='max-autotune' needs compile=True: pass compile=True"):
        Deblur(clip, backend="torch", compile_mode="max-autotune")


def test_settings_hash_input_fills_defaults_and_leaves_speed_options_out() -> None:
    given = pixel_settings({"backend": "auto", "tile": 64, "workspace": 1024}, weights_digest="abc")
    assert given == pixel_settings({}, weights_digest="abc")
    assert given == {"weights_sha256": "abc", "backend": "auto", "precision": None, "stages": None,
                     "scene_change": True, "sc_threshold": 0.1}
    assert pixel_settings({"stages": 1}, weights_digest="abc")["stages"] == 1


def test_nonfinite_enters_the_settings_hash_only_when_not_the_default() -> None:
    assert "nonfinite" not in pixel_settings({"nonfinite": "error"}, weights_digest="abc")
    assert pixel_settings({"nonfinite": "replace"}, weights_digest="abc")["nonfinite"] == "replace"


def test_the_filter_takes_what_the_flags_give(tmp_path: Path) -> None:
    import vapoursynth as vs

    from vsarvo.filter import Deblur
    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    weights = save_model(ARVo(ARVoConfig.tiny()), tmp_path / "w.safetensors")
    args = parse(["--weights", str(weights), "--backend", "torch", "--device", "cpu", "--no-compile",
                  "--no-channels-last", "--tile", "64", "--stages", "1", "--streams", "2"])
    clip = vs.core.std.BlankClip(format=vs.RGBS, width=64, height=64, length=2)
    out = Deblur(clip, **deblur_kwargs(args))
    assert (out.width, out.height, out.num_frames, out.format.id) == (64, 64, 2, vs.RGBS)


def test_core_arvo_deblur_and_vsarvo_deblur_hand_compile_mode_to_torch_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vapoursynth as vs

    import vsarvo
    from vsarvo.backends import torch_backend
    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    modes = []

    def recording_compile(module, **kwargs):  # noqa: ANN001, ANN202 - torch.compile's signature
        modes.append(kwargs["mode"])
        return module  # a real compile on the CPU is too slow for a unit test

    monkeypatch.setattr(torch_backend.torch, "compile", recording_compile)
    clip = vs.core.std.BlankClip(format=vs.RGBS, width=64, height=64, length=2)
    on_cpu = {"backend": "torch", "device": "cpu", "tile": 64}  # one runner per Deblur call: a new tile each
    weights = str(save_model(ARVo(ARVoConfig.tiny()), tmp_path / "w.safetensors"))
    vs.core.arvo.Deblur(clip, weights=weights, compile=1, compile_mode="max-autotune", **on_cpu)
    vsarvo.Deblur(clip, weights=weights, compile=True, compile_mode="reduce-overhead", **{**on_cpu, "tile": 32})
    assert modes == ["max-autotune", "reduce-overhead"]
