# syntax=docker/dockerfile:1
# ViT inference service image.
#
#   docker build -t vit-service .                          # GPU image: CUDA 13 + cuDNN 9, ONNX Runtime GPU + TensorRT
#   docker build -t vit-service:cpu --build-arg VARIANT=cpu .   # CPU-only image on python:3.11-slim
#   docker run --gpus all -p 8000:8000 vit-service
#
# Stages: `builder` trains and exports the embedded default bundle with the project's own commands
# (PyTorch lives only here); `runtime-gpu` / `runtime-cpu` install the serving half (no torch);
# `final` adds the bundle, a non-root user and the health check to whichever runtime VARIANT names.
# docs/deploy.md describes the environment variables, the TensorRT engine cache and operations.

ARG VARIANT=gpu
ARG PYTHON_IMAGE=python:3.11-slim
# onnxruntime-gpu 1.31 from PyPI is built against CUDA 13 and cuDNN 9 (and TensorRT 10 for its TensorRT EP).
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/src
COPY pyproject.toml README.md ./
COPY model_export ./model_export
COPY service ./service
# A container has no local torch wheel: PyTorch's CPU index serves torch==2.13.0 without the CUDA libraries.
# The project's own requirements are pinned to ranges in pyproject.toml (DL3013 does not apply).
# hadolint ignore=DL3013
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install ".[export]"
RUN vit-export train --dataset digits --out runs/default \
    && vit-export export runs/default --out /bundles/default

# ---------------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS runtime-gpu
ARG DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /opt/src
COPY pyproject.toml README.md ./
COPY service ./service
# onnxruntime and onnxruntime-gpu both provide the `onnxruntime` module: install the serving half, take the
# CPU build out, then put the GPU build (and TensorRT's libraries) in its place.
# hadolint ignore=DL3013
RUN pip install ".[serve]" \
    && pip uninstall -y onnxruntime \
    && pip install ".[gpu]" \
    && python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers()"
# The TensorRT EP dlopens libnvinfer.so.10 / libnvonnxparser.so.10 from the tensorrt-cu13-libs wheel.
ENV LD_LIBRARY_PATH=/opt/venv/lib/python3.12/site-packages/tensorrt_libs \
    VIT_PROVIDERS=TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime-cpu
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /opt/src
COPY pyproject.toml README.md ./
COPY service ./service
# hadolint ignore=DL3013
RUN pip install ".[serve]"
ENV VIT_PROVIDERS=CPUExecutionProvider

# ---------------------------------------------------------------------------------------------------------
# hadolint ignore=DL3006
FROM runtime-${VARIANT} AS final
RUN useradd --system --uid 10001 --user-group --home-dir /home/vit --create-home vit \
    && mkdir -p /var/cache/vit/trt \
    && chown vit:vit /var/cache/vit/trt
COPY --from=builder --chown=root:root /bundles/default /opt/vit/bundles/default
ENV VIT_BUNDLE=/opt/vit/bundles/default \
    VIT_TRT_CACHE_DIR=/var/cache/vit/trt \
    PYTHONUNBUFFERED=1
# Built TensorRT engines survive restarts when this is a named volume (the first start builds them).
VOLUME ["/var/cache/vit/trt"]
WORKDIR /home/vit
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000
# First start on a GPU builds TensorRT engines: give it time before counting failures. Python (already in
# the image) does the request, so no curl; any error or non-2xx status exits 1 (unhealthy).
HEALTHCHECK --interval=15s --timeout=3s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["vit-serve", "--host", "0.0.0.0", "--port", "8000"]
