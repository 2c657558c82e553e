from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from engines.chunking import plan_chunks
from engines.hf import HFEngine, HFEngineConfig, ModelLoadError
from engines.types import SamplingParams, SeqWork

GREEDY = SamplingParams(max_tokens=64)


@lru_cache(maxsize=2)
def _hf_model(path: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(path).eval()


def _reference(path: Path, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token logits [vocab] and final hidden [hidden] of a plain uncached forward."""
    model = _hf_model(path)
    with torch.inference_mode():
        out = model(torch.tensor([ids]), output_hidden_states=True)
    return out.logits[0, -1], out.hidden_states[-1][0, -1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "tpu"}, "device='tpu'"),
        ({"device": "cuda:0"}, "device='cuda:0'" if not torch.cuda.is_available() else "dtype"),
        ({"dtype": "fp8"}, "dtype='fp8'.*float32, bfloat16"),
        ({"max_batch_tokens": 0}, "max_batch_tokens=0"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    if torch.cuda.is_available() and kwargs == {"device": "cuda:0"}:
        kwargs = {**kwargs, "dtype": "half"}  # cuda is valid here: fail on the dtype instead
    with pytest.raises(ValueError, match=match):
        HFEngineConfig("x", **kwargs)


def test_missing_or_corrupt_folder_is_a_one_line_error(tmp_path: Path, model_dirs) -> None:
    with pytest.raises(ModelLoadError, match=f"^{tmp_path / 'nope'}: model folder does not exist$"):
        HFEngine(HFEngineConfig(str(tmp_path / "nope")))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((model_dirs[0] / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError) as e:
        HFEngine(HFEngineConfig(str(bad)))
    assert str(e.value).startswith(f"{bad}: cannot load model (") and "\n" not in str(e.value)
    (bad / "config.json").write_text("{broken")
    with pytest.raises(ModelLoadError, match=f"^{bad}: cannot load model"):
        HFEngine(HFEngineConfig(str(bad)))


def test_info_describes_the_model(engines) -> None:
    slm, llm, _ = engines
    assert (slm.info.hidden_size, llm.info.hidden_size) == (32, 64)
    assert slm.info.vocab_size == 100 and slm.info.max_context == 96
    assert slm.info.eos_token_ids == (2,)
    assert set(slm.info.features) == {"token", "logits", "hidden:final", "logprobs:top8"}


@pytest.mark.parametrize("split", [False, True], ids=["one-forward", "chunked"])
def test_batched_mixed_extends_equal_uncached_forwards(engines, model_dirs, split: bool) -> None:
    """Sequences of different lengths, each extended by its own count, in one step,
    give the logits and final hidden states of a plain forward over each alone."""
    llm = engines[1]
    if split:  # tiny chunks: padding-driven and size-driven splits
        llm = HFEngine(HFEngineConfig(str(model_dirs[1]), max_batch_tokens=16, pad_free_tokens=0))
    g = torch.Generator().manual_seed(0)
    seqs = {i: torch.randint(3, 100, (40,), generator=g).tolist() for i in range(100, 105)}
    rounds = [  # seq id -> tokens to append this round
        {100: 7, 101: 1, 102: 12, 103: 3},
        {100: 1, 101: 5, 102: 1, 103: 2, 104: 9},
        {101: 1, 103: 4, 104: 1},
    ]
    seen = dict.fromkeys(seqs, 0)
    for extend in rounds:
        work = [
            SeqWork(i, seen[i], seqs[i][seen[i] : seen[i] + n], GREEDY, seed=0)
            for i, n in extend.items()
        ]
        out = llm.step(work, ("logits", "hidden:final", "logprobs:top8"))
        for r, w in enumerate(work):
            seen[w.seq_id] += len(w.new_tokens)
            logits, hidden = _reference(model_dirs[1], seqs[w.seq_id][: seen[w.seq_id]])
            assert torch.allclose(out.features.logits[r], logits, atol=1e-4)
            assert torch.allclose(out.features.hidden[r], hidden, atol=1e-4)  # post final norm
            top = torch.log_softmax(logits, -1).topk(8).values  # descending log-probs
            assert torch.allclose(out.features.topk_logprobs[r], top, atol=1e-4)
            assert out.tokens[r] == [int(logits.argmax())]
            assert out.features.positions[r] == seen[w.seq_id]
            assert llm.cached_tokens(w.seq_id) == seqs[w.seq_id][: seen[w.seq_id]]
    for i in seqs:
        llm.free(i)
    assert llm.num_caches() == 0


def test_chunk_plan_trades_padding_for_forwards() -> None:
    assert plan_chunks([1] * 16, 8192, 256) == [list(range(16))]  # decode: one forward
    assert plan_chunks([5, 1, 1, 2], 8192, 256) == [[0, 3, 1, 2]]  # small: padding is free
    assert plan_chunks([100, 1, 98, 3], 8192, 0) == [[0, 2], [3], [1]]  # pad <= 1.3x
    assert plan_chunks([4, 4, 4, 4], 8, 256) == [[0, 1], [2, 3]]  # B x T <= max_tokens
    assert plan_chunks([], 8, 8) == []


def test_drafting_equals_hf_generate_and_only_fed_tokens_are_cached(engines, model_dirs) -> None:
    slm, _, _ = engines
    prompts = {7: [5, 6, 7, 8], 8: [20, 30], 9: [44] * 9}
    out = slm.step([SeqWork(i, 0, p, GREEDY, seed=4, n_out=6) for i, p in prompts.items()], ())
    flat = [t for toks in out.tokens for t in toks]
    assert out.features.token_ids.tolist() == flat  # one row per draft, work-major
    assert out.features.logits is None and out.features.hidden is None  # not asked
    assert out.features.topk_logprobs is None
    assert out.features.seeds == [4] * len(flat)
    lens = [len(p) for p in prompts.values()]
    want_pos = [n + j for n, t in zip(lens, out.tokens, strict=True) for j in range(len(t))]
    assert out.features.positions == want_pos
    model = _hf_model(model_dirs[0])
    for (i, p), toks in zip(prompts.items(), out.tokens, strict=True):
        ref = model.generate(torch.tensor([p]), max_new_tokens=6, do_sample=False, pad_token_id=0)
        ref_toks = ref[0, len(p) :].tolist()
        if 2 in ref_toks:  # drafting stops after eos
            ref_toks = ref_toks[: ref_toks.index(2) + 1]
        assert toks == ref_toks
        assert slm.cached_tokens(i) == p + toks[:-1]  # the last draft is never fed
        slm.crop(i, len(p))
        assert slm.cache_len(i) == len(p)
        slm.free(i)
    assert slm.num_caches() == 0


def test_cache_bookkeeping_errors(engines) -> None:
    slm, _, _ = engines
    slm.step([SeqWork(50, 0, [3, 4, 5], GREEDY, seed=0)])
    with pytest.raises(ValueError, match="work starts at 0 but the cache holds 3"):
        slm.step([SeqWork(50, 0, [3], GREEDY, seed=0)])
    with pytest.raises(ValueError, match="crop to 4: the cache holds 3"):
        slm.crop(50, 4)
    with pytest.raises(ValueError, match="exceed max_context=96"):
        slm.step([SeqWork(50, 3, [3] * 90, GREEDY, seed=0, n_out=5)])
    with pytest.raises(ValueError, match=r"outside \[0, 100\)"):
        slm.step([SeqWork(50, 3, [100], GREEDY, seed=0)])
    assert slm.num_caches() == 1
    slm.free(50)
    slm.free(50)  # freeing twice is harmless
    assert slm.num_caches() == 0


def test_probe_rows_are_teacher_forced_predictions(engines, model_dirs) -> None:
    slm, _, _ = engines
    ids = [9, 8, 7, 6, 5, 4]
    out = slm.step([SeqWork(60, 0, ids, GREEDY, seed=3, probe_offsets=(1, 4))])
    for row, upto in enumerate((2, 5)):
        logits, hidden = _reference(model_dirs[0], ids[:upto])
        assert torch.allclose(out.probes.logits[row], logits, atol=1e-4)
        assert torch.allclose(out.probes.hidden[row], hidden, atol=1e-4)
    assert out.probes.positions == [2, 5]
    slm.free(60)


def test_bfloat16_engine_runs_close_to_float32(model_dirs, engines) -> None:
    slm, _, _ = engines
    half = HFEngine(HFEngineConfig(str(model_dirs[0]), dtype="bfloat16"))
    work = [SeqWork(1, 0, [5, 6, 7, 8, 9], GREEDY, seed=0)]
    a = half.step(work, ("logits",)).features.logits[0]
    b = slm.step(work, ("logits",)).features.logits[0]
    assert a.dtype == torch.float32 and torch.allclose(a, b, atol=0.15 * float(b.abs().max()))
    half.free(1)
    slm.free(1)


def test_batching_speedup_is_reported(engines, capsys) -> None:
    """Prints the decode speed-up of one 16-sequence forward over 16 single ones."""
    _, llm, _ = engines
    prompts = [[3 + (i * 7 + j) % 90 for j in range(8 + i)] for i in range(16)]

    def run(batched: bool) -> float:
        for i, p in enumerate(prompts):
            llm.step([SeqWork(i, 0, p, GREEDY, seed=0)])
        t = time.perf_counter()
        for step in range(8):
            work = [SeqWork(i, len(p) + step, [3 + step], GREEDY, 0) for i, p in enumerate(prompts)]
            if batched:
                llm.step(work)
            else:
                for w in work:
                    llm.step([w])
        for i in range(len(prompts)):
            llm.free(i)
        return time.perf_counter() - t

    one_by_one, batched = run(False), run(True)
    with capsys.disabled():
        print(
            f"\n[hf engine] 16 seqs x 8 decode steps: one-by-one {one_by_one * 1e3:.0f} ms, "
            f"batched {batched * 1e3:.0f} ms, speed-up {one_by_one / batched:.1f}x"
        )
    assert llm.num_caches() == 0
