#!/usr/bin/env bash
# Set up routekit in ./.venv (idempotent), from the lock files: the exact, hashed versions CI passed with.
#   EXTRAS=dev      also the test and lint tools (requirements/dev.lock instead of requirements/runtime.lock)
#   DEPS=newest     ignore the locks: the newest versions pyproject.toml's ranges allow (see scripts/test-newest.sh)
#   VENV=DIR        another virtual environment than ./.venv
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=${VENV:-.venv}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "routekit needs Python 3.11 or newer; found: $("$python" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
if [ "${DEPS:-locked}" = newest ]; then
    what="the newest versions pyproject.toml allows"
    install() {
        "${pip[@]}" install --upgrade pip &&
            "${pip[@]}" install --upgrade --upgrade-strategy eager --editable ".[dev]" \
                -r requirements/build.in -r requirements/test-tools.in
    }
else
    lock=requirements/runtime.lock
    if [ "${EXTRAS:-}" = dev ]; then lock=requirements/dev.lock; fi
    what=$lock
    install() {
        "${pip[@]}" install --require-hashes -r "$lock" &&
            "${pip[@]}" install --no-deps --no-build-isolation --editable .
    }
fi
echo "installing routekit into $venv ($what) ..." >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# pip's output (and the build backend's warnings) is shown only when something fails.
if ! install >"$log" 2>&1; then
    grep -v "is ignored" "$log" >&2
    echo "routekit: installing the Python packages failed (pip's output above)" >&2
    exit 1
fi
"$venv/bin/python" -c 'import providers, agent' || { echo "routekit did not install; see the pip output above" >&2; exit 1; }
echo "routekit is installed in $(pwd)/$venv (command: $venv/bin/routekit)" >&2
