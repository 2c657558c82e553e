"""Per-position random streams: pure hashes of (seed, position), no generator state.

The splitmix64 finalizer (Steele et al.) is written here once, for Python ints and
for numpy arrays (the two agree bit for bit; tests check it). A position's bits are

    key  = mix64(seed ^ salt)                 salt separates the streams
    bits = mix64(key ^ (position * MUL2))     all arithmetic modulo 2**64

so a position gets the same draw in any batch, run-ahead window or engine. The
sampler (``engines.sampling``), the random router (``router_models.policies``) and
the vLLM engine's per-position seeds all draw from here.
"""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN, MUL1, MUL2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def mix64(x: int) -> int:
    """splitmix64 finalizer: a bijective, well-mixed map on uint64."""
    x = (x + GOLDEN) & MASK64
    x = ((x ^ (x >> 30)) * MUL1) & MASK64
    x = ((x ^ (x >> 27)) * MUL2) & MASK64
    return x ^ (x >> 31)


def mix64_np(x: np.ndarray) -> np.ndarray:
    """``mix64`` elementwise on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(MUL1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(MUL2)
    return x ^ (x >> np.uint64(31))


def position_bits(seed: int, position: int, salt: int) -> int:
    key = mix64((seed & MASK64) ^ salt)
    return mix64(key ^ ((position & MASK64) * MUL2 & MASK64))


def position_bits_np(seeds: np.ndarray, positions: np.ndarray, salt: int) -> np.ndarray:
    """``position_bits`` over int64 arrays of seeds and positions; [n] uint64."""
    s, p = seeds.astype(np.int64).view(np.uint64), positions.astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        key = mix64_np(s ^ np.uint64(salt))
        return mix64_np(key ^ (p * np.uint64(MUL2)))


def unit(bits: int) -> float:
    """The top 53 bits as a float64 in [0, 1) (exactly representable)."""
    return (bits >> 11) * (1.0 / (1 << 53))
