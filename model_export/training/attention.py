"""Which attention kernel training uses: PyTorch's fused ``scaled_dot_product_attention`` or its math kernel.

On CPU under bf16 autocast the fused (flash) kernel's backward pass is slow for short sequences: for
DeiT-Tiny at batch 64 on two cores it took 47% of a training step at 65 tokens. The unfused math kernel
trains 1.53× faster at 65 tokens (128 px), 1.35× at 82 (144 px), level at 122 (176 px) and 0.84× at 197
(224 px); in fp32 the fused kernel wins (1.10× at 65 tokens). ``auto`` picks from those measurements and the
choice is recorded in ``config.json``, so a resumed run keeps its numerics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch.nn.attention import SDPBackend, sdpa_kernel

ATTENTION_KERNELS = ("auto", "fused", "math")
MATH_MAX_TOKENS = 128  # above this the fused kernel is as fast or faster (measured above)


def resolve_attention(choice: str, device_type: str, bf16: bool, tokens: int) -> str:
    """``fused`` or ``math`` for an ``auto`` choice; an explicit choice is kept."""
    if choice not in ATTENTION_KERNELS:
        raise ValueError(f"attention must be one of {ATTENTION_KERNELS}, got {choice!r}")
    if choice != "auto":
        return choice
    return "math" if device_type == "cpu" and bf16 and tokens <= MATH_MAX_TOKENS else "fused"


@contextlib.contextmanager
def attention_kernel(kernel: str) -> Iterator[None]:
    """Run the enclosed forward (and so its backward) with the resolved kernel."""
    if kernel == "math":
        with sdpa_kernel(SDPBackend.MATH):
            yield
    else:
        yield


def tokens_of(image_size: int, patch_size: int, prefix_tokens: int = 1) -> int:
    return (image_size // patch_size) ** 2 + prefix_tokens
