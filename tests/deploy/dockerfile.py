"""A small Dockerfile reader for the tests: instructions grouped by build stage."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    lines: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.lines if ins == instruction]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs (the only ENV form the Dockerfile uses)."""
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                out[key] = value
        return out


def exec_form(args: str) -> list[str]:
    """JSON exec form of ENTRYPOINT/CMD/HEALTHCHECK CMD; a shell form is an error."""
    return json.loads(args)


def stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    text = re.sub(r"\\\n", " ", path.read_text())  # join continuation lines
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), " ".join(args.split())
        if instruction == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args, flags=re.IGNORECASE)
            assert m, f"every stage is named: FROM {args}"
            current = out[m.group(2)] = Stage(name=m.group(2), base=m.group(1))
        elif current is not None:
            current.lines.append((instruction, args))
    return out


def stage_env(name: str) -> dict[str, str]:
    return stages()[name].env()
