# syntax=docker/dockerfile:1
# citer gateway images. Two targets, one file:
#   docker build --target cpu  -t citer:cpu  .   # slim CPU image, demo models baked in
#   docker build --target cuda -t citer:cuda .   # GPU serving with vLLM, models mounted at /models
# Both run `citer serve` as a non-root user; every setting comes from CITER_* environment
# variables (README, "Gateway"), so the Helm chart's values map onto them 1:1.

ARG PYTHON_VERSION=3.11
ARG TORCH_VERSION=2.13.0
ARG VLLM_VERSION=0.33.0
ARG CUDA_BASE=nvidia/cuda:12.9.1-base-ubuntu24.04

# ---------------------------------------------------------------- CPU: build the venv
FROM python:${PYTHON_VERSION}-slim-bookworm AS cpu-build
ARG TORCH_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU-only index, so no dependency pulls a CUDA wheel (~200 MB, not ~3 GB).
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY citer ./citer
COPY engines ./engines
COPY router_models ./router_models
COPY tasks ./tasks
COPY demo ./demo
COPY gateway ./gateway
COPY pairs ./pairs
RUN pip install .

# ---------------------------------------------------------------- CPU: the slim runtime
FROM python:${PYTHON_VERSION}-slim-bookworm AS cpu
RUN groupadd --system --gid 10001 citer \
    && useradd --system --uid 10001 --gid citer --create-home --home-dir /home/citer citer
COPY --from=cpu-build /opt/venv /opt/venv
# The demo pair (and its router card) is baked in: the image serves with no volume at all.
COPY --chown=root:root models/demo /opt/citer/models/demo
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=2 \
    CITER_HOST=0.0.0.0 \
    CITER_PORT=8000 \
    CITER_DEVICE=cpu \
    CITER_DTYPE=float32 \
    CITER_SLM=/opt/citer/models/demo/slm \
    CITER_LLM=/opt/citer/models/demo/llm \
    CITER_ROUTER_CARD=/opt/citer/models/demo/router \
    CITER_BOOTSTRAP_KEY_FILE=/home/citer/.citer/api-key
USER 10001:10001
WORKDIR /home/citer
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('CITER_PORT', '8000')}/health\", timeout=4)"]
ENTRYPOINT ["citer"]
CMD ["serve"]

# ---------------------------------------------------------------- CUDA: build the venv
FROM ${CUDA_BASE} AS cuda-build
ARG PYTHON_VERSION
ARG VLLM_VERSION
# uv brings a standalone CPython (the project needs 3.11; the base image has 3.12).
COPY --from=ghcr.io/astral-sh/uv:0.9.5 /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_NO_CACHE=1
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --python "${PYTHON_VERSION}" /opt/venv
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY citer ./citer
COPY engines ./engines
COPY router_models ./router_models
COPY tasks ./tasks
COPY demo ./demo
COPY gateway ./gateway
COPY pairs ./pairs
# vLLM pins its CUDA torch build (2.14.x), which satisfies the project's torch>=2.13,<2.15.
RUN uv pip install "vllm==${VLLM_VERSION}" .

# ---------------------------------------------------------------- CUDA: GPU runtime
FROM ${CUDA_BASE} AS cuda
# Triton (under vLLM) compiles a small C launcher on first use: it needs a C compiler.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 citer \
    && useradd --system --uid 10001 --gid citer --create-home --home-dir /home/citer citer \
    && mkdir -p /models
COPY --from=cuda-build /opt/python /opt/python
COPY --from=cuda-build /opt/venv /opt/venv
# Models are mounted, not baked: a volume (PVC, hostPath, ...) holding slm/, llm/, router/.
VOLUME ["/models"]
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    CITER_HOST=0.0.0.0 \
    CITER_PORT=8000 \
    CITER_DEVICE=cuda \
    CITER_DTYPE=bfloat16 \
    CITER_SLM=/models/slm \
    CITER_LLM=/models/llm \
    CITER_ROUTER_CARD=/models/router \
    CITER_BOOTSTRAP_KEY_FILE=/home/citer/.citer/api-key
USER 10001:10001
WORKDIR /home/citer
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('CITER_PORT', '8000')}/health\", timeout=4)"]
ENTRYPOINT ["citer"]
CMD ["serve"]
