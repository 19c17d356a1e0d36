#!/usr/bin/env bash
# Builds the Python package (crates/sessionward-py + python/sessionward) into a virtualenv, checks
# the stubs against the compiled module (mypy stubtest), type-checks the package (mypy --strict)
# and runs the Python tests (pytest; settings in pyproject.toml: warnings are errors, 120 s
# per test).
#
#   scripts/test-python.sh            # everything
#   scripts/test-python.sh -k fork    # extra arguments go to pytest
#
# Environment: VENV (default .venv), PYTHON (default python3, 3.11+), CARGO_TARGET_DIR (cargo's).
# Needs only PyPI and crates.io. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
VENV_PY="$VENV/bin/python"

# Test and build tools, with lower bounds; the other test dependencies are those of the
# pure-Python modules' tests (celery, requests, httpx) and of the web tests, which run the example
# apps under real servers (starlette + uvicorn, flask + waitress).
REQUIREMENTS=(
    "maturin>=1.7,<2"
    "pytest>=8"
    "pytest-timeout>=2.3"
    "hypothesis>=6.100"
    "mypy>=1.10"
    "celery>=5.3"
    "requests>=2.31"
    "httpx>=0.27"
    "starlette>=0.37"
    "uvicorn>=0.29"
    "flask>=3"
    "waitress>=3"
)

step() { printf '\n==> %s\n' "$*"; }

if [[ ! -x "$VENV_PY" ]]; then
    step "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV_PY" -c 'import sys; assert sys.version_info >= (3, 11), f"Python 3.11+ needed, {sys.version.split()[0]} found"'

# Reinstall the tools only when the list changes (a stamp inside the venv).
stamp="$VENV/.sessionward-test-deps"
wanted="$(printf '%s\n' "${REQUIREMENTS[@]}")"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$wanted" ]]; then
    step "installing build and test tools"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
    printf '%s' "$wanted" >"$stamp"
fi

step "building sessionward into $VENV (maturin develop, profile release-python)"
VIRTUAL_ENV="$(cd "$VENV" && pwd)" PATH="$VENV/bin:$PATH" \
    "$VENV/bin/maturin" develop --profile release-python --quiet

step "checking the stubs against the compiled module (mypy stubtest)"
"$VENV_PY" -m mypy.stubtest sessionward._native \
    --allowlist python/stubtest-allowlist.txt --mypy-config-file pyproject.toml

step "type-checking the package (mypy --strict, config in pyproject.toml)"
"$VENV_PY" -m mypy

step "running the Python tests"
"$VENV_PY" -m pytest python/tests "$@"
