from __future__ import annotations

import pytest
import torch

from engines.sampling import SamplingParams, position_uniform, sample


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"prompt_logprobs": 21}, "prompt_logprobs"),
        ({"stop": ("",)}, "stop"),
        ({"seed": 2**64}, "seed"),
    ],
)
def test_params_reject_bad_values_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}=.*must"):
        SamplingParams(**kwargs)


def test_a_bare_stop_string_is_one_stop() -> None:
    assert SamplingParams(stop="END").stop == ("END",)  # type: ignore[arg-type]


def _logits(n: int = 5, vocab: int = 50, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, vocab, generator=g) * 2  # [n, vocab]


def test_greedy_and_degenerate_filters_equal_argmax() -> None:
    x = _logits()
    want = x.argmax(-1)
    for p in (
        SamplingParams(),
        SamplingParams(temperature=0.7, top_k=1),
        SamplingParams(temperature=1.3, top_p=1e-6),
    ):
        got = sample(x, [p] * 5, seeds=[1, 2, 3, 4, 5], positions=[9] * 5)
        assert torch.equal(got, want)


def test_a_row_depends_only_on_its_seed_and_position() -> None:
    x = _logits(n=6)
    p = SamplingParams(temperature=1.0)
    seeds, pos = [7, 7, 7, 8, 8, 9], [0, 1, 2, 0, 1, 0]
    batched = sample(x, [p] * 6, seeds, pos).tolist()
    alone = [sample(x[i : i + 1], [p], [seeds[i]], [pos[i]]).item() for i in range(6)]
    assert batched == alone
    perm = [5, 3, 1, 0, 4, 2]
    shuffled = sample(x[perm], [p] * 6, [seeds[i] for i in perm], [pos[i] for i in perm])
    assert shuffled.tolist() == [batched[i] for i in perm]
    # Mixed greedy/sampled rows in one batch leave each row unchanged.
    mixed = [p, SamplingParams(), p, SamplingParams(), p, p]
    got = sample(x, mixed, seeds, pos).tolist()
    assert got == [
        x[i].argmax().item() if mixed[i].temperature == 0 else batched[i] for i in range(6)
    ]


def test_uniform_is_a_pure_function_that_varies() -> None:
    assert position_uniform(3, 10) == position_uniform(3, 10)
    vals = {position_uniform(s, p) for s in range(20) for p in range(20)}
    assert len(vals) == 400 and all(0.0 <= v < 1.0 for v in vals)
    assert position_uniform(-5, 2**40) < 1.0  # negative seeds and large positions


def test_samples_follow_the_filtered_distribution() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])  # [1, 6]
    n = 4000
    x = logits.expand(n, -1)
    for params, support in [
        (SamplingParams(temperature=1.0), 6),
        (SamplingParams(temperature=1.0, top_k=3), 3),
        (SamplingParams(temperature=0.5, top_p=0.8), None),
    ]:
        got = sample(x, [params] * n, seeds=[11] * n, positions=list(range(n)))
        counts = torch.bincount(got, minlength=6).double() / n
        probs = torch.softmax(logits[0] / params.temperature, -1).double()
        if params.top_k:
            probs[params.top_k :] = 0
        if params.top_p < 1:
            before = probs.cumsum(0) - probs
            probs[before >= params.top_p] = 0
        probs /= probs.sum()
        if support is not None:
            assert int((counts > 0).sum()) == support
        assert (counts[probs == 0] == 0).all()
        assert torch.allclose(counts, probs, atol=0.03), (counts, probs)


def test_the_python_and_numpy_hashes_agree_bit_for_bit() -> None:
    import random

    import numpy as np

    from engines.seeds import mix64, mix64_np, position_bits, position_bits_np

    rng = random.Random(0)
    xs = [rng.getrandbits(64) for _ in range(500)]
    assert mix64_np(np.array(xs, dtype=np.uint64)).tolist() == [mix64(x) for x in xs]
    seeds = [rng.randrange(-(2**63), 2**63) for _ in range(500)]
    pos = [rng.randrange(0, 2**40) for _ in range(500)]
    got = position_bits_np(np.array(seeds), np.array(pos), 12345).tolist()
    assert got == [position_bits(s, p, 12345) for s, p in zip(seeds, pos, strict=True)]
