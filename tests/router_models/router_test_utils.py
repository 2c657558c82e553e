"""Helpers shared by the router tests (tiny tensors only)."""

from __future__ import annotations

import torch

from router_models.base import RouterFeatures
from router_models.citer import CiterConfig, CiterMLP

HIDDEN = 8  # SLM hidden size of the tiny test router
VOCAB = 16
TOK_HASH = "ab" * 32  # stands in for a tokenizer_hash() digest
SLM_WEIGHTS = "ef" * 32  # stands in for a weights_fingerprint() digest


def make_feats(
    n: int, *, vocab: int = VOCAB, hidden: int = HIDDEN, seed: int = 0
) -> RouterFeatures:
    g = torch.Generator().manual_seed(seed)
    return RouterFeatures(
        token_ids=torch.randint(0, vocab, (n,), generator=g),
        logits=3.0 * torch.randn(n, vocab, generator=g),
        hidden=torch.randn(n, hidden, generator=g),
        seeds=[seed * 1000 + i % 3 for i in range(n)],
        positions=[17 + i for i in range(n)],
    )


def row(feats: RouterFeatures, i: int) -> RouterFeatures:
    """Row i of a batch as a batch of one."""
    return RouterFeatures(
        token_ids=feats.token_ids[i : i + 1],
        logits=None if feats.logits is None else feats.logits[i : i + 1],
        hidden=None if feats.hidden is None else feats.hidden[i : i + 1],
        seeds=feats.seeds[i : i + 1],
        positions=feats.positions[i : i + 1],
    )


def tiny_mlp(seed: int = 0, *, in_dim: int = HIDDEN, width: int = HIDDEN) -> CiterMLP:
    torch.manual_seed(seed)
    return CiterMLP(CiterConfig(in_dim=in_dim, width=width, dropout=0.5))
