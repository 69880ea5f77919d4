#!/usr/bin/env bash
# Set up everything the tests need and run the whole suite: lint, types, tests.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k anthropic`).
set -euo pipefail
cd "$(dirname "$0")/.."

export VENV=${VENV:-.venv}
EXTRAS=dev bash scripts/setup.sh
# Test-only system pieces (MCP reference servers from npm/PyPI, Node 22 for the conformance suite).
# PostgreSQL is installed (if missing) and started by the storage test fixtures themselves.
for installer in tests/*/install_*.sh; do
    [ -e "$installer" ] || continue
    echo "== $installer" >&2
    bash "$installer"
done

echo "== ruff" >&2
"$VENV"/bin/ruff check .
"$VENV"/bin/ruff format --check .
echo "== mypy" >&2
"$VENV"/bin/mypy
echo "== pytest" >&2
set +e
"$VENV"/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$status"
