"""Identity of a tokenizer: the hash a router card pins its model pair to."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tokenizers import Tokenizer


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
