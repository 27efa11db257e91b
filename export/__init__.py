"""vsarvo.export: torch -> ONNX (every part of a stage, a whole stage, the vs-mlrt full model) and
ONNX -> TensorRT engines, each cached per frame size; torch-tensorrt as the second compile path.

Modules: ``graphs`` (what is exported), ``onnx_export`` (tracing, folding, checking, caching),
``checks`` (chunking and fp32-score checks on a graph), ``fold`` (constant folding),
``tensorrt_engine`` (engine building and cache), ``tensorrt_runner`` (running engines on CUDA
tensors), ``torch_tensorrt_compile``, ``cli``. Their cache folder comes from vsarvo.artifacts.
Importing this package imports neither TensorRT nor torch-tensorrt.
"""
from .graphs import PARTS, PRECISIONS, build_graph, graph_spec
from .onnx_export import cached_onnx, export_onnx, weights_digest

__all__ = ["PARTS", "PRECISIONS", "build_graph", "graph_spec", "cached_onnx", "export_onnx", "weights_digest"]
