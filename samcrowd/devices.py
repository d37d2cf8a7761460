"""Where torch work runs: `auto`, `cpu` or `cuda`, resolved the same way for SAM and for nnU-Net."""

from __future__ import annotations

from pathlib import Path

from samcrowd.errors import SamcrowdError

#: Device files a GPU driver makes (NVIDIA; AMD ROCm, which torch also calls cuda; WSL2's GPU).
GPU_DRIVER_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def gpu_driver_present() -> bool:
    """Whether this machine has a GPU driver at all: without one torch cannot see a GPU, so the answer
    needs no torch import (1.4 s, paid by every CPU job that only decodes through OpenVINO)."""
    return any(Path(p).exists() for p in GPU_DRIVER_FILES)


def resolve_device(device: str, key: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is an error naming `key`."""
    if device == "cpu" or (device == "auto" and not gpu_driver_present()):
        return "cpu"
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SamcrowdError(
            f"{key} is cuda but torch sees no CUDA device on this machine "
            f"(use {key}: auto or cpu, or run this job on a GPU node)"
        )
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
