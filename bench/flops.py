"""The FLOP convention every benchmark uses, and one counter for every model compared.

Convention: 1 multiply-add = 2 FLOPs. Counted: convolutions (transposed ones included), matrix
products (mm, bmm, addmm, matmul), attention (``scaled_dot_product_attention``: 2·Lq·Lk·D for the
scores plus 2·Lq·Lk·Dv for the weighted sum) and deformable convolutions (counted by hand as the
dense convolution of the same shape). Not counted: bias additions, activations, normalisation,
pooling, interpolation and grid sampling (also the deformable convolutions' bilinear sampling and
modulation mask), softmax and exp, and other elementwise products (PWC-Net's local correlation,
channel-averaged products, among them).

Counting runs ``torch.utils.flop_counter.FlopCounterMode`` on fake tensors (FakeTensorMode): the
model runs shape-only at the real frame size, so nothing is computed and nothing is extrapolated.
Two formulas are added to torch's table: the CPU attention kernel (which torch's table lacks) and
torchvision's ``deform_conv2d`` (which it does not know).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["CONVENTION", "FlopCount", "count_flops", "conv2d_flops", "attention_flops"]

CONVENTION = (
    "1 multiply-add = 2 FLOPs; counted: convolutions, matrix products, attention (2*Lq*Lk*(D+Dv)) and "
    "deformable convolutions (by hand, as the dense convolution of the same shape); not counted: bias, "
    "activations, pooling, interpolation, grid sampling, softmax/exp and other elementwise work (PWC-Net's "
    "local correlation among it). Counted with torch.utils.flop_counter.FlopCounterMode on fake tensors "
    "at the real frame size."
)


def conv2d_flops(*, batch: int, out_channels: int, out_height: int, out_width: int,
                 in_channels_per_group: int, kernel: tuple[int, int]) -> int:
    """2 * (multiply-adds of a 2-D convolution): 2·N·Cout·Hout·Wout·(Cin/groups)·kh·kw."""
    return 2 * batch * out_channels * out_height * out_width * in_channels_per_group * kernel[0] * kernel[1]


def attention_flops(*, batch_heads: int, queries: int, keys: int, dim: int, value_dim: int) -> int:
    """2 * (multiply-adds of softmax(Q Kᵀ) V): scores 2·Lq·Lk·D plus weighted sum 2·Lq·Lk·Dv."""
    return 2 * batch_heads * queries * keys * (dim + value_dim)


def _deform_conv2d_formula(input_shape: Sequence[int], weight_shape: Sequence[int], *args: Any,
                           out_shape: Sequence[int], **kwargs: Any) -> int:
    # torchvision::deform_conv2d(input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
    # dil_h, dil_w, groups, offset_groups, use_mask): weight is [Cout, Cin/groups, kh, kw].
    n, cout, h, w = out_shape
    return conv2d_flops(batch=n, out_channels=cout, out_height=h, out_width=w,
                        in_channels_per_group=weight_shape[1], kernel=(weight_shape[2], weight_shape[3]))


def _cpu_attention_formula(query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int],
                           *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    b, h, lq, d = query_shape
    return attention_flops(batch_heads=b * h, queries=lq, keys=key_shape[-2], dim=d, value_dim=value_shape[-1])


def _formulas() -> dict[Any, Callable[..., int]]:
    formulas: dict[Any, Callable[..., int]] = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_formula,
    }
    try:
        # Registered only once torchvision's C++ ops are loaded (importing torchvision loads them).
        formulas[torch.ops.torchvision.deform_conv2d] = _deform_conv2d_formula
    except (AttributeError, RuntimeError):
        pass
    return formulas


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one call: ``total``, per module path (``by_module``, each including its children, as
    FlopCounterMode reports them, root named by its class) and per operator (``by_op``)."""

    total: int
    by_module: dict[str, int]
    by_op: dict[str, int]

    def part(self, prefixes: str | Iterable[str]) -> int:
        """FLOPs under one or more module paths.

        A path that was called as a module counts as reported; one that was not (a container whose
        children the parent calls directly) counts as the sum of its direct children.
        """
        total = 0
        for prefix in [prefixes] if isinstance(prefixes, str) else prefixes:
            if prefix in self.by_module:
                total += self.by_module[prefix]
                continue
            depth = prefix.count(".") + 1
            total += sum(v for k, v in self.by_module.items() if k.startswith(prefix + ".") and k.count(".") == depth)
        return total


def count_flops(fn: Callable[..., Any], *shapes: Sequence[int], dtype: torch.dtype = torch.float32) -> FlopCount:
    """Count the FLOPs of ``fn(*inputs)`` for inputs of the given shapes, shape-only (nothing computed).

    ``fn`` is a module or any callable; its parameters may be ordinary CPU tensors. Inputs are fake
    CPU tensors of ``dtype``.
    """
    formulas = _formulas()
    with FakeTensorMode(allow_non_fake_inputs=True):
        inputs = [torch.empty(tuple(s), dtype=dtype) for s in shapes]
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=formulas) as counter:
            fn(*inputs)
    counts = counter.get_flop_counts()
    by_module = {name: int(sum(ops.values())) for name, ops in counts.items() if name != "Global"}
    by_op = {str(op): int(v) for op, v in counts.get("Global", {}).items()}
    return FlopCount(total=int(counter.get_total_flops()), by_module=by_module, by_op=by_op)
