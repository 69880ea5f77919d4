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
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
spec="."
if [ -n "${EXTRAS:-}" ]; then spec=".[${EXTRAS}]"; fi
.venv/bin/python -m pip install --quiet --editable "$spec" 2>&1 | grep -v -e "is ignored" -e "^\s*$" || true
.venv/bin/python -c 'import providers, agent' || { echo "routekit did not install; see the pip output above" >&2; exit 1; }
echo "routekit is installed in $(pwd)/.venv (command: .venv/bin/routekit)" >&2
