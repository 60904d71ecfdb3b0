"""No stage runs forever on one recording: past its limit a stage is stopped and the recording becomes a failure
row naming the stage (soft limit); a stage blocked in native code has its worker process killed and the
recording is not tried again (hard limit). The run goes on. See also tests/test_stage_watchdog_runs.py."""

import random
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from curate.errors import ConfigError, StageTimeout
from curate.runners.watchdog import Watchdog
from curate.testing import fake_recording

NEVER_KILL = 3600.0  # a grace no test reaches: the hard limit would kill the test process


def _busy(seconds: float) -> str:
    """Python bytecode the whole time (the watchdog's exception can land on any instruction)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return "done"


def _watchdog(limit_s: float, grace_s: float = NEVER_KILL) -> Watchdog:
    return Watchdog(fake_recording("r1", 10.0), limit_s, grace_s)


@pytest.mark.timeout(30)
def test_a_stage_looping_in_python_is_stopped_at_its_limit():
    t0 = time.perf_counter()
    with pytest.raises(StageTimeout) as e:
        _watchdog(0.3).call("wx_transcribe", _busy, 600.0)
    assert 0.3 <= time.perf_counter() - t0 < 5
    assert e.value.stage == "wx_transcribe"
    assert "stage wx_transcribe ran past its watchdog limit of 0.3 s for a 10 s recording" in str(e.value)


@pytest.mark.timeout(30)
def test_a_stage_that_catches_exception_cannot_swallow_the_watchdog():
    def stubborn():
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # a stage's fallback path must not turn a timeout into "try again"
                pass

    with pytest.raises(StageTimeout):
        _watchdog(0.2).call("tag_events", stubborn)


@pytest.mark.timeout(30)
def test_one_blocking_c_call_does_not_see_the_soft_limit():
    """Why the hard limit exists: ``time.sleep(1)`` is one C call; the exception waits until it returns."""
    t0 = time.perf_counter()
    with pytest.raises(StageTimeout):
        _watchdog(0.1).call("s", time.sleep, 1.0)
    assert time.perf_counter() - t0 >= 1.0


def test_the_result_and_the_stages_own_errors_pass_through():
    assert _watchdog(5.0).call("s", _busy, 0.0) == "done"
    with pytest.raises(ValueError, match="boom"):
        _watchdog(5.0).call("s", lambda: (_ for _ in ()).throw(ValueError("boom")))


@pytest.mark.timeout(120)
def test_no_stray_exception_after_a_call_that_ends_near_its_limit():
    """Hundreds of calls that end just before, at or just after the limit: each either returns or raises
    StageTimeout inside ``call``; nothing is raised later in unrelated code, and no watcher thread is left."""
    rng = random.Random(0)
    before = threading.active_count()
    outcomes = {"returned": 0, "timed_out": 0}
    stray = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # the watcher gets the GIL within 0.1 ms of its limit, not 5 ms: a tight race
    try:
        for _ in range(300):
            _one_close_call(rng, outcomes, stray)
    finally:
        sys.setswitchinterval(switch)
    assert not stray
    assert outcomes["returned"] > 5 and outcomes["timed_out"] > 5, outcomes  # both sides of the race were run
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def _one_close_call(rng, outcomes, stray):
    """A call that busy-loops for 80-120 % of its limit, then unrelated code that must see no exception."""
    limit = 0.01
    try:
        _watchdog(limit).call("s", _busy, limit * rng.uniform(0.8, 1.2))
        outcomes["returned"] += 1
    except StageTimeout:
        outcomes["timed_out"] += 1
    try:  # unrelated code after the call: a late exception would land here
        _busy(0.003)
        time.sleep(0.001)
        _busy(0.002)
    except BaseException as e:  # counting what must never happen (the watchdog raises a BaseException)
        stray.append(repr(e))


@pytest.mark.parametrize(
    ("override", "text"),
    [
        ("settings.stage_watchdog_factor=-1", "settings.stage_watchdog_factor must be a finite number >= 0"),
        ("settings.watchdog_factor=-0.5", "settings.watchdog_factor must be a finite number >= 0"),
        ("settings.watchdog_grace_s=-5", "settings.watchdog_grace_s must be a finite number >= 0"),
        ("settings.watchdog_floor_s=0", "settings.watchdog_floor_s must be a finite number > 0"),
        ("settings.watchdog_floor_s=.nan", "watchdog_floor_s: expected a finite number"),
        ("settings.stage_watchdog_factor=.nan", "stage_watchdog_factor: expected a finite number"),
        ("settings.watchdog_grace_s=.inf", "watchdog_grace_s: expected a finite number"),
    ],
)
def test_validate_rejects_bad_watchdog_settings(repo, override, text):
    from curate.cli.app import app
    from curate.config import load_pipeline

    with pytest.raises(ConfigError, match=text.replace(".", r"\.")):
        load_pipeline(repo / "pipelines" / "seq.yaml", [override])
    res = CliRunner().invoke(app, ["validate", str(repo / "pipelines" / "seq.yaml"), "--set", override])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert text.split(" ")[0].split(":")[0] in res.output.replace("\n", "")


def test_stage_limit_is_floor_plus_factor_times_duration(repo):
    from curate.config import load_pipeline

    pipe = load_pipeline(repo / "pipelines" / "seq.yaml", ["settings.watchdog_floor_s=10"])
    assert pipe.settings.stage_timeout_s(100.0) == 10 + 10.0 * 100  # the default stage factor: 10× real time
    assert pipe.settings.decode_timeout_s(100.0) == 10 + 1.0 * 100  # decoding keeps its own factor
    pipe = load_pipeline(repo / "pipelines" / "seq.yaml", ["settings.stage_watchdog_factor=2"])
    assert pipe.settings.stage_timeout_s(5.0) == 300 + 10 and pipe.settings.watchdog_grace_s == 60


@pytest.mark.timeout(30)
def test_an_interruption_that_surfaces_as_another_error_is_still_a_timeout():
    """The exception can land inside library code that turns it into another error (``threading``'s
    Condition.wait cut mid-way raises "release unlocked lock"; a stage may wrap what it caught): once the limit
    has fired, whatever comes out is the timeout, a failure row, not an error that stops the run."""

    def wrapping():
        try:
            while True:
                time.sleep(0.01)
        except BaseException as e:
            raise RuntimeError("release unlocked lock") from e

    with pytest.raises(StageTimeout, match="ran past its watchdog limit") as e:
        _watchdog(0.2).call("wx_diarize", wrapping)
    assert isinstance(e.value.__cause__, RuntimeError)
