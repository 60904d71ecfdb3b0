"""Shared fixtures. Tests run offline: no model hub, no telemetry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
REALAUDIO = Path(os.environ.get("CURATE_REALAUDIO", REPO.parent / "shared" / "data" / "realaudio"))


@pytest.fixture(scope="session")
def realaudio() -> Path:
    """../shared/data/realaudio (86 real recordings + INVENTORY.csv); the test is skipped when absent."""
    if not (REALAUDIO / "INVENTORY.csv").exists():
        pytest.skip(f"real audio not available at {REALAUDIO}")
    return REALAUDIO


@pytest.fixture(scope="session")
def inventory(realaudio: Path):
    import pandas as pd

    return pd.read_csv(realaudio / "INVENTORY.csv", keep_default_na=False)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, and much faster on a shared, oversubscribed CI machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


S3_BUCKET = "curate-test"  # the bucket the ``s3`` fixture creates


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 (a free port), found by s3fs through ``AWS_ENDPOINT_URL``; yields the fs."""
    pytest.importorskip("moto.server", reason="needs moto[server]: pip install 'moto[server]'")
    s3fs = pytest.importorskip("s3fs", reason="needs s3fs: pip install 'curate[storage]'")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = pytest.MonkeyPatch()
    env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    env.setenv("AWS_ACCESS_KEY_ID", "testing")
    env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.delenv(var, raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    if not fs.exists(S3_BUCKET):  # moto keeps its buckets per process, across servers
        fs.mkdir(S3_BUCKET)
    try:
        yield fs
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        env.undo()
        server.stop()


@pytest.fixture(scope="module")
def s3_archive(s3, tmp_path_factory):
    """``put(prefix, n=…, duration_s=…)``: a tone archive (:func:`curate.testing.make_archive`) and its catalog
    (relative audio paths) in the bucket under ``prefix`` → (the local archive folder, the catalog's s3:// URL)."""
    from curate.testing import make_archive

    def put(prefix: str, **archive) -> tuple[Path, str]:
        root = tmp_path_factory.mktemp("archive")
        make_archive(root, **archive)
        s3.put(str(root / "audio"), f"{S3_BUCKET}/{prefix}/audio", recursive=True)
        s3.put(str(root / "catalog.csv"), f"{S3_BUCKET}/{prefix}/catalog.csv")
        return root, f"s3://{S3_BUCKET}/{prefix}/catalog.csv"

    return put
