"""Check a local Hugging Face model folder before loading it.

Every failure is a ``ModelFolderError`` with a one-line message naming the
file and what is wrong, so the CLI can print it and exit non-zero.
"""

from __future__ import annotations

import json
from pathlib import Path

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


class ModelFolderError(ValueError):
    pass


def check_model_folder(path: str | Path) -> dict[str, object]:
    """Validate config, weights and tokenizer of ``path``; return the parsed config."""
    p = Path(path)
    if not p.is_dir():
        raise ModelFolderError(f"{p}: model folder does not exist")
    cfg_file = p / "config.json"
    if not cfg_file.is_file():
        raise ModelFolderError(f"{cfg_file}: missing (not a Hugging Face model folder)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{cfg_file}: corrupt JSON ({e})") from None
    if not isinstance(cfg, dict) or "vocab_size" not in cfg:
        raise ModelFolderError(f"{cfg_file}: no vocab_size (not a causal-LM config)")
    if not any((p / w).is_file() for w in WEIGHT_FILES):
        raise ModelFolderError(f"{p}: no weights ({' or '.join(WEIGHT_FILES)})")
    st = p / "model.safetensors"
    if st.is_file():
        _check_safetensors(st)
    tok_file = p / "tokenizer.json"
    if not tok_file.is_file():
        raise ModelFolderError(f"{tok_file}: missing (the folder needs its tokenizer)")
    try:
        vocab = json.loads(tok_file.read_text())["model"]["vocab"]
        added = json.loads(tok_file.read_text()).get("added_tokens", [])
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{tok_file}: corrupt tokenizer ({e})") from None
    max_id = max([*vocab.values(), *(a["id"] for a in added)], default=-1)
    if max_id >= int(cfg["vocab_size"]):
        raise ModelFolderError(
            f"{tok_file}: tokenizer has token id {max_id} but the model's vocab_size is "
            f"{cfg['vocab_size']} (tokenizer does not match the model)"
        )
    return cfg


def _check_safetensors(st: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(st), framework="pt") as f:
            f.keys()
    except Exception as e:  # safetensors raises several private error types
        raise ModelFolderError(f"{st}: corrupt weights ({e})") from None
