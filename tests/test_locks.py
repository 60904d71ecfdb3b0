"""The two locks that `make setup` installs with `pip --require-hashes`: every pin hashed, the runtime stack
(requirements.lock) free of test and lint tools, the dev tools (requirements-dev.lock) holding only what the runtime
lock lacks, and both agreeing with pyproject.toml's requirements (`make lock` regenerates them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
RUNTIME, DEV = REPO / "requirements.lock", REPO / "requirements-dev.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def read_lock(path: Path) -> dict[str, dict]:
    """name → {version, hashes, via} for each pinned requirement; anything else that is not a comment fails."""
    pins: dict[str, dict] = {}
    current = None
    for line in path.read_text().splitlines():
        stripped = line.strip().rstrip("\\").strip()
        if not stripped:
            continue
        if m := PIN.match(line):
            current = pins[canonicalize_name(m.group(1))] = {"version": m.group(2), "hashes": [], "via": []}
        elif line.startswith(" ") and stripped.startswith("--hash=sha256:") and current is not None:
            current["hashes"].append(stripped.removeprefix("--hash=sha256:"))
        elif line.startswith(" ") and stripped.startswith("#") and current is not None:
            via = stripped.lstrip("#").strip().removeprefix("via").strip()
            if via:
                current["via"].append(via.split()[0])
        else:
            assert stripped.startswith("#"), f"{path.name}: not a hashed pin: {line!r}"
            current = None
    return pins


@pytest.fixture(scope="module")
def locks():
    return read_lock(RUNTIME), read_lock(DEV)


def project_requirements() -> tuple[list[Requirement], list[Requirement]]:
    """(runtime: dependencies + every extra but dev, dev) from pyproject.toml, without curate's own extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    runtime += [Requirement(r) for name, reqs in extras.items() if name != "dev" for r in reqs]
    dev = [Requirement(r) for r in extras["dev"]]
    return [r for r in runtime if r.name != "curate"], dev


def test_every_pin_is_exact_and_hashed(locks):
    for path, pins in zip((RUNTIME, DEV), locks, strict=True):
        assert pins, path.name
        for name, pin in pins.items():
            assert pin["hashes"], f"{path.name}: {name} has no --hash"
            assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in pin["hashes"]), f"{path.name}: {name}"
            assert not re.search(r"[<>=!~*,]", pin["version"]), f"{path.name}: {name}=={pin['version']}"


def test_runtime_and_dev_are_split(locks):
    runtime, dev = locks
    assert not set(runtime) & set(dev), "a package pinned in both locks"
    _, dev_reqs = project_requirements()
    for req in dev_reqs:
        name = canonicalize_name(req.name)
        assert name not in runtime, f"dev tool {name} in requirements.lock"
        assert name in dev, f"dev tool {name} missing from requirements-dev.lock"
    # Nothing in the runtime lock is there because a dev tool needs it: each pin is asked for by curate or by
    # another runtime pin (uv's `# via` notes).
    for name, pin in runtime.items():
        assert pin["via"], f"requirements.lock: {name} says nothing of who needs it"
        for parent in pin["via"]:
            assert parent == "curate" or canonicalize_name(parent) in runtime, f"{name} via {parent}"


def test_locks_satisfy_pyproject(locks):
    runtime, dev = locks
    runtime_reqs, dev_reqs = project_requirements()
    for reqs, pins, path in ((runtime_reqs, runtime, RUNTIME), (dev_reqs, dev, DEV)):
        for req in reqs:
            if req.marker is not None and not req.marker.evaluate():
                continue
            name = canonicalize_name(req.name)
            assert name in pins, f"{path.name} lacks {req}"
            assert req.specifier.contains(pins[name]["version"], prereleases=True), (
                f"{path.name}: {name}=={pins[name]['version']} does not satisfy {req}"
            )
