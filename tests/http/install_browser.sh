#!/usr/bin/env bash
# Install what the browser tests need: Debian's chromium (apt-get) and the playwright Python package
# into the project's .venv. Playwright's own browser downloads are never used (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD):
# the tests launch /usr/bin/chromium through executable_path.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "install_browser.sh: /usr/bin/chromium is missing and this is not root; run: sudo apt-get install -y chromium" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi

if ! "$root/${VENV:-.venv}/bin/python" -c "import playwright" 2>/dev/null; then
  "$root/${VENV:-.venv}/bin/python" -m pip install -q playwright
fi
echo "install_browser.sh: chromium at /usr/bin/chromium ($(/usr/bin/chromium --version 2>/dev/null || echo unknown)); playwright installed"
