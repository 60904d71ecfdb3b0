"""wav2vec 2.0 pre-training on curate manifests (thesis §5.2), nanoGPT-style: read model.py, then train.py.

``import curate.w2v2`` stays light: torch is imported by the submodules that need it.
"""
