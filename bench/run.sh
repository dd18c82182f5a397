#!/usr/bin/env bash
# One command for the project's speed and memory figures (bench/README.md,
# docs/performance.md). First the comparison: a cached retrieval through the
# agent's whole pipeline (caller check, policy, risk, rate limit, unseal,
# durable audit, wipe) against a bare epoll server (the machine's floor),
# nginx (one worker, `return 200` with a 200-byte JSON body) and Node's http
# with a Map (the seed's JavaScript design), all on Unix sockets, at 1, 8 and
# 64 keep-alive connections and 32 connections x 8 pipelined; one table with
# req/s, latency percentiles, server CPU per request and RSS, the agent's
# ratios to nginx, JSON and a PNG chart under bench/results/. Then the other
# scenarios (sealed memory, start-up, audit on/off, risk, a miss).
#
#   ./bench/run.sh [SECONDS]     (seconds per load; default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}

# What the benchmark needs beyond the build: the peers and the chart.
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v node >/dev/null || need+=(nodejs)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
  echo "bench: installing ${need[*]}"
  sudo_=(); [[ $(id -u) == 0 ]] || sudo_=(sudo)
  "${sudo_[@]}" apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts a system nginx on installation; the benchmark runs its own.
  "${sudo_[@]}" sh -c 'command -v systemctl >/dev/null && systemctl disable --now nginx 2>/dev/null; pkill -x nginx' || true
fi

if [[ -f build-release/build.ninja ]]; then
  meson setup --reconfigure build-release -Dbench=true >/dev/null
else
  meson setup build-release -Dbuildtype=release -Dtests=false -Dbench=true
fi
ninja -C build-release agent/chitty-agent bench/uds_bench bench/echo_server bench/secure_bench bench/audit_bench bench/risk_eval bench/risk_cost | grep -v "^\[" || true
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

secret_path="/v1/secret?ref=op://ChittyOS%20Integrations/OpenAI%20API/api_key"
value=$(printf 'sk-bench-%0191d' 0)  # 200 bytes, the body every server answers with
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
  OPENAI_API_KEY="$value" taskset -c "$server_cpu" $agent --config "$dir/$name.toml" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 200); do [[ -S "$dir/$name.sock" ]] && break; sleep 0.02; done
  curl -s --unix-socket "$dir/$name.sock" "http://localhost$secret_path" >/dev/null  # the one miss
}

# ---------------------------------------------------------------- the comparison
echo "== the comparison: a cached retrieval, 200-byte answer, ${seconds}s per load (server on CPU $server_cpu, load on CPU $client_cpu)"
clk_tck=$(getconf CLK_TCK)
# CPU ticks (user + system) of a process and its children, and their RSS.
tree() { echo "$1"; pgrep -P "$1" || true; }
cpu_ticks() { local t=0 p; for p in $(tree "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
rss_kib() { local r=0 p; for p in $(tree "$1"); do r=$((r + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status"))); done; echo "$r"; }
wait_socket() { for _ in $(seq 250); do [[ -S "$1" ]] && return 0; sleep 0.02; done; echo "no socket $1" >&2; return 1; }

# The peers.
pin "$server_cpu" build-release/bench/echo_server "$dir/echo.sock" &
echo_pid=$!; pids+=("$echo_pid")
json_body=$(printf '{"success":true,"credential":{"value":"%0162d"}}' 0)
cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000000;
  client_body_temp_path $dir/ngx; proxy_temp_path $dir/ngx; fastcgi_temp_path $dir/ngx;
  uwsgi_temp_path $dir/ngx; scgi_temp_path $dir/ngx;
  server {
    listen unix:$dir/nginx.sock;
    location / { default_type application/json; return 200 '$json_body'; }
  }
}
NGINX
taskset -c "$server_cpu" nginx -c "$dir/nginx.conf" -p "$dir" 2>/dev/null &
nginx_pid=$!; pids+=("$nginx_pid")
taskset -c "$server_cpu" node bench/node_server.js "$dir/node.sock" &
node_pid=$!; pids+=("$node_pid")
start_secret_agent agent
agent_pid=${pids[-1]}
for s_ in echo nginx node agent; do wait_socket "$dir/$s_.sock"; done

loads=("1 1" "8 1" "64 1" "32 8")
declare -A R  # R[server,load,field]
results_json="["
for server in echo nginx node agent; do
  pid_var="${server}_pid"
  pid=${!pid_var}
  # One second of warm-up (Node's JIT, the agent's first answers).
  pin "$client_cpu" $bench load "$dir/$server.sock" --connections 8 --seconds 1 --path "$secret_path" >/dev/null
  for spec in "${loads[@]}"; do
    read -r c p <<<"$spec"
    t0=$(cpu_ticks "$pid")
    line=$(pin "$client_cpu" $bench load "$dir/$server.sock" --connections "$c" --pipeline "$p" --seconds "$seconds" --path "$secret_path")
    t1=$(cpu_ticks "$pid")
    rss=$(rss_kib "$pid")
    field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$line"; }
    requests=$(field requests)
    cpu_us=$(awk -v t="$((t1 - t0))" -v hz="$clk_tck" -v n="$requests" 'BEGIN { printf "%.2f", (n > 0 ? t * 1e6 / hz / n : 0) }')
    key="$server,$c x $p"
    R[$key,rps]=$(field rps); R[$key,p50]=$(field p50_us); R[$key,p99]=$(field p99_us); R[$key,p999]=$(field p999_us)
    R[$key,cpu]=$cpu_us; R[$key,rss]=$rss
    results_json+=$(printf '{"server":"%s","connections":%d,"pipeline":%d,"rps":%s,"p50_us":%s,"p99_us":%s,"p999_us":%s,"cpu_us_per_request":%s,"rss_kib":%s},' \
      "$server" "$c" "$p" "${R[$key,rps]}" "${R[$key,p50]}" "${R[$key,p99]}" "${R[$key,p999]}" "$cpu_us" "$rss")
  done
done
results_json="${results_json%,}]"

declare -A names=([echo]="epoll floor" [nginx]="nginx" [node]="node http+Map" [agent]="chitty-agent")
printf '\n%-14s %-7s %9s %8s %8s %8s %9s %8s\n' server load req/s p50_us p99_us p999_us cpu_us/req rss_kib
for server in echo nginx node agent; do
  for spec in "${loads[@]}"; do
    read -r c p <<<"$spec"; key="$server,$c x $p"
    printf '%-14s %-7s %9.0f %8.1f %8.1f %8.1f %9.2f %8d\n' "${names[$server]}" "${c}x$p" "${R[$key,rps]}" \
      "${R[$key,p50]}" "${R[$key,p99]}" "${R[$key,p999]}" "${R[$key,cpu]}" "${R[$key,rss]}"
  done
done
echo
echo "chitty-agent / nginx (targets: req/s >= 1.0 at 8 and 64; cpu/req <= 1.0; p99 at 64 <= 1.5):"
ratios_json="{"
for spec in "${loads[@]}"; do
  read -r c p <<<"$spec"; a="agent,$c x $p"; n="nginx,$c x $p"
  line=$(awk -v ar="${R[$a,rps]}" -v nr="${R[$n,rps]}" -v ac="${R[$a,cpu]}" -v nc="${R[$n,cpu]}" \
    -v ap="${R[$a,p99]}" -v np="${R[$n,p99]}" 'BEGIN { printf "%.2f %.2f %.2f", ar / nr, (nc > 0 ? ac / nc : 0), ap / np }')
  read -r rr cr pr <<<"$line"
  printf '  %-5s req/s %5sx   cpu/req %5sx   p99 %5sx\n' "${c}x$p" "$rr" "$cr" "$pr"
  ratios_json+=$(printf '"%sx%s":{"rps":%s,"cpu_per_request":%s,"p99":%s},' "$c" "$p" "$rr" "$cr" "$pr")
done
ratios_json="${ratios_json%,}}"

mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cat >bench/results/compare.json <<JSON
{"date":"$stamp","seconds_per_load":$seconds,"machine":{"cpus":$(nproc),"kernel":"$(uname -r)","model":"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"},
 "servers":{"echo":"bench/echo_server.cpp","nginx":"$(nginx -v 2>&1 | sed 's/.*: //')","node":"$(node --version)","agent":"chitty-agent $(git describe --always --dirty 2>/dev/null || echo ?)"},
 "results":$results_json,
 "agent_vs_nginx":$ratios_json}
JSON
cp bench/results/compare.json "bench/results/compare-$stamp.json"
{
  for spec in "${loads[@]}"; do
    read -r c p <<<"$spec"
    echo "${c}x$p ${R[echo,$c x $p,rps]} ${R[nginx,$c x $p,rps]} ${R[node,$c x $p,rps]} ${R[agent,$c x $p,rps]}"
  done
} >"$dir/compare.dat"
gnuplot <<GNUPLOT
set terminal pngcairo size 900,500 font ",10"
set output "bench/results/compare.png"
set title "Cached retrieval over a Unix socket, 200-byte answer (req/s; $stamp)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set ylabel "requests per second (log scale)"
set xlabel "connections x pipelined requests"
set key top left
set logscale y
set yrange [1000:*]
set grid ytics mytics
plot "$dir/compare.dat" using 2:xtic(1) title "epoll floor", "" using 3 title "nginx", "" using 4 title "node http + Map", "" using 5 title "chitty-agent (full pipeline, audit on)"
GNUPLOT
echo "wrote bench/results/compare.json, bench/results/compare-$stamp.json and bench/results/compare.png"
for p_ in "$echo_pid" "$nginx_pid" "$node_pid"; do kill "$p_" 2>/dev/null || true; done

# ---------------------------------------------------------------- other scenarios
echo
echo "== sealed memory (bench/secure_bench.cpp)"
pin "$server_cpu" build-release/bench/secure_bench

echo "== start-up ($agent, built-in defaults): exec to READY=1 (target 50 ms) and to the first accepted connection"
$bench startup "$agent" --runs 20

echo "== 10,000 cached secrets: RSS (target 16 MiB) and locked bytes (bench/scenarios.py)"
SERVER_CPU=$server_cpu pin "$client_cpu" python3 bench/scenarios.py secrets "$agent" --count 10000
echo "== 5,000 idle connections: a legitimate caller's p99 alone and while they are held (target: within 10%)"
SERVER_CPU=$server_cpu pin "$client_cpu" python3 bench/scenarios.py idle "$agent" --count 5000 --seconds "$seconds"
if command -v node >/dev/null; then
  echo "== 1,000 concurrent misses of one reference: upstream fetches (single-flight: 1)"
  SERVER_CPU=$server_cpu pin "$client_cpu" python3 bench/scenarios.py misses "$agent" tests/fakes/connect-emulator/emulator.js --count 1000
fi

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

