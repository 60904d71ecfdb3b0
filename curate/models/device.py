"""The one device rule for every model: which device ``auto`` means, and freeing GPU memory after a model.

``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``. An explicit device is taken as given, except that a
CUDA device asked for on a machine without one is an error (``require_available``), not a silent CPU run.
"""

from __future__ import annotations

import gc
import sys


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pick_device(device: str = "auto", *, require_available: bool = False) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; anything else is returned as given. With
    ``require_available``, a ``cuda…`` device on a machine without CUDA raises :class:`RuntimeError`."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if require_available and device.startswith("cuda") and not cuda_available():
        raise RuntimeError(f"device '{device}' requested but CUDA is not available")
    return device


def free_cuda() -> None:
    """Release cached GPU memory after a model is dropped (no-op without CUDA or torch loaded)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = ["cuda_available", "free_cuda", "pick_device"]
