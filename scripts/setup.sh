#!/usr/bin/env bash
# One-time set-up for `make demo` / `make test` on a fresh Debian/Ubuntu machine:
# system packages (ffmpeg, sox, espeak-ng, libchromaprint-tools for fpcalc + libchromaprint1, chromium for the
# curate explore browser tests) when missing,
# then a virtualenv with the pinned, hash-checked stack (requirements.lock + requirements-dev.lock; `make lock`).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}

missing=()
for tool in ffmpeg sox espeak-ng fpcalc chromium; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg sox espeak-ng libchromaprint-tools >/dev/null
  # the browser tests of curate explore (Debian's Chromium; Playwright drives it, `playwright install` never runs)
  command -v chromium >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null \
    || echo "setup: chromium could not be installed; the browser tests of curate explore will be skipped"
fi

command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "curate needs Python 3.11"' \
  || { echo "setup: Python 3.11 is required (found $("$PYTHON" --version))"; exit 1; }

stamp="$VENV/.installed-$(cat requirements.lock requirements-dev.lock pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "setup: creating $VENV with the pinned stack (first time: a few minutes, ~9 GB)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
  quiet "$VENV/bin/python" -m pip install -q --upgrade "pip>=24"
  # every file checked against the sha256 in the locks (runtime stack, then the test and lint tools)
  quiet "$VENV/bin/python" -m pip install -q --require-hashes -r requirements.lock -r requirements-dev.lock
  quiet "$VENV/bin/python" -m pip install -q --no-deps -e .
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
