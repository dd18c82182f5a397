#!/usr/bin/env bash
# Measures chitty-agent's start-up time, memory, and /health throughput over
# the Unix socket, and the same load against nginx serving a fixed JSON body
# on a Unix socket (the reference peer: one worker, like our one loop).
#
#   ./bench/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}

if [[ -f build-release/build.ninja ]]; then
  meson setup --reconfigure build-release -Dbench=true >/dev/null
else
  meson setup build-release -Dbuildtype=release -Dtests=false -Dbench=true
fi
ninja -C build-release agent/chitty-agent bench/uds_bench bench/secure_bench bench/audit_bench bench/risk_eval bench/risk_cost | grep -v "^\[" || true
[[ -x build-release/agent/chitty-agent && -x build-release/bench/uds_bench ]]
agent=build-release/agent/chitty-agent
bench=build-release/bench/uds_bench

# Server on CPU 1, load generator on CPU 0 (on a 2-core VM an unpinned pair
# migrates, and each cross-core wake-up costs tens of microseconds).
server_cpu=${SERVER_CPU:-1}
client_cpu=${CLIENT_CPU:-0}
pin() { taskset -c "$1" "${@:2}"; }

dir=$(mktemp -d /tmp/chitty-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

echo "== sealed memory (bench/secure_bench.cpp)"
pin "$server_cpu" build-release/bench/secure_bench

echo "== start-up ($agent, built-in defaults)"
$bench startup "$agent" --runs 20

echo "== /health over the socket (chitty-agent)"
taskset -c "$server_cpu" $agent --socket "$dir/agent.sock" --state-dir "$dir/state" 2>/dev/null &
pids+=($!)
for _ in $(seq 200); do [[ -S "$dir/agent.sock" ]] && break; sleep 0.02; done
declare -A ours
for spec in "1 1" "32 1" "32 8"; do
  read -r c p <<<"$spec"
  line=$(pin "$client_cpu" $bench load "$dir/agent.sock" --connections "$c" --pipeline "$p" --seconds "$seconds")
  echo "chitty-agent $line"
  ours[$spec]=$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line")
done

echo "== cached retrieval: GET /v1/secret (caller re-check, policy, unseal, audit, write, wipe)"
# start_secret_agent NAME [TOML lines]: an agent serving one env-backed
# credential to this uid on $dir/NAME.sock, its one miss already taken.
secret_path="/v1/secret?ref=op://ChittyOS%20Integrations/OpenAI%20API/api_key"
start_secret_agent() {
  local name=$1 extra=${2:-}
  cat >"$dir/$name.toml" <<TOML
[agent]
socket = "$dir/$name.sock"
state_dir = "$dir/$name-state"
max_connections_per_uid = 1024
max_requests_per_connection = 1000000000
$extra
[[credential]]
type = "openai_api_key"
ref = "op://ChittyOS Integrations/OpenAI API/api_key"
env = "OPENAI_API_KEY"
[[service]]
name = "bench"
uid = $(id -u)
allow = ["type:openai_api_key"]
rate_limit = "1000000000/h"
TOML
  OPENAI_API_KEY="sk-bench-0123456789abcdef0123456789abcdef" taskset -c "$server_cpu" $agent --config "$dir/$name.toml" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 200); do [[ -S "$dir/$name.sock" ]] && break; sleep 0.02; done
  curl -s --unix-socket "$dir/$name.sock" "http://localhost$secret_path" >/dev/null  # the one miss
}
start_secret_agent secret
declare -A secret
for spec in "1 1" "32 1" "32 4"; do
  read -r c p <<<"$spec"
  line=$(pin "$client_cpu" $bench load "$dir/secret.sock" --connections "$c" --pipeline "$p" --seconds "$seconds" --path "$secret_path")
  echo "chitty-agent $line"
  secret[$spec]=$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line")
done

echo "== the audit spool (bench/audit_bench.cpp)"
pin "$server_cpu" build-release/bench/audit_bench 200000 2>/dev/null

echo "== audit on vs off: GET /v1/secret from the cache, the same load on two agents"
for durable in true false; do
  start_secret_agent "audit-$durable" "$(printf '[audit]\ndurable = %s' "$durable")"
done
declare -A audit_rps
for spec in "1 1" "32 1"; do
  read -r c p <<<"$spec"
  for durable in true false; do
    line=$(pin "$client_cpu" $bench load "$dir/audit-$durable.sock" --connections "$c" --pipeline "$p" --seconds "$seconds" --path "$secret_path")
    echo "audit durable=$durable $line"
    audit_rps[$durable]=$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line")
  done
  awk -v a="${audit_rps[true]}" -v b="${audit_rps[false]}" -v s="$spec" \
    'BEGIN { printf "ratio audit on/off (connections pipeline = %s): %.2f (%.1f us of audit per request)\n", s, a / b, (1e6 / a - 1e6 / b) }'
done

echo "== risk scoring on vs off: GET /v1/secret from the cache (docs/risk.md), the same load on two agents"
# Scoring as configured by default (a new service learns: its soft factors
# are computed and reported, and weigh nothing) against [risk] enabled =
# false. At 32 connections the agent's CPU is saturated, so 1e6/rps is its
# CPU time per request and the difference is what scoring costs. Three
# alternating rounds; the median of each.
for enabled in true false; do
  start_secret_agent "risk-$enabled" "$(printf '[risk]\nenabled = %s' "$enabled")"
done
for spec in "1 1" "32 1"; do
  read -r c p <<<"$spec"
  declare -A risk_runs=([true]="" [false]="")
  for round in 1 2 3; do
    for enabled in true false; do
      line=$(pin "$client_cpu" $bench load "$dir/risk-$enabled.sock" --connections "$c" --pipeline "$p" --seconds "$seconds" --path "$secret_path")
      echo "risk enabled=$enabled round $round $line"
      risk_runs[$enabled]+="$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line") "
    done
  done
  on=$(tr ' ' '\n' <<<"${risk_runs[true]}" | sed '/^$/d' | sort -n | sed -n 2p)
  off=$(tr ' ' '\n' <<<"${risk_runs[false]}" | sed '/^$/d' | sort -n | sed -n 2p)
  awk -v a="$on" -v b="$off" -v s="$spec" \
    'BEGIN { printf "ratio risk on/off (connections pipeline = %s, medians %d vs %d req/s): %.3f (%.2f us of scoring per request)\n", s, a, b, a / b, (1e6 / a - 1e6 / b) }'
done
echo "== what scoring adds to a cached retrieval, in process (bench/risk_cost.cpp: the broker's path and the audit line)"
pin "$server_cpu" build-release/bench/risk_cost
echo "== the risk engine alone (bench/risk_eval.cpp: assess + record per request, over a labelled trace)"
pin "$server_cpu" build-release/bench/risk_eval | grep -E "per request"

echo "== a miss: the agent's added latency over Connect itself (the emulator, tests/fakes/connect-emulator)"
if command -v node >/dev/null; then
  emulator=tests/fakes/connect-emulator/emulator.js
  # Connect beside the agent (same CPU): both paths cross cores the same twice.
  taskset -c "$server_cpu" node "$emulator" --fixtures tests/fakes/connect-emulator/fixtures/chittyos.json \
    --port-file "$dir/connect.port" --quiet >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do [[ -s "$dir/connect.port" ]] && break; sleep 0.02; done
  connect_port=$(cat "$dir/connect.port")
  printf 'good-token\n' >"$dir/op-token"
  chmod 0600 "$dir/op-token"
  cat >"$dir/miss.toml" <<TOML
[agent]
socket = "$dir/miss.sock"
state_dir = "$dir/miss-state"
max_requests_per_connection = 1000000000
[upstream.onepassword]
url = "http://127.0.0.1:$connect_port"
token_file = "$dir/op-token"
[[service]]
name = "bench"
uid = $(id -u)
allow = ["op://**"]
rate_limit = "1000000000/h"
TOML
  taskset -c "$server_cpu" $agent --config "$dir/miss.toml" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 200); do [[ -S "$dir/miss.sock" ]] && break; sleep 0.02; done
  miss_ref="op://ChittyOS%20Integrations/OpenAI%20API/api_key"
  curl -s --unix-socket "$dir/miss.sock" "http://localhost/v1/secret?ref=$miss_ref" >/dev/null  # resolves the names once
  vault=w5n8integrationsvault00001
  item=$(curl -s -H "Authorization: Bearer good-token" \
    "http://127.0.0.1:$connect_port/v1/vaults/$vault/items?filter=title%20eq%20%22OpenAI%20API%22" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
  # Every agent request is a forced refresh: one item fetch from Connect, like the direct request.
  pin "$client_cpu" $bench miss "$dir/miss.sock" --path "/v1/secret?ref=$miss_ref&refresh=true" \
    --tcp-port "$connect_port" --tcp-path "/v1/vaults/$vault/items/$item" --token good-token --requests 2000
else
  echo "(node not installed: scripts/install-deps.sh installs it)"
fi

if command -v nginx >/dev/null; then
  echo "== the same load against nginx (1 worker, return 200 with a JSON body)"
  body=$(curl -s --unix-socket "$dir/agent.sock" http://localhost/health)
  cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/ngx; proxy_temp_path $dir/ngx; fastcgi_temp_path $dir/ngx;
  uwsgi_temp_path $dir/ngx; scgi_temp_path $dir/ngx;
  server {
    listen unix:$dir/nginx.sock;
    location /health { default_type application/json; return 200 '$body'; }
    location /v1/secret { default_type text/plain; return 200 'sk-bench-0123456789abcdef0123456789abcdef'; }
  }
}
NGINX
  taskset -c "$server_cpu" nginx -c "$dir/nginx.conf" -p "$dir" &
  pids+=($!)
  for _ in $(seq 200); do [[ -S "$dir/nginx.sock" ]] && break; sleep 0.02; done
  for spec in "1 1" "32 1" "32 8"; do
    read -r c p <<<"$spec"
    line=$(pin "$client_cpu" $bench load "$dir/nginx.sock" --connections "$c" --pipeline "$p" --seconds "$seconds")
    theirs=$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line")
    echo "nginx        $line"
    awk -v a="${ours[$spec]}" -v b="$theirs" -v s="$spec" \
      'BEGIN { printf "ratio chitty-agent/nginx (connections pipeline = %s): %.2f\n", s, a / b }'
  done
  echo "== GET /v1/secret against nginx returning the same 40-byte body"
  for spec in "1 1" "32 1" "32 4"; do
    read -r c p <<<"$spec"
    line=$(pin "$client_cpu" $bench load "$dir/nginx.sock" --connections "$c" --pipeline "$p" --seconds "$seconds" --path "$secret_path")
    theirs=$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line")
    echo "nginx        $line"
    awk -v a="${secret[$spec]}" -v b="$theirs" -v s="$spec" \
      'BEGIN { printf "ratio chitty-agent/nginx, cached secret (connections pipeline = %s): %.2f\n", s, a / b }'
  done
else
  echo "(nginx not installed: apt-get install nginx-light for the reference figures)"
fi
