"""Constant folding for the static graphs the exporter traces.

PyTorch's tracer computes pad widths and reshape targets with Shape -> Gather -> Concat chains even
when every shape is fixed; ONNX shape inference cannot see through some of them (the stage's edge Pad
is one), which leaves every tensor after them without a static shape. Folding those chains into
constants gives a graph whose every shape is known, which the graph checks, TensorRT and vs-mlrt all
prefer, and which computes exactly the same values.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

__all__ = ["fold_constants"]

# Folded tensors larger than this stay computed: folding must not bloat the file with big constants.
MAX_FOLDED_ELEMENTS = 1 << 16
# Ops that are not functions of their inputs alone.
_NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {}
    for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    return shapes


def _evaluate(node: onnx.NodeProto, feeds: dict[str, np.ndarray], opset: int) -> np.ndarray:
    """One node's output, with the semantics of the graph's opset (not the newest one)."""
    single = helper.make_graph(
        [node], "fold", [helper.make_empty_tensor_value_info(name) for name in feeds],
        [helper.make_empty_tensor_value_info(node.output[0])],
    )
    return np.asarray(ReferenceEvaluator(single, opsets={"": opset}).run(None, feeds)[0])


def _fold_pass(model: onnx.ModelProto) -> int:
    """Fold every node computable from constants; returns how many nodes were folded."""
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    known = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    shapes = _static_shapes(model)
    kept, folded = [], 0
    for node in graph.node:
        value = None
        if node.op_type == "Shape" and node.input[0] in shapes and not node.attribute:
            value = np.asarray(shapes[node.input[0]], dtype=np.int64)
        elif (
            node.domain in ("", "ai.onnx") and len(node.output) == 1 and node.op_type not in _NONDETERMINISTIC
            and all(name == "" or name in known for name in node.input)
        ):
            feeds = {name: known[name] for name in node.input if name}
            value = _evaluate(node, feeds, opset)
        if value is not None and value.size <= MAX_FOLDED_ELEMENTS:
            known[node.output[0]] = value
            graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
            folded += 1
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return folded


def _prune(model: onnx.ModelProto) -> None:
    """Drop nodes and initializers nothing reads (walking back from the graph outputs)."""
    graph = model.graph
    needed = {out.name for out in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    inits = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def fold_constants(model: onnx.ModelProto, *, max_passes: int = 8) -> onnx.ModelProto:
    """Fold constant subgraphs (including Shape of statically shaped tensors) in place; returns ``model``."""
    for _ in range(max_passes):
        if _fold_pass(model) == 0:
            break
    _prune(model)
    return model
