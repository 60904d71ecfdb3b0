"""A Ray that curate starts is the user's alone (issue 24, item 6): loopback only, private session files."""

import os
import stat

import pytest

ray = pytest.importorskip("ray")


@pytest.mark.timeout(180)
def test_a_local_ray_listens_on_loopback_and_keeps_its_session_private():
    from curate.runners import ray as ray_runner
    from curate.runners import reaper

    if ray.is_initialized():
        ray.shutdown()
    try:
        ray_runner.init(num_cpus=1)
        ctx = ray.get_runtime_context()
        node = ray._private.worker.global_worker.node
        assert node.node_ip_address == "127.0.0.1"
        assert node.gcs_address.startswith("127.0.0.1:")  # where a client attaches: this machine only
        temp = reaper.private_temp_dir()
        assert stat.S_IMODE(temp.stat().st_mode) == 0o700 and temp.stat().st_uid == os.getuid()
        assert node.get_session_dir_path().startswith(str(temp))
        assert ctx.get_node_id()
    finally:
        ray.shutdown()
