"""All-range correlation volume pyramid and correlative aggregation (paper Sec. 3.2-3.3, Eq. 2-5).

Eq. 2-4 for one pair and level are softmax attention with scale 1:
``rho = softmax(Q K^T) V`` with Q the reference features, K the max-pooled neighbour features and
V = phi_k(K). ``aggregate_naive`` is the literal equations and the executable specification;
``aggregate`` is the deployable form that never materialises the whole volume.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .normalize import unit_vectors

__all__ = ["aggregate_naive", "aggregate", "auto_chunk", "CorrelativeAggregation"]

# Largest score block the chunked path materialises at once (elements): 2**24 floats = 64 MiB in fp32.
CHUNK_ELEMENTS = 1 << 24
# Dtypes whose Q, K, V go into SDPA as they are (its kernels accumulate the scores in fp32).
HALF_DTYPES = (torch.float16, torch.bfloat16)
# Head width multiple the half-precision flash / memory-efficient kernels require (16 bytes of fp16/bf16).
HEAD_ALIGN = 8


def _as_tokens(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> contiguous [B, 1, H*W, C] (one attention head; layout matters for SDPA's kernels)."""
    b, c, h, w = x.shape
    return x.flatten(2).transpose(1, 2).unsqueeze(1).contiguous()


def _from_tokens(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[B, 1, H*W, C] tokens -> [B, C, H, W], a view of them: channels-last strides for contiguous tokens."""
    b, _, _, c = t.shape
    return t.reshape(b, h, w, c).permute(0, 3, 1, 2)


def aggregate_naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Literal Eq. 2-4: C = exp(q . k) for every pixel pair, normalised over neighbour positions, times v.

    q [B, C, H, W]; k, v [B, C, h, w] -> [B, C, H, W]. Materialises the whole [B, H*W, h*w] volume and
    overflows to inf/nan once a dot product exceeds ~88 (fp32): it is the reference, not for deployment.
    """
    h, w = q.shape[-2:]
    qt, kt, vt = (_as_tokens(x).squeeze(1) for x in (q, k, v))
    volume = torch.exp(qt @ kt.transpose(1, 2))  # Eq. 2
    normalised = volume / volume.sum(dim=-1, keepdim=True)  # Eq. 3
    out = normalised @ vt  # Eq. 4
    return _from_tokens(out.unsqueeze(1), h, w)


def auto_chunk(keys: int) -> int:
    """Query rows per chunk so one score block stays under CHUNK_ELEMENTS (at least 1 row)."""
    return max(1, CHUNK_ELEMENTS // max(keys, 1))


def _half_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scale-1 attention on [B, C, H, W] maps in their own half dtype -> [B, 1, H*W, C] tokens.

    Contiguous [B, 1, L, C] fp16/bf16 tokens are what SDPA's flash and memory-efficient kernels (and the
    CPU's flash kernel) take; they accumulate the scores, the running row maximum, exp and the sums in
    fp32 inside the kernel, so the volume is neither materialised nor rounded to half (SDPA's math
    fallback upcasts half inputs to fp32 too, unless ``allow_fp16_bf16_reduction_math_sdp``). Those kernels
    need the head width to be a multiple of ``HEAD_ALIGN``: zero channels appended to Q and K leave
    every dot product unchanged, appended to V they add output channels that are cut off again.
    """
    qt, kt, vt = (_as_tokens(x) for x in (q, k, v))
    channels = qt.shape[-1]
    pad = (-channels) % HEAD_ALIGN
    if pad:
        qt, kt, vt = (F.pad(t, (0, pad)) for t in (qt, kt, vt))
    out = F.scaled_dot_product_attention(qt, kt, vt, scale=1.0)
    return out[..., :channels] if pad else out


def _chunked_attention(qt: torch.Tensor, kt: torch.Tensor, vt: torch.Tensor, step: int) -> torch.Tensor:
    """Eq. 2-4 on [B, 1, L, C] tokens, ``step`` query rows at a time, each row's maximum subtracted."""
    kT = kt.transpose(2, 3)
    pieces = []
    for start in range(0, qt.shape[2], step):
        scores = qt[:, :, start:start + step] @ kT
        scores = scores - scores.amax(dim=-1, keepdim=True)
        weights = scores.exp()
        pieces.append((weights @ vt) / weights.sum(dim=-1, keepdim=True))
    return torch.cat(pieces, dim=2) if len(pieces) > 1 else pieces[0]


def aggregate(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Eq. 2-4 without materialising the volume; same contract as ``aggregate_naive``.

    The scores, the max-subtraction, exp and the sums are always accumulated in fp32: with scale 1 the
    dot products exceed half precision's useful range. Subtracting each row's maximum before exp leaves
    Eq. 3 unchanged and cannot overflow.

    ``chunk=None``: ``scaled_dot_product_attention(scale=1.0)`` on contiguous [B, 1, L, C] tensors, whose
    flash / memory-efficient kernels keep memory O(L * C). Q, K and V of one half dtype (fp16, bf16) go
    in as they are (``_half_attention``: the kernels keep their accumulators in fp32 and use the tensor
    cores); anything else is cast to fp32 first. Under ONNX export (where SDPA becomes a whole-volume
    MatMul-Softmax-MatMul) explicit fp32 chunks of ``auto_chunk(h * w)`` query rows are used.
    ``chunk=n``: explicit fp32 chunks of n query rows, memory O(n * h * w).
    """
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1 or None, got {chunk}")
    dtype = q.dtype
    h, w = q.shape[-2:]
    exporting = torch.onnx.is_in_onnx_export()
    if chunk is None and not exporting and dtype in HALF_DTYPES and k.dtype == v.dtype == dtype:
        return _from_tokens(_half_attention(q, k, v), h, w)
    qt, kt, vt = (_as_tokens(x.float()) for x in (q, k, v))
    if chunk is None and not exporting:
        out = F.scaled_dot_product_attention(qt, kt, vt, scale=1.0)
    else:
        out = _chunked_attention(qt, kt, vt, chunk if chunk is not None else auto_chunk(kt.shape[2]))
    return _from_tokens(out, h, w).to(dtype)


class CorrelativeAggregation(nn.Module):
    """Correlation volume pyramid and correlative aggregation for the pairs (ref<-prev, ref<-ref, ref<-next).

    Takes reference features and a list of P neighbour feature maps (each [B, C, H', W']) and returns
    [B, P * L * C, H', W'] (Eq. 5 per pair, pairs concatenated). At level k the *neighbour* features are
    max-pooled by 2**k while the reference keeps full resolution, as the paper requires; phi_k is a 3x3
    conv on the pooled neighbour features, shared by the pairs (our assumption: it acts on "a neighbour
    feature map", whichever neighbour it is).

    ``cosine``: the scores are ``temperature[k] * cos(q - mean q, k - mean k)`` (zero-mean normalised
    cross-correlation with a learned temperature per level) instead of the raw ``q . k``; V stays phi_k
    of the raw pooled features, so ``aggregate`` still computes Eq. 2-4 with scale 1. The centring
    matters because the encoder's features share one dominant direction, which would leave every row
    near uniform at any moderate temperature. A temperature of 0 makes every row uniform (the mean of
    V), which lets ``training.grow`` turn the switch on in weights trained without it.
    """

    INITIAL_TEMPERATURE = 10.0  # scores in [-10, 10]: a well-matched key outweighs an unrelated one ~e^5-fold

    def __init__(self, *, channels: int, levels: int, chunk: int | None = None, cosine: bool = False) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"CorrelativeAggregation needs levels >= 1, got {levels}")
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be >= 1 or None, got {chunk}")
        self.levels = levels
        self.chunk = chunk
        self.pair_channels = levels * channels  # output channels per neighbour passed to forward
        self.phi = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(levels))
        self.temperature = nn.Parameter(torch.full((levels,), self.INITIAL_TEMPERATURE)) if cosine else None

    @staticmethod
    def _centred_unit(x: torch.Tensor) -> torch.Tensor:
        """``x`` less its spatial mean, per pixel L2-normalised over channels."""
        return unit_vectors(x - x.mean(dim=(2, 3), keepdim=True), dim=1)

    def query_key(self, ref: torch.Tensor, pooled: torch.Tensor, level: int,
                  ref_unit: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The (Q, K) whose scale-1 product is level ``level``'s score (1-based): raw, or centred unit
        vectors with the temperature on the query side. ``ref_unit``: ``_centred_unit(ref)`` when the
        caller already has it (``forward`` computes it once for every pair and level)."""
        if self.temperature is None:
            return ref, pooled
        if ref_unit is None:
            ref_unit = self._centred_unit(ref)
        return ref_unit * self.temperature[level - 1].to(ref.dtype), self._centred_unit(pooled)

    def forward(self, ref: torch.Tensor, neighbours: list[torch.Tensor]) -> torch.Tensor:
        ref_unit = self._centred_unit(ref) if self.temperature is not None else None
        out = []
        for nbr in neighbours:
            for k in range(1, self.levels + 1):
                pooled = F.max_pool2d(nbr, kernel_size=2 ** k, stride=2 ** k, ceil_mode=True)
                q, key = self.query_key(ref, pooled, k, ref_unit)
                out.append(aggregate(q, key, self.phi[k - 1](pooled), chunk=self.chunk))
        return torch.cat(out, dim=1)
