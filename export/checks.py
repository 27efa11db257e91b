"""Checks on an exported ONNX graph: the aggregation is really chunked, and half graphs keep it in fp32.

Both properties can silently break (an exporter that lowers attention to one whole-volume
MatMul-Softmax-MatMul, a converter that casts everything to half), so they are read back from the
graph itself, with ONNX shape inference, rather than trusted.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto

__all__ = ["ExportCheckError", "OpInfo", "op_outputs", "check_chunked", "check_fp32_scores", "SCORE_OPS"]

# The ops of Eq. 2-3 as the chunked aggregation writes them: Q K^T and the V product, row max, exp, sums.
SCORE_OPS = ("MatMul", "ReduceMax", "Exp", "ReduceSum")


class ExportCheckError(RuntimeError):
    """An exported graph does not have a property the runtime relies on."""


@dataclass(frozen=True)
class OpInfo:
    """One node's first output: the node name, its element type (TensorProto enum) and static shape."""

    name: str
    elem_type: int
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


def op_outputs(model: onnx.ModelProto, op_type: str) -> list[OpInfo]:
    """Type and shape of the first output of every ``op_type`` node, from ONNX shape inference."""
    # data_prop folds the Shape -> Gather -> Concat chains the tracer leaves in front of Reshape.
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    graph = inferred.graph
    known = {v.name: v.type.tensor_type for v in (*graph.value_info, *graph.output, *graph.input)}
    infos = []
    for node in graph.node:
        if node.op_type != op_type:
            continue
        tensor = known.get(node.output[0])
        if tensor is None:
            raise ExportCheckError(f"shape inference gave no type for {node.name}'s output")
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        infos.append(OpInfo(node.name, tensor.elem_type, dims))
    return infos


def check_chunked(model: onnx.ModelProto, *, max_block: int) -> list[OpInfo]:
    """Every MatMul's last two dimensions (one score block) hold at most ``max_block`` elements.

    The products with V, [rows, keys] @ [keys, C], stay within the bound too as long as no level has
    fewer keys than C channels, which ``vsarvo.model.volume.CHUNK_ELEMENTS`` = 2^24 guarantees for
    any C up to 4096: fewer keys than C means fewer than 4^L * C queries in all.

    Returns the MatMuls (non-empty: a graph with an aggregation has them). Raises ExportCheckError
    naming the first MatMul that materialises a larger block, e.g. the whole volume.
    """
    matmuls = op_outputs(model, "MatMul")
    if not matmuls:
        raise ExportCheckError("the graph has no MatMul: the aggregation is missing or was lowered unexpectedly")
    for info in matmuls:
        if -1 in info.shape:
            raise ExportCheckError(f"{info.name} has a dynamic shape {info.shape}; the chunked graph must be static")
        block = info.shape[-2] * info.shape[-1]
        if block > max_block:
            raise ExportCheckError(
                f"{info.name} materialises a {info.shape[-2]}x{info.shape[-1]} score block "
                f"({block} elements > {max_block}): the aggregation is not chunked"
            )
    return matmuls


def check_fp32_scores(model: onnx.ModelProto) -> None:
    """Every score op (SCORE_OPS) computes in float32; raises ExportCheckError naming one that does not.

    The flow net's ops (named under ``/flow/``) are exempt: its cost volume sums products of unit-length
    features, bounded by 1, which half precision holds; only the aggregation's unbounded scores overflow.
    """
    for op_type in SCORE_OPS:
        for info in op_outputs(model, op_type):
            if "/flow/" in info.name:
                continue
            if info.elem_type != TensorProto.FLOAT:
                raise ExportCheckError(
                    f"{info.name} ({op_type}) computes in {TensorProto.DataType.Name(info.elem_type)}; "
                    "the aggregation's scores, max, exp and sums must stay float32"
                )
