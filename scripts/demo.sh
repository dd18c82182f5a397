#!/usr/bin/env bash
# Builds chitty-agent and runs it on its built-in default configuration (no
# 1Password account needed), then shows how to query it with curl.
# Ctrl-C stops the agent (it drains and removes its socket).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
[[ -f build/build.ninja ]] || meson setup build
ninja -C build agent/chitty-agent

dir="${CHITTY_DEMO_DIR:-${XDG_RUNTIME_DIR:-/tmp}/chitty-demo-$(id -u)}"
sock="$dir/agent.sock"
mkdir -p "$dir"
chmod 0700 "$dir"

build/agent/chitty-agent --socket "$sock" --state-dir "$dir/state" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"' INT TERM
for _ in $(seq 250); do
  [[ -S "$sock" ]] && break
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit 1; }
  sleep 0.02
done

cat <<MSG

chitty-agent is running (pid $pid) on its built-in defaults, socket $sock

\$ curl --unix-socket $sock http://localhost/health
$(curl --silent --show-error --unix-socket "$sock" http://localhost/health)

More to try:
  curl -i --unix-socket $sock http://localhost/api/onepassword/health
  curl -i --unix-socket $sock http://localhost/no/such/route        # 404, JSON error
  curl -i -X DELETE --unix-socket $sock http://localhost/health     # 405 with Allow

Press Ctrl-C to stop it.
MSG
wait "$pid"
