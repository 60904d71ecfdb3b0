"""curate: broadcast archive → clean 1–30 s single-speaker speech segments for self-supervised pre-training.

``import curate`` stays light: heavy libraries (torch, whisper, pyannote, ray …) are imported inside the
functions that need them.
"""

__version__ = "0.1.0"
