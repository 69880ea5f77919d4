#!/usr/bin/env bash
# Set up routekit in ./.venv (idempotent). EXTRAS=dev also installs the test and lint tools.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "routekit needs Python 3.11 or newer; found: $("$python" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
spec="."
if [ -n "${EXTRAS:-}" ]; then spec=".[${EXTRAS}]"; fi
echo "installing routekit ($spec) into .venv ..." >&2
# pip's output (and the build backend's warnings) is shown only when something fails.
if ! { .venv/bin/python -m pip install --quiet --upgrade pip && .venv/bin/python -m pip install --quiet --editable "$spec"; } >"$log" 2>&1; then
    grep -v "is ignored" "$log" >&2
    echo "routekit: installing the Python packages failed (pip's output above)" >&2
    exit 1
fi
.venv/bin/python -c 'import providers, agent' || { echo "routekit did not install; see the pip output above" >&2; exit 1; }
echo "routekit is installed in $(pwd)/.venv (command: .venv/bin/routekit)" >&2
