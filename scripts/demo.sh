#!/usr/bin/env bash
# Builds chitty-agent and runs it without any 1Password account: the packaged
# ChittyOS catalog, two demo credentials given in the environment (the
# agent imports them into locked memory and scrubs them from its
# environment), and a [[service]] for the user running this script. Then
# shows how to query it with curl. Ctrl-C stops the agent (it drains and
# removes its socket).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
[[ -f build/build.ninja ]] || meson setup build
ninja -C build agent/chitty-agent agent/chittyctl

dir="${CHITTY_DEMO_DIR:-${XDG_RUNTIME_DIR:-/tmp}/chitty-demo-$(id -u)}"
sock="$dir/agent.sock"
mkdir -p "$dir"
chmod 0700 "$dir"

# The demo configuration: socket and state here, the packaged catalog, and
# this user as the service "demo".
{
  printf '[agent]\nsocket = "%s"\nstate_dir = "%s"\n\n' "$sock" "$dir/state"
  sed -n '/^\[cache\]/,$p' packaging/agent.toml
  cat <<TOML

[[service]]
name = "demo"
uid = $(id -u)
allow = ["type:openai_api_key", "type:chittyid_service_token"]
TOML
} >"$dir/agent.toml"

# Demo values, random each run (never real credentials).
openai="sk-demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
chittyid="chittyid-demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

OPENAI_API_KEY="$openai" CHITTY_ID_TOKEN="$chittyid" build/agent/chitty-agent --config "$dir/agent.toml" &
pid=$!
unset openai chittyid
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"' INT TERM
for _ in $(seq 250); do
  [[ -S "$sock" ]] && break
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit 1; }
  sleep 0.02
done

q() { echo "\$ $*"; "$@"; echo; echo; }
cat <<MSG

chitty-agent is running (pid $pid) on $sock
with the configuration $dir/agent.toml (the packaged catalog; no 1Password account).

MSG
q curl --silent --show-error --unix-socket "$sock" http://localhost/api/onepassword/retrieve \
  -H 'Content-Type: application/json' -d '{"credential_type":"openai_api_key","context":{"purpose":"api-call"}}'
q curl --silent --show-error --include --unix-socket "$sock" \
  'http://localhost/v1/secret?ref=op://ChittyOS%20Services/ChittyID%20Service%20Token/service_token'
q curl --silent --show-error --unix-socket "$sock" http://localhost/health
# The same through chittyctl: a value, and a command that gets one in its
# environment while its output is masked.
q build/agent/chittyctl --socket "$sock" get --type chittyid_service_token
OPENAI_API_KEY='op://ChittyOS Integrations/OpenAI API/api_key' \
  q build/agent/chittyctl --socket "$sock" run -- sh -c 'echo "the app got a key of ${#OPENAI_API_KEY} characters: $OPENAI_API_KEY"'

cat <<MSG
The values came from the agent's environment and are no longer in it:
  tr '\\0' '\\n' < /proc/$pid/environ | grep -c OPENAI_API_KEY    # 0 (as root: the agent is not dumpable, so its /proc files are root's)

More to try:
  curl -i --unix-socket $sock http://localhost/api/onepassword/retrieve -d '{"credential_type":"neon_database_url"}'   # 403: not granted
  curl -i --unix-socket $sock http://localhost/api/onepassword/retrieve -d '{"ref":"op://bad"}'                      # 400, says why
  curl -i --unix-socket $sock http://localhost/no/such/route                                                      # 404, JSON error
  build/agent/chittyctl --socket $sock get --type neon_database_url; echo "exit \$?"                                   # exit 4: denied, with the reason
  build/agent/chittyctl --socket $sock mcp                                                                         # an MCP server on stdio (docs/mcp.md)

Press Ctrl-C to stop it.
MSG
wait "$pid"
