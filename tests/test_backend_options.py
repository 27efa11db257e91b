"""The backend objects (vsarvo.Backend.*), the one mapping of flat arguments and "auto" onto them,
and the one device/precision choice and precision list every backend and the export share.

There is no GPU and no TensorRT here: the tests of "auto" patch the two probes it reads
(``_tensorrt_installed``, ``_cuda_present``, and torch.cuda where a runner's device is resolved) so
that each machine the rule distinguishes can be checked on this one.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vsarvo.backends import options
from vsarvo.backends.base import DTYPES, BackendError, resolve_device, resolve_precision
from vsarvo.backends.options import PRECISIONS, Backend, choose_auto, from_flat


def machine(monkeypatch: pytest.MonkeyPatch, *, tensorrt: bool, cuda: bool) -> None:
    """Pretend TensorRT is (not) installed and a CUDA GPU is (not) present."""
    monkeypatch.setattr(options, "_tensorrt_installed", lambda: tensorrt)
    monkeypatch.setattr(options, "_cuda_present", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))


# --- "auto" --------------------------------------------------------------------------------------

def test_auto_is_tensorrt_where_it_is_installed_and_a_gpu_is_present(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, tensorrt=True, cuda=True)
    assert from_flat("auto") == Backend.TRT()
    assert from_flat("auto", precision="fp32", workspace=1024) == Backend.TRT(precision="fp32", workspace=1024)


def test_auto_without_tensorrt_is_torch_on_the_gpu_in_fp16(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, tensorrt=False, cuda=True)
    chosen = from_flat("auto")
    assert chosen == Backend.Torch()
    device = resolve_device(chosen.device)
    assert (str(device), resolve_precision(chosen.precision, device)) == ("cuda:0", "fp16")


def test_auto_without_a_gpu_is_torch_on_the_cpu_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, tensorrt=True, cuda=False)
    chosen = from_flat("auto")
    assert chosen == Backend.Torch()
    device = resolve_device(chosen.device)
    assert (str(device), resolve_precision(chosen.precision, device)) == ("cpu", "fp32")


def test_auto_with_device_cpu_is_torch_even_with_tensorrt_and_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, tensorrt=True, cuda=True)
    assert choose_auto("cpu") == "torch" and choose_auto("cuda:0") == "trt" and choose_auto(None) == "trt"


def test_auto_refuses_an_option_of_a_backend_it_did_not_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, tensorrt=False, cuda=False)
    with pytest.raises(ValueError, match=r"workspace is not an option of the torch backend \(backend='auto' "
                                         r"chose 'torch' on this machine\); it needs backend='trt'"):
        from_flat("auto", workspace=2048)


# --- flat arguments ------------------------------------------------------------------------------

def test_flat_arguments_become_the_named_backends_object() -> None:
    assert from_flat("torch", device="cpu", compile=True, channels_last=False) == Backend.Torch(
        device="cpu", compile=True, channels_last=False)
    assert from_flat("ort", threads=3, cache_dir="/c") == Backend.ORT(threads=3, cache_dir="/c")
    trt = from_flat("trt", workspace=2048, optimization_level=5, cache_dir="/c")
    assert trt == Backend.TRT(workspace=2048, optimization_level=5, cache_dir="/c")
    assert trt.workspace_bytes == 2048 << 20


def test_compile_mode_maps_onto_the_torch_object_with_compile() -> None:
    assert from_flat("torch", compile=True, compile_mode="max-autotune-no-cudagraphs") == Backend.Torch(
        compile=True, compile_mode="max-autotune-no-cudagraphs")
    assert from_flat("torch", compile=True, compile_mode=None).compile_mode is None
    assert options.COMPILE_MODES == ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
    with pytest.raises(ValueError, match="compile_mode='reduce-overhead' needs compile=True"):
        from_flat("torch", compile_mode="reduce-overhead")
    with pytest.raises(ValueError, match="compile_mode is not an option of the trt backend; it needs backend='torch'"):
        from_flat("trt", compile_mode="default")


@pytest.mark.parametrize("mode", [None, "max-autotune"])
def test_the_torch_runner_hands_compile_mode_to_torch_compile(
    mode: str | None, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vsarvo.backends import create_runner, torch_backend
    from vsarvo.model import ARVo, ARVoConfig
    from vsarvo.weights import save_model

    calls = []

    def recording_compile(module, **kwargs):  # noqa: ANN001, ANN202 - torch.compile's signature
        calls.append((module, kwargs))
        return module  # a real compile on the CPU is too slow for a unit test

    monkeypatch.setattr(torch_backend.torch, "compile", recording_compile)
    weights = save_model(ARVo(ARVoConfig.tiny()), tmp_path / "w.safetensors")
    runner = create_runner(Backend.Torch(device="cpu", compile=True, compile_mode=mode), weights=str(weights))
    assert calls == [(runner.stage, {"dynamic": False, "mode": mode})]
    create_runner(Backend.Torch(device="cpu"), weights=str(weights))
    assert len(calls) == 1  # compile=False: not compiled


def test_none_counts_as_not_given() -> None:
    assert from_flat("ort", compile=None, workspace=None, device=None) == Backend.ORT()


def test_an_option_of_another_backend_names_the_backends_that_have_it() -> None:
    with pytest.raises(ValueError, match=r"compile is not an option of the ort backend; it needs backend='torch'"):
        from_flat("ort", compile=True)
    with pytest.raises(ValueError, match=r"cache_dir is not an option of the torch backend; it needs "
                                         r"backend='ort' or backend='trt'"):
        from_flat("torch", cache_dir="/c")


def test_unknown_backend_and_unknown_option_are_refused() -> None:
    with pytest.raises(ValueError, match="backend must be one of auto, torch, ort, trt, got 'tf'"):
        from_flat("tf")
    with pytest.raises(ValueError, match="turbo is not a backend option"):
        from_flat("torch", turbo=True)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Backend.Torch(precision="fp8"), "precision must be one of fp32, fp16, bf16, got 'fp8'"),
    (lambda: Backend.Torch(compile=1), "compile must be True or False, got 1"),
    (lambda: Backend.Torch(compile=True, compile_mode="fast"),
     "compile_mode must be one of default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs, got 'fast'"),
    (lambda: Backend.Torch(compile_mode="max-autotune"),
     "compile_mode='max-autotune' needs compile=True: pass compile=True"),
    (lambda: Backend.ORT(threads=0), "threads must be an integer >= 1, got 0"),
    (lambda: Backend.TRT(optimization_level=6), r"optimization_level must be an integer in 0..5, got 6"),
    (lambda: Backend.TRT(workspace=-1), "workspace must be an integer >= 1, got -1"),
    (lambda: Backend.TRT(device=0), "device must be a string"),
])
def test_bad_option_values_are_refused_naming_them(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_backend_objects_are_frozen_and_hashable() -> None:
    trt = Backend.TRT(workspace=512)
    with pytest.raises(AttributeError):
        trt.workspace = 1024  # type: ignore[misc]
    assert {trt: 1}[Backend.TRT(workspace=512)] == 1


def test_torch_only_options_live_only_on_torch() -> None:
    assert options.FLAT_OPTIONS["compile"] == ("torch",)
    assert options.FLAT_OPTIONS["channels_last"] == ("torch",)
    assert options.FLAT_OPTIONS["compile_mode"] == ("torch",)
    assert options.FLAT_OPTIONS["workspace"] == ("trt",)
    assert options.FLAT_OPTIONS["device"] == ("torch", "ort", "trt")


# --- device and precision --------------------------------------------------------------------------

def test_precision_default_is_fp16_on_a_gpu_for_half_float_clips_and_all_others() -> None:
    assert resolve_precision(None, torch.device("cuda", 0)) == "fp16"
    assert resolve_precision(None, torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_a_missing_gpu_is_a_backend_error_with_the_backends_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, tensorrt=False, cuda=True)
    with pytest.raises(BackendError, match="requested but it needs the provider; use device='cpu'"):
        resolve_device("cuda:0", cuda_usable=False, cuda_missing="it needs the provider")
    with pytest.raises(BackendError, match="does not exist: 1 CUDA device"):
        resolve_device("cuda:1")
    with pytest.raises(BackendError, match="not a device name"):
        resolve_device("gpu please")


def test_one_precision_list_for_backends_export_and_command_lines() -> None:
    import argparse

    from vsarvo.export import graphs
    from vsarvo.export.cli import add_parser
    from vsarvo.filter_options import OPTIONS

    assert PRECISIONS == ("fp32", "fp16", "bf16")
    assert tuple(DTYPES) == PRECISIONS and graphs.PRECISIONS is PRECISIONS
    assert next(o for o in OPTIONS if o.name == "precision").choices is PRECISIONS
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    export = parser._subparsers._group_actions[0].choices["export"]
    assert next(a for a in export._actions if a.dest == "precision").choices is PRECISIONS


def test_backend_options_filter_options_and_the_cache_load_neither_torch_nor_vapoursynth() -> None:
    code = ("import sys, vsarvo.backends, vsarvo.filter_options, vsarvo.artifacts, vsarvo; vsarvo.Backend.TRT(); "
            "print('torch' in sys.modules, 'vapoursynth' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]
