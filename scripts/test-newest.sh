#!/usr/bin/env bash
# The whole suite against the newest versions pyproject.toml's ranges allow (not the lock), in ./.venv-newest:
# finds an SDK release that breaks routekit before a user's fresh install does. Arguments go to pytest.
# When it passes and the lock should move: `bash scripts/lock.sh`, then `bash scripts/test.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-newest DEPS=newest exec bash scripts/test.sh "$@"
