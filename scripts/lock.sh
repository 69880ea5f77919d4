#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml's ranges (the newest versions they allow today), with hashes.
#   requirements/dev.lock      what `scripts/test.sh` installs: routekit with its dev extra, and the test tools
#   requirements/runtime.lock  what `scripts/setup.sh` installs: routekit's own dependencies (versions as in dev.lock)
# Then run `bash scripts/test.sh` and commit both files when the suite passes.
# Arguments go to uv: `bash scripts/lock.sh --upgrade-package anthropic` moves one package and keeps the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
if [ ! -x "$uv" ]; then
    echo "scripts/lock.sh needs uv: run 'EXTRAS=dev bash scripts/setup.sh' first (or set UV=/path/to/uv)" >&2
    exit 2
fi
common=(--universal --python-version 3.11 --generate-hashes --quiet --no-header)
if [ "$#" -eq 0 ]; then set -- --upgrade; fi
"$uv" pip compile pyproject.toml requirements/build.in requirements/test-tools.in --extra dev "${common[@]}" "$@" \
    -o requirements/dev.lock
"$uv" pip compile pyproject.toml requirements/build.in "${common[@]}" -c requirements/dev.lock \
    -o requirements/runtime.lock
echo "written: requirements/dev.lock ($(grep -c '==' requirements/dev.lock) packages)," \
    "requirements/runtime.lock ($(grep -c '==' requirements/runtime.lock) packages)" >&2
