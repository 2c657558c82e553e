"""Weight-only int8 quantisation of a model's linear layers for the hf engine on the CPU.

Each ``nn.Linear`` (the output layer included) keeps its weight as int8 with one bf16
scale per output channel (symmetric, absmax / 127), and multiplies through PyTorch's
own CPU kernel for it, ``torch._weight_int8pack_mm`` (the one inductor lowers
weight-only int8 to): bf16 activations times int8 weights, dequantised in registers,
so a pass reads a quarter of float32's weight bytes and half of bf16's. Why this
kernel and not torchao's ``Int8WeightOnlyConfig``: torchao 0.18 runs it in eager mode
by dequantising the whole weight each call (0.37x bf16 at one row on the 0.5B, measured),
its fast path needs ``torch.compile``.

The kernel's contract, checked here rather than left to a crash: bf16 activations,
``in_features`` a multiple of 16 (its vector loop has no tail), and rows 16-byte
aligned (it uses aligned loads). A linear that breaks the shape rule stays in bf16.
"""

from __future__ import annotations

import torch
from torch import nn

QUANTS = ("none", "int8")
_K_MULTIPLE = 16  # the AVX-512 kernel steps 16 inputs at a time, AVX2 8; no tail loop
_ALIGN = 16  # bytes: the kernel's aligned loads of each activation row


class Int8Linear(nn.Module):
    """``y = x @ (weight * scale).T + bias`` with ``weight`` int8 [out, in] and ``scale``
    [out] in the activations' dtype (bf16)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()  # [out, in]
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=torch.finfo(torch.float32).tiny)
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", q)
        self.register_buffer("scale", scale.to(linear.weight.dtype))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)  # [rows, in]
        if not x2.is_contiguous() or x2.data_ptr() % _ALIGN:
            x2 = x2.clone(memory_format=torch.contiguous_format)  # fresh storage is aligned
        y = torch._weight_int8pack_mm(x2, self.weight, self.scale)  # [rows, out]
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantizable(linear: nn.Linear) -> bool:
    return linear.in_features % _K_MULTIPLE == 0 and linear.weight.dtype == torch.bfloat16


def quantize(model: nn.Module, quant: str) -> int:
    """Replace the model's linear layers in place (``quant`` one of QUANTS); returns how
    many were replaced. A tied output layer gets its own int8 copy; the embedding it
    shares weights with stays as it is (a lookup reads one row per token)."""
    if quant not in QUANTS:
        raise ValueError(f"quant={quant!r}: must be one of {', '.join(QUANTS)}")
    if quant == "none":
        return 0
    done = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and quantizable(child):
                setattr(parent, name, Int8Linear(child))
                done += 1
    return done
