"""Executes a serialized TensorRT engine on CUDA tensors, on its own CUDA stream.

Reusable by anything that holds CUDA tensors (the trt backend, the filter): inputs are taken from the
caller's current stream and outputs handed back on it, with the copies in, the engine and the copies
out running on the runner's stream in between, so the caller never needs to synchronise by hand.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

from .tensorrt_engine import EngineBuildError, import_tensorrt, trt_logger

__all__ = ["EngineRunner"]


def _torch_dtypes(trt) -> dict:  # noqa: ANN001 - the tensorrt module
    dt = trt.DataType
    return {dt.FLOAT: torch.float32, dt.HALF: torch.float16, dt.BF16: torch.bfloat16, dt.INT32: torch.int32,
            dt.INT64: torch.int64, dt.BOOL: torch.bool, dt.INT8: torch.int8, dt.UINT8: torch.uint8}


class EngineRunner:
    """One deserialized engine and its execution context on one CUDA ``device``.

    ``runner(*inputs)`` takes tensors in the order of the engine's inputs (any device or dtype: they
    are moved and cast to what the engine declares), sets their shapes, and returns the outputs as new
    CUDA tensors in the engine's output order. Calls are serialised (one execution context).
    """

    def __init__(self, engine: str | os.PathLike[str] | bytes, *, device: torch.device,
                 stream: torch.cuda.Stream | None = None) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self.device = device
        plan = engine if isinstance(engine, bytes) else Path(engine).read_bytes()
        self._runtime = trt.Runtime(trt_logger(trt))
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineBuildError(
                "TensorRT could not load the engine (built by another TensorRT version or for another GPU?); "
                "delete it from the cache to rebuild"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        dtypes = _torch_dtypes(trt)
        self.dtypes = {n: dtypes[self.engine.get_tensor_dtype(n)] for n in names}
        self.stream = stream if stream is not None else torch.cuda.Stream(device=device)
        self._lock = threading.Lock()

    def __call__(self, *inputs: torch.Tensor, to_host: bool = False) -> list[torch.Tensor]:
        """Run the engine. Everything happens on the runner's stream, in order: the copies in (after the
        caller's stream has produced the inputs), the execution, and with ``to_host`` the copies out to
        CPU float32 tensors; the caller's stream then waits for it."""
        if len(inputs) != len(self.inputs):
            raise ValueError(f"the engine takes {len(self.inputs)} inputs {self.inputs}, got {len(inputs)}")
        caller = torch.cuda.current_stream(self.device)
        with self._lock:
            self.stream.wait_stream(caller)
            with torch.cuda.stream(self.stream):
                staged = [x.to(self.device, self.dtypes[n]).contiguous() for n, x in zip(self.inputs, inputs)]
                outputs = self._bind(staged)
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise EngineBuildError("TensorRT failed to execute the engine; its log (stderr) says why")
                if to_host:
                    outputs = [out.to("cpu", torch.float32) for out in outputs]
            if not to_host:
                # The caching allocator must not reuse these blocks while the caller still reads them.
                for out in outputs:
                    out.record_stream(caller)
            caller.wait_stream(self.stream)
        return outputs

    def _bind(self, staged: list[torch.Tensor]) -> list[torch.Tensor]:
        """Set the inputs' shapes and addresses, allocate the outputs beside them and bind those."""
        for name, x in zip(self.inputs, staged):
            if not self.context.set_input_shape(name, tuple(x.shape)):
                raise ValueError(f"input {name!r} of shape {tuple(x.shape)} is outside the engine's profile")
            self.context.set_tensor_address(name, x.data_ptr())
        outputs = []
        for name in self.outputs:
            out = staged[0].new_empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name])
            self.context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        return outputs
