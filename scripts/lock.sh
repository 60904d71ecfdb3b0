#!/usr/bin/env bash
# Regenerate the two hashed locks from pyproject.toml (`make lock`):
#   requirements.lock      the runtime stack, `curate[all]`: what a user of `make demo` needs
#   requirements-dev.lock  the test and lint tools (`curate[dev]`) on top of it: only the packages the first lacks
# uv resolves them and takes every file's sha256 from the index (no wheel is downloaded); `make setup` installs
# both with `pip --require-hashes`. Pins already in the files are kept (uv starts from the output file);
# `UPGRADE=1 make lock` moves everything to the newest versions pyproject.toml allows.
# Python 3.11.5 or later (a dev pin, soupsieve, needs it); Linux x86_64 (glibc 2.28+) wheels.
# uv lives in a private venv (.uvenv, git-ignored), never in the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VENV=${UV_VENV:-.uvenv}
[ -x "$UV_VENV/bin/uv" ] || { python3 -m venv "$UV_VENV" && "$UV_VENV/bin/pip" install -q "uv==0.13.10"; }

compile=("$UV_VENV/bin/uv" pip compile pyproject.toml --quiet --generate-hashes --index-url https://pypi.org/simple
  --python-version 3.11.5 --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock")
[ -n "${UPGRADE:-}" ] && compile+=(--upgrade)

"${compile[@]}" --extra all -o requirements.lock
# The dev tools resolved together with the runtime pins (as constraints), then the runtime packages left out.
"${compile[@]}" --extra all --extra dev -c requirements.lock -o requirements-dev.lock
python3 - <<'EOF'
import re
from pathlib import Path

def blocks(text):
    """(name, lines) for each pinned requirement with its hash and `# via` lines."""
    out, cur = [], None
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if m:
            cur = (re.sub(r"[-_.]+", "-", m.group(1)).lower(), [line])
            out.append(cur)
        elif cur and line.startswith((" ", "\t")):
            cur[1].append(line)
        else:
            cur = None
    return out

runtime = {name for name, _ in blocks(Path("requirements.lock").read_text())}
dev = Path("requirements-dev.lock")
kept = [b for b in blocks(dev.read_text()) if b[0] not in runtime]
head = [
    "# The test and lint tools of curate (`curate[dev]`), resolved together with requirements.lock and holding",
    "# only what that file lacks: install both, `pip install --require-hashes -r requirements.lock -r requirements-dev.lock`.",
    "# Regenerate with: make lock",
]
dev.write_text("\n".join(head + [line for _, lines in kept for line in lines]) + "\n")
print(f"lock: {len(runtime)} runtime packages in requirements.lock, {len(kept)} dev-only in requirements-dev.lock")
EOF
