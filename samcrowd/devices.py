"""Where torch work runs: `auto`, `cpu` or `cuda`, resolved the same way for SAM and for nnU-Net."""

from __future__ import annotations

from samcrowd.errors import SamcrowdError


def resolve_device(device: str, key: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is an error naming `key`."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SamcrowdError(
            f"{key} is cuda but torch sees no CUDA device on this machine "
            f"(use {key}: auto or cpu, or run this job on a GPU node)"
        )
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
