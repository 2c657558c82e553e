"""bf16/fp16 attention on the CPU by fp32 matmuls (engines/matmul_attention.py): it gives
what SDPA gives up to the cache dtype's rounding, under every mask the engines pass, and
an engine in bf16 decodes through it with the tokens of its padded forwards."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engines import matmul_attention
from engines.hf import HFEngine, HFEngineConfig
from tests.engines.test_ragged import _run


def _case(dtype: torch.dtype, t: int, seed: int = 0):
    """4 sequences, 6 query heads over 2 key/value heads, 40 keys, uneven lengths."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(4, 6, t, 16, generator=g).to(dtype)
    k = torch.randn(4, 2, 40, 16, generator=g).to(dtype)
    v = torch.randn(4, 2, 40, 16, generator=g).to(dtype)
    lens = torch.tensor([40 - t, 3, 17, 25])  # cached positions before the t new ones
    key = torch.arange(40)
    allowed = (key[None, None, :] < (lens + t)[:, None, None]) & (
        key[None, None, :] <= lens[:, None, None] + torch.arange(t)[None, :, None]
    )  # [4, T, 40]: causal within the new rows, never past a sequence's end
    return q, k, v, allowed[:, None]


def _reference(q, k, v, allowed) -> torch.Tensor:
    return F.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), attn_mask=allowed, enable_gqa=True
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("t", [1, 5])
@pytest.mark.parametrize("form", ["bool", "additive", "per-head"])
def test_attend_equals_sdpa_up_to_rounding(dtype, t, form) -> None:
    q, k, v, allowed = _case(dtype, t)
    if form == "bool":
        mask = allowed
    else:
        mask = torch.zeros(allowed.shape, dtype=dtype)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)  # as engines.kvcache builds it
        if form == "per-head":
            mask = mask.expand(-1, 6, -1, -1)
    got = matmul_attention.attend(q, k, v, mask)
    assert got.dtype == dtype and got.shape == q.shape
    want = _reference(q, k, v, allowed)
    ulp = 2**-7 if dtype == torch.bfloat16 else 2**-10
    assert torch.allclose(got.float(), want, atol=2 * ulp * float(want.abs().max()), rtol=0)


def test_one_row_needs_no_mask_and_scale_is_honoured() -> None:
    q, k, v, _ = _case(torch.bfloat16, 1)
    everything = torch.ones(4, 1, 1, 40, dtype=torch.bool)
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=0.1,
                                          enable_gqa=True)  # fmt: skip
    for mask in (None, everything):
        got = matmul_attention.attend(q, k, v, mask, scale=0.1).float()
        assert torch.allclose(got, want, atol=2**-6 * float(want.abs().max()), rtol=0)


def test_a_row_with_every_key_masked_stays_finite() -> None:
    q, k, v, _ = _case(torch.bfloat16, 1)
    assert torch.isfinite(matmul_attention.attend(q, k, v, torch.zeros(4, 1, 1, 40) > 0)).all()


def test_fits_only_short_reduced_precision_queries_it_can_honour() -> None:
    q1 = torch.zeros(2, 4, 1, 8, dtype=torch.bfloat16)
    q5, mask = torch.zeros(2, 4, 5, 8, dtype=torch.float16), torch.zeros(2, 1, 5, 9)
    assert matmul_attention.fits(q1, None, {"dropout": 0.0, "scaling": 0.3, "is_causal": True})
    assert matmul_attention.fits(q5, mask, {"sliding_window": None, "use_cache": True,
                                            "position_ids": torch.arange(5)[None]})  # fmt: skip
    assert not matmul_attention.fits(q1.float(), None, {})  # float32: SDPA is as fast
    assert not matmul_attention.fits(q5, None, {})  # causality would need a mask
    long = torch.zeros(1, 4, matmul_attention.MATMUL_ROWS + 1, 8, dtype=torch.bfloat16)
    assert not matmul_attention.fits(long, torch.zeros(1, 1, long.shape[2], 40), {})
    for kw in ({"dropout": 0.1}, {"softcap": 30.0}, {"sliding_window": 4096}, {"s_aux": q1}):
        assert not matmul_attention.fits(q1, None, kw)


def test_a_bf16_engine_decodes_through_it_as_its_padded_forwards_do(model_dirs, monkeypatch):
    calls: list[int] = []  # query rows per call that took the matmul path
    inner = matmul_attention.attend

    def spy(q: torch.Tensor, *a, **kw) -> torch.Tensor:
        calls.append(q.shape[2])
        return inner(q, *a, **kw)

    monkeypatch.setattr(matmul_attention, "attend", spy)
    path = str(model_dirs[1])
    rag = HFEngine(HFEngineConfig(path, dtype="bfloat16"))
    pad = HFEngine(HFEngineConfig(path, dtype="bfloat16", ragged=False))
    assert rag.ragged, "the load probe refused the ragged path in bf16"
    for a, b in zip(_run(rag), _run(pad), strict=True):
        assert a.tokens == b.tokens
        want = b.features.logits  # bf16 layers round differently over [1, N] and [R, T]
        assert torch.allclose(a.features.logits, want, atol=0.05 * float(want.abs().max()))
    assert 1 in calls and max(calls) > 1, "decode and multi-row steps both attend by matmul"
