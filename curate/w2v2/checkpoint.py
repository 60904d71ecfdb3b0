"""Checkpoints hold tensors and plain data only, and are read with ``torch.load(weights_only=True)``.

A full unpickler runs whatever code a file names, so opening a checkpoint someone handed you could run
anything. Every checkpoint curate writes (pre-training ``last.pt``/``best.pt``, ``finetuned.pt``) is therefore
tensors + dicts, lists, tuples, str, numbers, bool and None (the config is stored as its plain dict), and
every checkpoint it reads goes through :func:`load`, which refuses anything else with a clear message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from curate.errors import CurateError

PLAIN = (str, int, float, bool, type(None))


class CheckpointError(CurateError, ValueError):
    """A checkpoint cannot be written or read safely (not tensors + plain data, or not a checkpoint at all).
    A ValueError, so every command that reports bad input in one line reports this one too."""


def plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` as tensors + plain data: numpy scalars become Python numbers, numpy arrays tensors; anything
    else that is not a tensor, container or plain value raises :class:`CheckpointError` naming where it is."""
    import numpy as np
    import torch

    if isinstance(obj, np.generic):  # before PLAIN: np.float64 is a float subclass, and pickles as numpy
        return obj.item()
    if isinstance(obj, (torch.Tensor, *PLAIN)):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {
            k if isinstance(k, str | int) else _bad(k, f"{where} key"): plain(v, f"{where}.{k}") for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    return _bad(obj, where)


def _bad(obj: Any, where: str) -> Any:
    raise CheckpointError(
        f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be stored in a "
        "checkpoint; store tensors and plain data (dicts, lists, str, numbers) only"
    )


def save(path: str | Path, obj: dict[str, Any]) -> Path:
    """Write ``obj`` (checked and converted by :func:`plain`) atomically: a temp file, then a rename."""
    import torch

    path = Path(path)
    data = plain(obj)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return path


def load(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: tensors and plain data only, no code runs."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found is None:  # the weights-only unpickler met something that is not a pickle at all
            problem = re.search(r"WeightsUnpickler error: ([^\n]+)", str(e))
            raise CheckpointError(
                f"{path}: not a readable torch checkpoint ({problem.group(1) if problem else type(e).__name__})"
            ) from None
        raise CheckpointError(
            f"{path}: refused: it holds pickled Python objects ({found.group(1)}), not only tensors and plain data; "
            "loading it could run code from the file. curate writes checkpoints as tensors + plain data; if you "
            "trust this file's source, re-save it that way (curate.w2v2.checkpoint.save)."
        ) from None
    except Exception as e:  # truncated, not a torch file, ...
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path}: a checkpoint is a dict of tensors and plain data, got {type(ck).__name__}")
    return ck


__all__ = ["CheckpointError", "plain", "save", "load"]
