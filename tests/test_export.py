"""ONNX export: parity with PyTorch, chunked aggregation, fp32 scores in half graphs, caching, CLI, vs-mlrt.

Graph exports cost seconds each on a small CPU, so graphs are exported once per module (fixtures)
at small odd sizes and shared by the tests that read them.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from vsarvo.export import checks
from vsarvo.export.checks import ExportCheckError
from vsarvo.export.graphs import build_graph, graph_spec
from vsarvo.export.onnx_export import cached_onnx, export_onnx, onnx_name, resolve_opset, weights_digest
from vsarvo.model import ARVo, ARVoConfig, restore_clip
from vsarvo.model import volume

H, W = 67, 95  # odd on purpose: the stage pads to a multiple of 4 and crops back


def _model(seed: int = 0) -> ARVo:
    """Tiny seeded model whose residual head is re-initialised: its output differs from the input by
    far more than the tolerances below, so parity is not met by an identity-like network."""
    torch.manual_seed(seed)
    model = ARVo(ARVoConfig.tiny()).eval()
    model.stage.reconstruction.decode_full[-1].reset_parameters()
    return model


def _run(path: Path, *inputs: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
    return session.run(None, feeds)[0]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.fixture(scope="module")
def model() -> ARVo:
    return _model()


@pytest.fixture(scope="module")
def frames() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.rand(1, 3, H, W, generator=generator) for _ in range(5)]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory, model: ARVo) -> dict[str, Path]:
    """Lazily exported graphs by (part, precision), shared by this module's tests."""
    folder = tmp_path_factory.mktemp("graphs")

    class Graphs(dict):
        def __missing__(self, key: str) -> Path:
            part, precision = key.split("/")
            self[key] = export_onnx(model, part, folder / f"{part}-{precision}.onnx", height=H, width=W,
                                    precision=precision)
            return self[key]

    return Graphs()


# --- parity with PyTorch ----------------------------------------------------------------------------

@pytest.mark.slow  # test_backends checks the same graph through the ort backend in the fast suite
def test_stage_graph_matches_pytorch_at_an_odd_size(graphs, model: ARVo, frames: list[torch.Tensor]) -> None:
    prev, ref, nxt = frames[:3]
    with torch.no_grad():
        expected = model.stage(prev, ref, nxt)
    assert (expected - ref).abs().max().item() > 0.05  # the stage really changes the frame
    out = _run(graphs["stage/fp32"], prev, ref, nxt)
    assert out.shape == (1, 3, H, W)
    assert np.abs(out - expected.numpy()).max() <= 1e-4


@pytest.mark.slow
def test_vs_mlrt_graph_matches_the_filters_two_stage_schedule(graphs, model: ARVo, frames: list[torch.Tensor]) -> None:
    clip = torch.cat(frames)  # five frames; the middle one's window is the whole clip
    expected = restore_clip(model, clip)[2:3]
    stacked = clip.reshape(1, 15, H, W)
    out = _run(graphs["mlrt/fp32"], stacked)
    assert out.shape == (1, 3, H, W)
    assert np.abs(out - expected.numpy()).max() <= 1e-4


@pytest.mark.parametrize("part", [pytest.param("flow", marks=pytest.mark.slow), "encoder", "aggregation",
                                  "reconstruction"])
def test_part_graph_matches_its_pytorch_module(graphs, model: ARVo, part: str) -> None:
    spec = graph_spec(model, part, height=H, width=W)
    generator = torch.Generator().manual_seed(2)
    inputs = [torch.rand(shape, generator=generator) for shape in spec.inputs.values()]
    with torch.no_grad():
        expected = build_graph(model, part, "fp32")(*inputs)
    out = _run(graphs[f"{part}/fp32"], *inputs)
    assert out.shape == tuple(spec.outputs.values())[0]
    assert np.abs(out - expected.numpy()).max() <= 1e-4


# --- the aggregation really is chunked --------------------------------------------------------------

@pytest.fixture(scope="module")
def small_chunk_aggregation(tmp_path_factory: pytest.TempPathFactory, model: ARVo) -> tuple[Path, int]:
    """The aggregation graph for 128x128 frames exported with 8192-element score blocks, so that its
    32x32 = 1024 query rows need several chunks at every level."""
    block = 8192
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(volume, "CHUNK_ELEMENTS", block)
        path = export_onnx(model, "aggregation", tmp_path_factory.mktemp("agg") / "agg.onnx", height=128, width=128)
    return path, block


def test_aggregation_graph_bounds_the_score_rows_of_every_matmul(small_chunk_aggregation) -> None:
    path, block = small_chunk_aggregation
    matmuls = checks.op_outputs(onnx.load(path), "MatMul")
    queries = 32 * 32
    assert all(m.shape[-2] * m.shape[-1] <= block and m.shape[-2] < queries for m in matmuls)
    # Level k pools the neighbour by 2^k: 256, 64 and 16 keys -> Q K^T blocks of 32, 128 and 512
    # rows, each followed by its product with V (C = 16 columns).
    assert {m.shape[-2:] for m in matmuls} == {(32, 256), (128, 64), (512, 16), (32, 16), (128, 16)}
    # 3 pairs x (32 + 8 + 2) chunks, each a Q K^T and a V product.
    assert len(matmuls) == 2 * 3 * (32 + 8 + 2)


def test_chunked_aggregation_graph_matches_the_literal_equations(small_chunk_aggregation, model: ARVo) -> None:
    path, _ = small_chunk_aggregation
    generator = torch.Generator().manual_seed(3)
    # Features scaled so raw dot products stay far below exp's overflow (cosine scores are bounded by
    # the temperature): the naive form must be finite.
    prev, ref, nxt = (0.2 * torch.rand(1, 16, 32, 32, generator=generator) for _ in range(3))
    agg = model.stage.aggregation
    expected = []
    with torch.no_grad():
        for nbr in (prev, ref, nxt):
            for k in range(1, agg.levels + 1):
                pooled = torch.nn.functional.max_pool2d(nbr, 2 ** k, 2 ** k, ceil_mode=True)
                expected.append(volume.aggregate_naive(*agg.query_key(ref, pooled, k), agg.phi[k - 1](pooled)))
    out = _run(path, prev, ref, nxt)
    assert np.abs(out - torch.cat(expected, dim=1).numpy()).max() <= 1e-4


def test_chunk_check_rejects_a_whole_volume_matmul() -> None:
    q = helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 1, 4096, 16])
    k = helper.make_tensor_value_info("kT", TensorProto.FLOAT, [1, 1, 16, 1024])
    s = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 4096, 1024])
    graph = helper.make_graph([helper.make_node("MatMul", ["q", "kT"], ["scores"], name="whole")], "g", [q, k], [s])
    with pytest.raises(ExportCheckError, match="whole materialises a 4096x1024"):
        checks.check_chunked(helper.make_model(graph), max_block=1 << 20)


# --- half precision ---------------------------------------------------------------------------------

@pytest.mark.parametrize("precision, half", [("fp16", TensorProto.FLOAT16), ("bf16", TensorProto.BFLOAT16)])
def test_half_graphs_keep_scores_in_fp32_and_convolutions_in_half(graphs, precision: str, half: int) -> None:
    graph = onnx.load(graphs[f"aggregation/{precision}"])
    for op in checks.SCORE_OPS:
        infos = checks.op_outputs(graph, op)
        assert infos and {i.elem_type for i in infos} == {TensorProto.FLOAT}, op
    assert {i.elem_type for i in checks.op_outputs(graph, "Conv")} == {half}
    assert {i.type.tensor_type.elem_type for i in (*graph.graph.input, *graph.graph.output)} == {TensorProto.FLOAT}


def test_fp32_score_check_rejects_a_half_matmul() -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT16, [1, 8, 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT16, [1, 4, 8])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT16, [1, 8, 8])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"], name="qk")], "g", [a, b], [c])
    with pytest.raises(ExportCheckError, match="qk .MatMul. computes in FLOAT16"):
        checks.check_fp32_scores(helper.make_model(graph))


def test_fp32_score_check_exempts_the_flow_nets_bounded_cosine_costs() -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT16, [1, 8, 4])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT16, [1, 1, 4])
    node = helper.make_node("ReduceSum", ["a"], ["c"], name="/inner/stage/flow/ReduceSum", keepdims=1)
    graph = helper.make_graph([node], "g", [a], [c])
    checks.check_fp32_scores(helper.make_model(graph))  # no error
    graph.node[0].name = "/inner/stage/aggregation/ReduceSum"
    with pytest.raises(ExportCheckError, match="aggregation/ReduceSum .ReduceSum. computes in FLOAT16"):
        checks.check_fp32_scores(helper.make_model(graph))


@pytest.mark.slow
def test_fp16_stage_graph_is_within_45_db_of_fp32(graphs, model: ARVo, frames: list[torch.Tensor]) -> None:
    prev, ref, nxt = frames[:3]
    with torch.no_grad():
        expected = model.stage(prev, ref, nxt).numpy()
    # onnxruntime's CPU provider runs the fp16 graph (upcasting ops it has no fp16 kernel for).
    out = _run(graphs["stage/fp16"], prev, ref, nxt)
    assert _psnr(out, expected) >= 45.0


@pytest.mark.slow
def test_bf16_stage_graph_is_within_45_db_of_fp32(graphs, model: ARVo, frames: list[torch.Tensor]) -> None:
    # onnxruntime's CPU provider has no bfloat16 Conv: ONNX's reference evaluator runs the graph instead.
    from onnx.reference import ReferenceEvaluator

    prev, ref, nxt = frames[:3]
    with torch.no_grad():
        expected = model.stage(prev, ref, nxt).numpy()
    feeds = {"prev": prev.numpy(), "ref": ref.numpy(), "next": nxt.numpy()}
    out = ReferenceEvaluator(onnx.load(graphs["stage/bf16"])).run(None, feeds)[0]
    assert _psnr(out, expected) >= 45.0


def test_bf16_graphs_need_opset_22() -> None:
    assert resolve_opset("bf16", None) == 22
    with pytest.raises(ValueError, match="opset for bf16 must be in 22"):
        resolve_opset("bf16", 17)


# --- caching ----------------------------------------------------------------------------------------

def test_cache_name_encodes_weights_shape_precision_and_opset() -> None:
    assert onnx_name("stage", "abc123", height=1080, width=1920, precision="fp16", opset=17) == (
        "arvo-stage-abc123-1920x1080-fp16-opset17.onnx"
    )
    assert onnx_name("stage", "abc123", height=720, width=1280, precision="fp32", opset=17, tile=512) == (
        "arvo-stage-abc123-1280x720-tile512oauto-fp32-opset17.onnx"
    )


def test_weights_digest_changes_with_any_weight(model: ARVo) -> None:
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.stage.encoder.full[0].bias[0] += 1e-3
    assert weights_digest(model) == weights_digest(copy.deepcopy(model))
    assert weights_digest(other) != weights_digest(model)


def test_cached_graph_is_exported_once(model: ARVo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cached_onnx(model, "reconstruction", height=64, width=64, folder=tmp_path)
    stamp = first.stat().st_mtime_ns
    monkeypatch.setattr("vsarvo.export.onnx_export.export_onnx", lambda *a, **k: pytest.fail("exported again"))
    second = cached_onnx(model, "reconstruction", height=64, width=64, folder=tmp_path)
    assert second == first and first.stat().st_mtime_ns == stamp
    assert first.parent == tmp_path / "onnx" and weights_digest(model) in first.name


def test_unwritable_cache_folder_falls_back_to_a_temporary_one(model: ARVo, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    (tmp_path / "system-temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-temp"))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    path = cached_onnx(model, "reconstruction", height=64, width=64, folder=blocker)
    assert path.is_file() and path.parent.parent.parent == tmp_path / "system-temp"


def test_export_rejects_parts_the_model_does_not_have() -> None:
    no_volume = ARVo(ARVoConfig.tiny(levels=0))
    with pytest.raises(ValueError, match="levels=0"):
        build_graph(no_volume, "aggregation", "fp32")


# --- command line -----------------------------------------------------------------------------------

def test_arvo_export_writes_the_requested_graphs(model: ARVo, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from vsarvo.cli import main
    from vsarvo.weights import save_model

    weights = save_model(model, tmp_path / "w.safetensors")
    code = main(["export", "--weights", str(weights), "--size", "64x64", "--part", "reconstruction",
                 "--precision", "fp32", "--precision", "fp16", "--out", str(tmp_path / "out")])
    assert code == 0
    printed = capsys.readouterr().out.split()
    digest = weights_digest(model)
    assert [Path(p).name for p in printed] == [
        f"arvo-reconstruction-{digest}-64x64-fp32-opset17.onnx",
        f"arvo-reconstruction-{digest}-64x64-fp16-opset17.onnx",
    ]
    assert all(Path(p).is_file() for p in printed)


# --- vs-mlrt ----------------------------------------------------------------------------------------

def _mlrt_ort_unavailable() -> str | None:
    try:
        import vapoursynth as vs
    except ImportError as exc:
        return f"vapoursynth is not importable ({exc})"
    if not hasattr(vs.core, "ort"):
        return "the vs-mlrt ort plugin is not loaded (pip install vapoursynth-mlrt-ort)"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_mlrt_ort_unavailable() is not None, reason=str(_mlrt_ort_unavailable()))
def test_vs_mlrt_ort_plugin_runs_the_stacked_frame_graph(graphs, model: ARVo, frames: list[torch.Tensor]) -> None:
    import vapoursynth as vs

    core = vs.core
    clip = torch.cat(frames)

    def as_clip(frame: torch.Tensor) -> vs.VideoNode:
        blank = core.std.BlankClip(format=vs.RGBS, width=W, height=H, length=1)

        def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
            out = f.copy()
            for plane in range(3):
                np.asarray(out[plane])[:] = frame[plane].numpy()
            return out

        return core.std.ModifyFrame(blank, blank, fill)

    # vs-mlrt concatenates its input clips' planes as channels: frames 0..4, RGB each.
    result = core.ort.Model([as_clip(f) for f in clip], network_path=str(graphs["mlrt/fp32"]), provider="CPU")
    out_frame = result.get_frame(0)
    out = np.stack([np.asarray(out_frame[p]) for p in range(3)])
    expected = restore_clip(model, clip)[2].numpy()
    assert np.abs(out - expected).max() <= 1e-4
