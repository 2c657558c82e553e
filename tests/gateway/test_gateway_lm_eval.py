"""lm-evaluation-harness against the gateway, as users run it: its ``local-completions``
model on a local multiple-choice task. Loglikelihood tasks go through ``echo`` +
``logprobs`` + ``max_tokens`` 1; the score ordering must be the pair's (llm > slm).

The task is built from the demo test items: the context is the chat prompt and the first
lines of the worked answer, the choices the next line and three copies with one number
moved by 1, 2 or 10 (next-step arithmetic, which the demo LLM does better than the SLM).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

DOCS = 80  # items; 4 choices each: 320 scoring requests per model (~3-8 s each here)


def build_task(root: Path, tokenizer) -> Path:
    from tasks.chat import chat_ids
    from tasks.splits import load_split

    rng = random.Random(0)
    docs = []
    for item in load_split("test"):
        lines = item.reference.split("\n")
        steps = [j for j in range(1, len(lines)) if re.search(r"\d", lines[j])]
        if not steps:
            continue
        j = rng.choice(steps)
        right, nums = lines[j], list(re.finditer(r"\d+", lines[j]))
        wrong: set[str] = set()
        for _ in range(30):
            m, d = rng.choice(nums), rng.choice([-10, -2, -1, 1, 2, 10])
            if int(m.group()) + d >= 0:
                wrong.add(right[: m.start()] + str(int(m.group()) + d) + right[m.end() :])
            if len(wrong) == 3:
                break
        if len(wrong) < 3:
            continue
        choices = [right, *sorted(wrong)]
        rng.shuffle(choices)
        context = tokenizer.decode(chat_ids(tokenizer, item.messages)) + "\n".join(lines[:j])
        docs.append({"context": context + "\n", "choices": choices,
                     "label": choices.index(right)})  # fmt: skip
        if len(docs) == DOCS:
            break
    data = root / "next_step.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "citer_next_step.yaml").write_text(
        "task: citer_next_step\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: '{{context}}'\n"
        "target_delimiter: ''\n"
        "doc_to_choice: '{{choices}}'\n"
        "doc_to_target: label\n"
        "metric_list:\n  - metric: acc\n"
    )
    return root


def test_lm_eval_multiple_choice_orders_the_pair(
    gateway, gateway_models, tmp_path, monkeypatch
) -> None:
    from live_gateway import demo_pair

    if demo_pair() is None:
        pytest.skip("the score ordering is a property of the trained demo pair")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from transformers import AutoTokenizer

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # datasets' cache: this test's own
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("OPENAI_API_KEY", gateway.new_tenant(limit=1e6)[1])
    slm = str(gateway_models[0])
    tasks = TaskManager(include_path=str(build_task(tmp_path, AutoTokenizer.from_pretrained(slm))))
    acc = {}
    for model in ("slm", "llm", "citer"):
        out = simple_evaluate(
            model="local-completions",
            model_args={
                "model": model,
                "base_url": f"{gateway.url}/v1/completions",
                "tokenizer_backend": "huggingface",
                "tokenizer": slm,
                "num_concurrent": 8,
                "max_retries": 1,
            },  # fmt: skip
            tasks=["citer_next_step"],
            task_manager=tasks,
        )
        result = out["results"]["citer_next_step"]
        assert out["n-samples"]["citer_next_step"]["effective"] == DOCS
        acc[model] = result["acc,none"]
    print(f"lm-eval next-step accuracy: {acc}")
    assert acc["llm"] > acc["slm"] > 0.25  # both far above chance, the LLM ahead
    assert acc["citer"] > 0.25  # each position scored by the model the router gives it
