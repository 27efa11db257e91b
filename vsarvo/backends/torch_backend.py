"""PyTorch backend: eager or torch.compile, CPU or CUDA, fp32 / fp16 / bf16."""
from __future__ import annotations

import sys
import threading

import torch

from .base import DTYPES, BackendError, StageRunner, resolve_device, resolve_precision
from .options import Backend
from .tiling_limits import MIN_TILE

__all__ = ["TorchRunner", "tile_ladder"]

# Tile edges tried, largest first, when a whole frame does not fit in GPU memory.
_TILE_EDGES = (2048, 1024, 512, 256, 128, 64)


def tile_ladder(height: int, width: int) -> list[int]:
    """The tile edges to try for a frame that ran out of memory untiled: those of ``_TILE_EDGES`` (all
    multiples of MIN_TILE) that still cut the frame, largest first."""
    return [t for t in _TILE_EDGES if t >= MIN_TILE and t < max(height, width)]


class _CallSlot:
    """What a call on CUDA borrows for its duration: a stream of its own (so that concurrent calls,
    ``streams>1``, overlap on the GPU instead of queueing on the default stream) and page-locked host
    buffers for the three inputs and the output (so the copies are asynchronous DMA on that stream).
    Slots are reused, and there are never more than calls that ran at once."""

    def __init__(self, device: torch.device) -> None:
        self.stream = torch.cuda.Stream(device)
        self.shape: torch.Size | None = None
        self.inputs: list[torch.Tensor] = []
        self.output: torch.Tensor | None = None

    def buffers(self, shape: torch.Size) -> tuple[list[torch.Tensor], torch.Tensor]:
        if shape != self.shape:
            self.inputs = [torch.empty(shape, dtype=torch.float32, pin_memory=True) for _ in range(3)]
            self.output = torch.empty(shape, dtype=torch.float32, pin_memory=True)
            self.shape = shape
        return self.inputs, self.output


class TorchRunner(StageRunner):
    """Runs the stage with PyTorch. Half precision keeps the aggregation's scores, exp and sums in fp32.

    On CUDA a frame size that runs out of memory untiled (4K in the paper configuration on a small GPU) is
    run in exact tiles instead, the largest of ``tile_ladder`` that fits; the choice is kept per size and
    said once on stderr. An explicit ``tile`` is never changed: running out of memory with it is an error.

    ``compile=True`` runs ``torch.compile(stage, mode=compile_mode)`` (None: torch's default mode).
    "reduce-overhead" and, on a GPU, "max-autotune" replay CUDA graphs, which torch records per thread
    (torch._inductor.cudagraph_trees keeps one graph tree per device in thread-local storage, and
    serialises captures across threads): with ``streams>1`` every calling thread records its own graphs,
    so "default" or "max-autotune-no-cudagraphs" are the safer choice there.
    """

    name = "torch"

    def __init__(self, options: Backend.Torch, *, weights: str | None = None, tile: int | None = None,
                 tile_overlap: int | None = None) -> None:
        self.options = options
        self.tile, self.tile_overlap = tile, tile_overlap
        dev = resolve_device(options.device)
        self.device = str(dev)
        self.precision = resolve_precision(options.precision, dev)
        self.dtype = DTYPES[self.precision]
        model = self._load_weights(weights, tile, tile_overlap)
        self.stage = model.stage.to(device=dev, dtype=self.dtype).eval()
        self._memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.stage.to(memory_format=self._memory_format)
        self._dev = dev
        self._cuda = dev.type == "cuda"
        if self._cuda and self.precision == "fp32":
            # cuDNN runs fp32 convolutions in TF32 by default (10-bit mantissa): on an H200 that put the
            # stage 2e-3 away from the CPU's. fp32 here means fp32; fp16/bf16 are the fast paths.
            torch.backends.cudnn.allow_tf32 = False
        self._forward = (torch.compile(self.stage, dynamic=False, mode=options.compile_mode) if options.compile
                         else self.stage)
        if self._cuda:
            torch.cuda.synchronize(dev)  # the layout change ran on the default stream; calls run on their own
        self._free_slots: list[_CallSlot] = []
        self._slots_lock = threading.Lock()
        self.auto_tiles: dict[tuple[int, int], int] = {}  # (H, W) -> tile edge chosen after running out of memory
        self._auto_tiles_lock = threading.Lock()

    @torch.inference_mode()
    def run(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        height, width = ref.shape[-2:]
        tile = self.tile if self.tile is not None else self.auto_tiles.get((height, width))
        while True:
            try:
                return self._call(prev, ref, nxt, tile)
            except torch.OutOfMemoryError as exc:
                if self.tile is not None:
                    raise BackendError(
                        f"out of GPU memory at {width}x{height} with tile={self.tile}: use a smaller tile, "
                        "precision='fp16', fewer streams, or leave tile unset to have it chosen"
                    ) from exc
                tile = self._smaller_tile(height, width, tile, exc)

    def _smaller_tile(self, height: int, width: int, failed: int | None, exc: torch.OutOfMemoryError) -> int:
        """The next tile edge below ``failed`` (None: untiled) for this frame size, recorded for later calls."""
        torch.cuda.empty_cache()
        smaller = [t for t in tile_ladder(height, width) if failed is None or t < failed]
        if not smaller:
            raise BackendError(
                f"out of GPU memory at {width}x{height} even in {failed}-pixel tiles: free GPU memory (other "
                "processes), use fewer streams or precision='fp16', or run on another device"
            ) from exc
        with self._auto_tiles_lock:
            known = self.auto_tiles.get((height, width))
            if known is not None and known <= smaller[0]:
                return known  # another call already went further down the ladder
            self.auto_tiles[(height, width)] = smaller[0]
        print(f"vsarvo: {width}x{height} does not fit in the memory of {self.device} "
              f"{'untiled' if failed is None else f'in {failed}-pixel tiles'}; running it in exact "
              f"{smaller[0]}-pixel tiles (pass tile= to choose)", file=sys.stderr)
        return smaller[0]

    def _call(self, prev: torch.Tensor, ref: torch.Tensor, nxt: torch.Tensor, tile: int | None) -> torch.Tensor:
        if not self._cuda:
            args = [x.to(self._dev, self.dtype).contiguous(memory_format=self._memory_format) for x in (prev, ref, nxt)]
            out = self._forward(*args, tile=tile, tile_overlap=self.tile_overlap)
            return out.clamp_(0, 1).float().contiguous()
        with self._slots_lock:
            slot = self._free_slots.pop() if self._free_slots else None
        slot = slot or _CallSlot(self._dev)
        staged, result = slot.buffers(ref.shape)
        try:
            with torch.cuda.stream(slot.stream):
                args = []
                for host, x in zip(staged, (prev, ref, nxt)):
                    host.copy_(x)
                    args.append(host.to(self._dev, non_blocking=True).to(self.dtype)
                                .contiguous(memory_format=self._memory_format))
                out = self._forward(*args, tile=tile, tile_overlap=self.tile_overlap)
                result.copy_(out.clamp_(0, 1), non_blocking=True)
            slot.stream.synchronize()  # the result's copy has landed
            return result.clone()
        finally:
            # Handed back idle (after an error too): the next call with this slot refills its buffers.
            slot.stream.synchronize()
            with self._slots_lock:
                self._free_slots.append(slot)
