"""API keys: ``sk-citer-`` + 256 random bits; stores keep only the sha256.

A plain (unsalted, fast) hash is enough because keys are random, not chosen by
people: there is no dictionary to try. The plaintext exists once, in the
``IssuedKey`` returned at creation.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-citer-"


def new_key() -> tuple[str, str, str]:
    """(key_id, plaintext, sha256 hex of plaintext)."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    return "key_" + secrets.token_hex(6), plaintext, hash_key(plaintext)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()
