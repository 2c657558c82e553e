"""The packages import one way: gateway -> engines / router_models -> tasks, with the
CLI (citer), the demo builder, benchmarks and load tests on top; no module imports
itself back through others (function-level imports count, TYPE_CHECKING ones not)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("gateway", "engines", "router_models", "tasks")
ON_TOP = ("citer", "demo", "benchmarks", "loadtests", "pairs")
OPTIONAL = ("engines.vllm_engine",)  # needs vLLM (.venv-vllm), not installed in .venv


def modules(package: str) -> list[str]:
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / package).rglob("*.py")
    )


def test_the_library_never_imports_the_cli_demo_or_benchmarks() -> None:
    wanted = [m for pkg in LIBRARY for m in modules(pkg) if m not in OPTIONAL]
    code = (
        "import importlib, sys\n"
        f"for m in {wanted!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {ON_TOP!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Our modules that ``module`` imports anywhere (TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = {f"{node.module}.{a.name}" for a in node.names}
            subs = {n for n in names if n in known}  # `from pkg import submodule`
            found |= subs | ({node.module} if len(subs) < len(names) else set())
    return found


def test_no_import_cycles() -> None:
    ours = {m: ROOT / (m.replace(".", "/") + ".py") for pkg in LIBRARY + ON_TOP
            for m in modules(pkg)}  # fmt: skip
    for m in list(ours):
        if not ours[m].is_file():
            ours[m] = ROOT / m.replace(".", "/") / "__init__.py"
    graph = {
        m: {i for i in imports_of(p, set(ours)) if i in ours and i != m} for m, p in ours.items()
    }
    cycles = []
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n] if n in stack else [m, n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_no_library_module_imports_upward_even_inside_a_function() -> None:
    """The runtime check above cannot see imports inside functions; this one can."""
    upward = {}
    for pkg in LIBRARY:
        for m in modules(pkg):
            path = ROOT / (m.replace(".", "/") + ".py")
            path = path if path.is_file() else ROOT / m.replace(".", "/") / "__init__.py"
            bad = sorted(i for i in imports_of(path, set()) if i.split(".")[0] in ON_TOP)
            if bad:
                upward[m] = bad
    assert upward == {}
