"""GGUF -> Hugging Face folder, and what "the same tokenizer" means for a pair.

transformers reads the GGUF (``gguf_file=``), dequantises the weights and saves an
ordinary checkpoint (bfloat16 here: the engines' ``CITER_DTYPE=bfloat16``). The two
models of a pair must have identical vocabularies, merges and special tokens; their
chat templates may differ only where no served request can tell (the Qwen2.5-Coder
GGUFs differ in the tool-calling branch alone, which the gateway refuses: tools are
not implemented). Both folders get the LLM's template, checked to render every
probe conversation exactly as the SLM's own does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from pairs.fetch import PairBuildError

EXPANSION = 3.6  # bf16 bytes per byte of Q4_K_M GGUF (4.5-5 bits per weight), with slack
PROBES = [  # conversations without tools, as the gateway serves them
    [{"role": "user", "content": "What is 12 + 30?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
     {"role": "user", "content": "c"}],
]  # fmt: skip


def convert(gguf: Path, out: Path, say: Any) -> Path:
    """``out``: an HF folder of the GGUF (skipped when it is already complete)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    done = out / "gguf.json"
    if done.is_file() and json.loads(done.read_text()).get("gguf") == gguf.name:
        say(f"{out.name}: already converted")
        return out
    free = shutil.disk_usage(out.parent).free
    need = int(EXPANSION * gguf.stat().st_size)
    if free < need:
        raise PairBuildError(f"{out.name}: needs {need / 2**30:.1f} GiB free under "
                             f"{out.parent}, {free / 2**30:.1f} GiB available")  # fmt: skip
    say(f"{out.name}: dequantising {gguf.name} (a few minutes)")
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True),  # a plain dense checkpoint
        )
    except Exception as e:  # transformers/gguf raise many types; one line for the user
        raise PairBuildError(f"{gguf}: cannot convert ({str(e).splitlines()[0]})") from e
    out.mkdir(parents=True, exist_ok=True)
    try:
        model.save_pretrained(str(out))
    except Exception as e:
        raise PairBuildError(f"{gguf}: cannot save the converted model ({e})") from e
    tok.save_pretrained(str(out))
    done.write_text(json.dumps({"gguf": gguf.name}) + "\n")
    return out


def reconcile(slm: Path, llm: Path) -> dict[str, Any]:
    """Check the two folders share one tokenizer; give both the LLM's chat template and
    end-of-turn ids; return what pair.json records about it."""
    from transformers import AutoTokenizer, GenerationConfig

    ts, tl = AutoTokenizer.from_pretrained(str(slm)), AutoTokenizer.from_pretrained(str(llm))
    if ts.get_vocab() != tl.get_vocab():
        raise PairBuildError(f"{slm.name} / {llm.name}: vocabularies differ: not a pair")
    if ts.all_special_tokens != tl.all_special_tokens:
        raise PairBuildError(f"{slm.name} / {llm.name}: special tokens differ: not a pair")
    probe = ["abc 123", "def f(x):\n    return x  # ü", "<|im_start|>user\nhi<|im_end|>"]
    if [ts.encode(p) for p in probe] != [tl.encode(p) for p in probe]:
        raise PairBuildError(f"{slm.name} / {llm.name}: tokenizers encode differently")
    for conv in PROBES:
        a = ts.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        b = tl.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        if a != b:
            raise PairBuildError(f"{slm.name} / {llm.name}: chat templates render a plain "
                                 "conversation differently")  # fmt: skip
    template = tl.chat_template
    ends = [tl.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    for folder in (slm, llm):
        tok = AutoTokenizer.from_pretrained(str(folder))
        tok.chat_template = template
        tok.save_pretrained(str(folder))
        gen = GenerationConfig.from_pretrained(str(folder))
        gen.eos_token_id = ends  # a chat turn ends at <|im_end|>
        gen.save_pretrained(str(folder))
    return {
        "tokenizer": "identical vocabulary, merges and special tokens",
        "chat_template": "the LLM's, in both folders (the SLM's renders every probe "
        "conversation without tools identically)",
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest(),
        "eos_token_ids": ends,
    }
