"""Weight-only int8 linears (engines.quant): the kernel's arithmetic, which layers are
replaced, how closely a quantised trained model follows bf16, and the engine path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from engines.hf import HFEngine, HFEngineConfig
from engines.pair import PairConfig
from engines.quant import Int8Linear, quantize
from engines.types import SamplingParams, SeqWork
from gateway.settings import GatewaySettings

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


def _dequantised(q: Int8Linear) -> torch.Tensor:
    return q.weight.float() * q.scale.float()[:, None]  # [out, in]


@pytest.mark.parametrize("shape", [(1, 64), (3, 64), (2, 5, 256), (17, 896)])
@pytest.mark.parametrize("offset", [0, 1])
def test_int8_linear_equals_its_dequantised_weights(shape: tuple[int, ...], offset: int) -> None:
    torch.manual_seed(0)
    k = shape[-1]
    lin = nn.Linear(k, 48).to(torch.bfloat16)
    q = Int8Linear(lin)
    # offset 1: the rows start one element into their storage (unaligned for the kernel)
    x = torch.randn(torch.Size(shape).numel() + offset, dtype=torch.bfloat16)[offset:].view(shape)
    with torch.inference_mode():
        y = q(x)
    ref = x.float() @ _dequantised(q).T + lin.bias.detach().float()
    assert y.shape == (*shape[:-1], 48) and y.dtype == torch.bfloat16
    assert float((y.float() - ref).norm() / ref.norm()) < 1e-2
    # and the int8 weights are the bf16 ones to within one quantisation step (half a step
    # of rounding, plus the bf16 rounding of the scale times up to 127)
    err = (_dequantised(q) - lin.weight.detach().float()).abs()
    assert bool((err <= q.scale.float()[:, None]).all())


def test_only_layers_the_kernel_takes_are_replaced() -> None:
    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(20, 8)).to(torch.bfloat16)
    assert quantize(model, "int8") == 1
    assert isinstance(model[0], Int8Linear) and type(model[2]) is nn.Linear  # 20 % 16 != 0
    fp32 = nn.Sequential(nn.Linear(32, 16))
    assert quantize(fp32, "int8") == 0 and type(fp32[0]) is nn.Linear
    assert quantize(model, "none") == 0
    with pytest.raises(ValueError, match="quant='int4'"):
        quantize(model, "int4")


def test_a_quantised_trained_model_follows_bf16() -> None:
    """The demo LLM, teacher-forced along its own greedy answer: the int8 copy picks the
    same next token at nearly every position."""
    base = AutoModelForCausalLM.from_pretrained(DEMO / "llm", dtype=torch.bfloat16).eval()
    q = copy.deepcopy(base)
    n = quantize(q, "int8")
    assert n == sum(isinstance(m, nn.Linear) for m in base.modules())  # every linear, head too
    prompt = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46]])
    with torch.inference_mode():
        ids = base.generate(prompt, max_new_tokens=48, do_sample=False)
        a, b = base(ids).logits[0].float(), q(ids).logits[0].float()
    agree = (a.argmax(-1) == b.argmax(-1)).float().mean()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).min()
    assert agree >= 0.9 and cos > 0.98, (float(agree), float(cos))


def test_the_engine_decodes_as_the_quantised_model_does() -> None:
    """The engine's own forward (ragged cache, head on chosen rows) over int8 linears
    gives the quantised model's logits along its greedy decode, up to bf16 rounding.

    Not exact tokens: this model's top two logits often tie in bf16, and which one a
    kernel rounds up differs by CPU (AVX-512 bf16 or not)."""
    eng = HFEngine(HFEngineConfig(str(DEMO / "llm"), dtype="bfloat16", quant="int8"))
    assert isinstance(eng.head, Int8Linear) and eng.info.vocab_size == eng.head.out_features
    ref = AutoModelForCausalLM.from_pretrained(DEMO / "llm", dtype=torch.bfloat16).eval()
    quantize(ref, "int8")
    prompt = [1, 50, 51, 52, 53]
    got, new, logits = [], prompt, []
    for _ in range(12):
        work = SeqWork(7, len(prompt) + len(got) - len(new), new, SamplingParams(), seed=0)
        out = eng.step([work], features=("logits",))
        got.append(out.tokens[0][0])
        logits.append(out.features.logits[0].float())
        new = [out.tokens[0][0]]
    eng.free(7)
    with torch.inference_mode():  # teacher-forced along the engine's tokens
        want = ref(torch.tensor([prompt + got])).logits[0, len(prompt) - 1 : -1].float()
    tol = 2 * torch.finfo(torch.bfloat16).eps * float(want.abs().max())  # two bf16 ulps
    assert float((torch.stack(logits) - want).abs().max()) <= tol
    chosen = want.gather(1, torch.tensor(got)[:, None])[:, 0]
    assert bool((want.max(-1).values - chosen <= tol).all()), "a token the model would not pick"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quant": "int4"}, "quant='int4'"),
        ({"quant": "int8"}, "bfloat16"),  # dtype float32
    ],
)
def test_engine_config_refuses(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HFEngineConfig("x", **kwargs)


def test_pair_and_gateway_settings_refuse_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="hf engine"):
        PairConfig("x", "y", dtype="bfloat16", engine="vllm", llm_quant="int8")
    with pytest.raises(ValueError, match="CITER_LLM_QUANT=int8 .*CITER_DTYPE=bfloat16"):
        GatewaySettings(llm_quant="int8")  # dtype float32
    with pytest.raises(ValueError, match="CITER_SLM_QUANT"):
        GatewaySettings(slm_quant="int8", dtype="bfloat16", engine="vllm")
    with pytest.raises(ValueError, match="remote LLM"):
        GatewaySettings(llm_quant="int8", dtype="bfloat16", llm_url="http://cloud:8000/v1")
    ok = GatewaySettings(slm_quant="int8", llm_quant="int8", dtype="bfloat16")
    assert (ok.slm_quant, ok.llm_quant) == ("int8", "int8")
