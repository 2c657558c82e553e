"""Identity of a model pair: the hashes a router card pins it to.

``tokenizer_hash`` says which token ids the router's scores refer to;
``weights_fingerprint`` says which SLM produced the hidden states it was
trained on (same architecture and tokenizer, retrained weights: another SLM).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
from safetensors import safe_open
from tokenizers import Tokenizer

FINGERPRINT_VALUES = 4096  # leading values of each weight tensor that the fingerprint reads


def tokenizer_hash(tokenizer: str | Path) -> str:
    """sha256 (hex) of the canonical vocab of a ``tokenizer.json`` (or its folder).

    Hashes the sorted (token, id) pairs, added tokens included, plus the sorted
    (id, content) pairs of special tokens and the BPE merges. Formatting, key order and
    non-vocab settings (normalizer, decoder, ...) do not change it; any change
    to a token, an id, or the special-token set does.
    """
    path = Path(tokenizer)
    if path.is_dir():
        path = path / "tokenizer.json"
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises bare Exception subclasses
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot read tokenizer {path}: {msg}") from e
    vocab = sorted(tok.get_vocab(with_added_tokens=True).items())
    special = sorted((i, t.content) for i, t in tok.get_added_tokens_decoder().items() if t.special)
    # BPE merges decide how text splits into those tokens: same vocab, other
    # merges would tokenize differently, so they are part of the identity.
    merges = json.loads(path.read_text(encoding="utf-8")).get("model", {}).get("merges", [])
    canon = {"vocab": vocab, "special": special, "merges": merges}
    text = json.dumps(canon, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def weights_fingerprint(model_dir: str | Path) -> str:
    """sha256 (hex) of a model folder's ``*.safetensors`` weights ("" when it has none).

    Hashes every tensor's name, dtype and shape and the stored bytes of its first
    FINGERPRINT_VALUES values: it reads a few KB per tensor, not whole files.
    Retraining or converting the weights (another dtype) changes it; loading the
    same files with another engine or dtype does not.
    """
    files = sorted(Path(model_dir).glob("*.safetensors"))
    parts: dict[str, bytes] = {}  # tensor name -> what is hashed; any sharding gives the same
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    part = f.get_slice(name)
                    shape = part.get_shape()
                    rows = -(-FINGERPRINT_VALUES // max(1, math.prod(shape[1:])))  # ceil
                    t = part[:rows] if shape else f.get_tensor(name)
                    head = t.contiguous().reshape(-1)[:FINGERPRINT_VALUES]
                    meta = f"{name}|{part.get_dtype()}|{shape}\n".encode()
                    parts[name] = meta + head.view(torch.uint8).numpy().tobytes()  # stored bytes
        except Exception as e:  # safetensors raises its own error types for corrupt files
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"cannot read weights {file}: {msg}") from e
    h = hashlib.sha256()
    for name in sorted(parts):
        h.update(parts[name])
    return h.hexdigest() if files else ""
