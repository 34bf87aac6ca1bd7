"""Peer (a): FastAPI + PyTorch eager, one forward pass per request (no batching).

Set up as FastAPI's and PyTorch's docs show it: a plain ``def`` endpoint (FastAPI runs it in its thread
pool), the model in eval mode under ``torch.inference_mode()``; the model is this project's ``ViT`` loaded
from the model directory (``model_export`` is put on ``sys.path``; it needs only torch and safetensors).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from bench.peers.common import Settings, preprocess, top_k
from model_export.checkpoint import load_checkpoint

settings = Settings()
model, info = load_checkpoint(settings.model_dir)
preprocessing = info.preprocessing.to_dict()
mean = torch.tensor(info.preprocessing.mean).view(1, 3, 1, 1)
std = torch.tensor(info.preprocessing.std).view(1, 3, 1, 1)
app = FastAPI()


def classify(data: bytes) -> list[dict]:
    pixels = torch.tensor(preprocess(data, preprocessing)).permute(2, 0, 1).unsqueeze(0)
    with torch.inference_mode():
        logits = model((pixels.float() / 255.0 - mean) / std)
    return top_k(logits[0].numpy(), info.labels, settings.top_k)


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/classify")
async def classify_route(request: Request) -> dict:
    data = await request.body()
    return {"predictions": await run_in_threadpool(classify, data)}


if __name__ == "__main__":
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
