#!/usr/bin/env bash
# The agent as a Docker sidecar, under a real Docker engine (docs/deploy.md):
# starts its own dockerd (no bridge, no iptables; its own data, exec root and
# socket), makes a Debian 12 base image with mmdebstrap (no registry is
# needed), builds packaging/docker/Dockerfile on it, and checks:
#   - the image's health check turns healthy;
#   - an application container (no network, another uid, the socket's group)
#     reads its secret through the shared socket volume;
#   - a container under a uid the policy does not name is refused (403);
#   - what the agent establishes about callers in each set-up of the identity
#     table: own PID namespaces (uid only, pid 0), an app sharing the agent's
#     PID namespace (--pid=container:), an agent with --pid=host (pid and
#     container id);
#   - through a Connect outage the value is served STALE and the health check
#     stays healthy (the container is not restarted);
#   - docker stop drains and the agent exits 0.
# The Debian package the image's build stage made is left in
# $MESON_BUILD_ROOT/docker-test/deb for tests/system/package_test.sh.
#
# Exit 77 (skipped, saying why) where there is no dockerd or mmdebstrap, not
# root, or dockerd cannot start. The engine's data directory (images and
# build cache) is kept in $CHITTY_DOCKER_DATA (default: the build directory's
# docker-data) so a second run does not rebuild the base image.
set -euo pipefail

src=${CHITTY_SOURCE_ROOT:?set by meson}
build=${MESON_BUILD_ROOT:-$PWD}
data=${CHITTY_DOCKER_DATA:-$build/docker-data}
out="$build/docker-test"

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root (dockerd)"
command -v dockerd >/dev/null || skip "no dockerd (apt-get install docker.io)"
[[ -x /usr/bin/docker ]] || skip "no docker client (apt-get install docker.io)"
command -v mmdebstrap >/dev/null || skip "no mmdebstrap"
command -v node >/dev/null || skip "no node (the Connect emulator)"
command -v python3 >/dev/null || skip "no python3"

# Short paths: containerd's socket lives under the exec root (108-byte limit).
run=$(mktemp -d /tmp/chitty-dk.XXXXXX)
export DOCKER_HOST="unix://$run/docker.sock"
docker() { /usr/bin/docker "$@"; }
tag=$(basename "$run" | tr 'A-Z.' 'a-z-')
dockerd_pid="" emulator_pid=""
containers=() volumes=()

log() { printf '%s %s\n' "$(date +%T)" "$*"; }
fail() {
  echo "FAIL: $*" >&2
  for c in "${containers[@]}"; do
    echo "--- docker logs $c (last 40 lines)" >&2
    docker logs --tail 40 "$c" >&2 2>&1 || true
  done
  exit 1
}
cleanup() {
  set +e
  for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1; done
  for v in "${volumes[@]}"; do docker volume rm -f "$v" >/dev/null 2>&1; done
  [[ -n "$emulator_pid" ]] && kill "$emulator_pid" 2>/dev/null
  if [[ -n "$dockerd_pid" ]]; then
    kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$dockerd_pid" 2>/dev/null
  fi
  # dockerd leaves its network namespace files mounted under the exec root.
  findmnt -rn -o TARGET | grep "^$run/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$run"
}
trap cleanup EXIT

# ---------------------------------------------------------------- the engine
mkdir -p "$data" "$out"
log "starting dockerd (data $data)"
dockerd --bridge=none --iptables=false --ip-masq=false --userland-proxy=false \
  --data-root "$data" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
  -H "$DOCKER_HOST" >"$run/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 150); do
  docker info >/dev/null 2>&1 && break
  kill -0 "$dockerd_pid" 2>/dev/null || break
  sleep 0.2
done
if ! docker info >/dev/null 2>&1; then
  echo "--- dockerd log" && tail -n 20 "$run/dockerd.log"
  skip "dockerd did not start here (its log above)"
fi
log "dockerd $(docker version -f '{{.Server.Version}}') up ($(docker info -f '{{.Driver}}, cgroup {{.CgroupVersion}}'))"

# ---------------------------------------------------------------- the images
base=chitty-test/bookworm:base
if ! docker image inspect "$base" >/dev/null 2>&1; then
  log "making the Debian 12 base image with mmdebstrap"
  mmdebstrap --quiet --variant=minbase bookworm - | docker import - "$base" >/dev/null ||
    fail "cannot make the base image"
fi
log "building packaging/docker/Dockerfile"
started=$SECONDS
docker build --network host -q --build-arg BASE="$base" -f "$src/packaging/docker/Dockerfile" \
  -t chitty-agent:test "$src" >"$run/build.log" 2>&1 ||
  { tail -n 40 "$run/build.log" >&2; fail "docker build failed"; }
docker build --network host -q --build-arg BASE="$base" -f "$src/packaging/docker/Dockerfile" \
  --target build -t chitty-agent:test-build "$src" >>"$run/build.log" 2>&1 ||
  fail "docker build --target build failed"
log "image built in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' chitty-agent:test | awk '{printf "%.0f MB", $1/1e6}'))"

# The package the build stage made, for package_test.sh.
rm -rf "$out/deb" && mkdir -p "$out/deb"
cid=$(docker create chitty-agent:test-build /bin/true)
docker cp "$cid:/out/." "$out/deb/" && docker rm "$cid" >/dev/null
ls "$out/deb"/chitty-agent_*.deb >/dev/null || fail "no package in the build stage's /out"

# The image runs as a non-root user and carries no secret in its environment.
[[ "$(docker image inspect -f '{{.Config.User}}' chitty-agent:test)" == "10001:10001" ]] ||
  fail "the image's user is not 10001:10001"
if docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' chitty-agent:test | grep -qiE 'token|secret|password|key'; then
  fail "the image's environment names a secret"
fi

# The compose example: its configuration passes the image's own
# --check-config, and the file is valid Compose (docker-compose from Debian;
# not run: its upstream network would be a bridge).
docker run --rm --network none -v "$src/packaging/docker/agent.toml:/tmp/agent.toml:ro" chitty-agent:test \
  --check-config /tmp/agent.toml >"$run/check.out" 2>&1 || { cat "$run/check.out" >&2; fail "packaging/docker/agent.toml is invalid"; }
if command -v docker-compose >/dev/null; then
  docker-compose -f "$src/packaging/docker/compose.yaml" config -q || fail "compose.yaml is not valid Compose"
  log "ok: compose.yaml is valid Compose and its agent.toml passes the image's --check-config"
else
  log "ok: compose.yaml's agent.toml passes the image's --check-config (no docker-compose here to check the file)"
fi

# ---------------------------------------------------------------- Connect
emu="$src/tests/fakes/connect-emulator"
# Its output goes to a file: nothing this test starts may hold meson's pipe
# open after the test ends (cleanup kills it).
node "$emu/emulator.js" --fixtures "$emu/fixtures/chittyos.json" --host 127.0.0.1 --port 0 \
  --port-file "$run/emulator.port" --quiet </dev/null >"$run/emulator.log" 2>&1 &
emulator_pid=$!
for _ in $(seq 100); do [[ -s "$run/emulator.port" ]] && break; sleep 0.1; done
port=$(cat "$run/emulator.port" 2>/dev/null) || fail "the Connect emulator did not start"

ref='op://ChittyOS Services/ChittyID Service Token/service_token'
query='ref=op://ChittyOS%20Services/ChittyID%20Service%20Token/service_token'
expected=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for v in d["vaults"]:
    for i in v["items"]:
        if v["name"] == "ChittyOS Services" and i["title"] == "ChittyID Service Token":
            print(next(f["value"] for f in i["fields"] if f["label"] == "service_token"))
' "$emu/fixtures/chittyos.json")
[[ -n "$expected" ]] || fail "fixture value not found"

# The agent's configuration and its token, as the Docker secret file the
# agent accepts (owned by its uid, mode 0400).
mkdir -p "$run/secrets"
printf '%s' good-token >"$run/secrets/op_connect_token"
chown 10001:10001 "$run/secrets/op_connect_token" && chmod 0400 "$run/secrets/op_connect_token"
cat >"$run/agent.toml" <<EOF
[agent]
socket = "/run/chitty-agent/agent.sock"
socket_mode = "0660"
socket_group = "chitty"
state_dir = "/var/lib/chitty-agent"
shutdown_timeout = "5s"
[cache]
ttl = "2s"
fallback_window = "15m"
max_locked_bytes = "2MiB"
[upstream.onepassword]
url = "http://127.0.0.1:$port"
token_file = "/run/secrets/op_connect_token"
probe_interval = "500ms"
[[service]]
name = "app"
uid = 10100
allow = ["$ref"]
EOF
chmod 0644 "$run/agent.toml"

start_agent() {  # start_agent NAME VOLUME [docker run options…]
  local name=$1 vol=$2; shift 2
  docker volume create "$vol" >/dev/null && volumes+=("$vol")
  containers+=("$name")
  docker run -d --name "$name" --network host --ulimit memlock=8388608:8388608 \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges:true \
    --health-interval 1s --health-timeout 3s --health-start-period 1s --health-retries 2 \
    -v "$vol:/run/chitty-agent" -v "$run/agent.toml:/etc/chitty-agent/agent.toml:ro" \
    -v "$run/secrets/op_connect_token:/run/secrets/op_connect_token:ro" \
    "$@" chitty-agent:test >/dev/null || fail "docker run $name failed"
}
health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1"; }
wait_healthy() {
  local s=""
  for _ in $(seq 60); do
    s=$(health_of "$1")
    [[ "$s" == healthy ]] && return 0
    sleep 0.5
  done
  fail "$1 did not turn healthy (health: $s; state: $(docker inspect -f '{{.State.Status}}' "$1"))"
}
# app NAME UID VOLUME [docker run options…] -- CURL ARGS…: curl in a container
# with no network, under UID, in the socket's group.
app() {
  local name=$1 uid=$2 vol=$3; shift 3
  local opts=()
  while [[ $# -gt 0 && "$1" != -- ]]; do opts+=("$1"); shift; done
  shift
  docker run --rm --name "$name" --network none --user "$uid:$uid" --group-add 10001 \
    --read-only --cap-drop ALL -v "$vol:/run/chitty-agent" "${opts[@]}" \
    --entrypoint curl chitty-agent:test -sS --max-time 10 --unix-socket /run/chitty-agent/agent.sock "$@"
}

agent="chitty-agent-$tag"
sock="chitty-sock-$tag"
start_agent "$agent" "$sock"
wait_healthy "$agent"
log "ok: the agent container is healthy"

# ---------------------------------------------------------------- reads
got=$(app "app-$tag" 10100 "$sock" -- -w '\n%{http_code}' "http://localhost/v1/secret?$query" 2>&1) ||
  fail "the app's curl failed: $got"
[[ "$(tail -n1 <<<"$got")" == 200 && "$(head -n1 <<<"$got")" == "$expected" ]] ||
  fail "the app did not read its secret (got status $(tail -n1 <<<"$got"))"
log "ok: the app container (uid 10100, no network) read its secret through the socket volume"
got=$(docker run --rm --network none --user 10100:10100 --group-add 10001 --read-only --cap-drop ALL \
  -v "$sock:/run/chitty-agent" --entrypoint chittyctl chitty-agent:test \
  get 'op://ChittyOS Services/ChittyID Service Token/service_token' 2>&1) || fail "chittyctl in the image failed: $got"
[[ "$got" == "$expected" ]] || fail "chittyctl in the image did not print the secret"
log "ok: the image's chittyctl read the same secret through the socket volume (its default socket path)"

got=$(app "stranger-$tag" 10200 "$sock" -- -w '\n%{http_code}' "http://localhost/v1/secret?$query" 2>&1) || true
[[ "$(tail -n1 <<<"$got")" == 403 ]] || fail "a uid the policy does not name was not refused with 403: $got"
grep -q '"forbidden"' <<<"$got" || fail "the refusal does not say forbidden: $got"
! grep -qF "$expected" <<<"$got" || fail "the refusal carried the value"
log "ok: a container under uid 10200 (not in policy) is refused: 403 forbidden"

# ---------------------------------------------------------------- identity
caller() {  # caller FIELD <<< /health JSON
  python3 -c 'import json,sys; c=json.load(sys.stdin)["caller"]; v=c.get(sys.argv[1]); print("null" if v is None else v)' "$1"
}
h=$(app "who-$tag" 10100 "$sock" -- http://localhost/health)
[[ "$(caller uid <<<"$h")" == 10100 && "$(caller pid <<<"$h")" == null && "$(caller container <<<"$h")" == null ]] ||
  fail "own PID namespaces: expected uid 10100, pid and container unknown: $h"
log "ok: own PID namespaces: uid 10100 established, pid/exe/container unknown"

h=$(app "who-$tag" 10100 "$sock" --pid "container:$agent" -- http://localhost/health)
[[ "$(caller uid <<<"$h")" == 10100 && "$(caller pid <<<"$h")" != null ]] ||
  fail "--pid=container: expected the pid established: $h"
log "ok: --pid=container:agent: pid $(caller pid <<<"$h") established, container $(caller container <<<"$h")"

hostagent="chitty-agent-host-$tag"
hostsock="chitty-sock-host-$tag"
start_agent "$hostagent" "$hostsock" --pid host
wait_healthy "$hostagent"
containers+=("who-host-$tag")
docker run -d --name "who-host-$tag" --network none --user 10100:10100 --group-add 10001 --read-only \
  -v "$hostsock:/run/chitty-agent" --entrypoint sleep chitty-agent:test 60 >/dev/null
appid=$(docker inspect -f '{{.Id}}' "who-host-$tag")
h=$(docker exec "who-host-$tag" curl -sS --max-time 10 --unix-socket /run/chitty-agent/agent.sock http://localhost/health)
[[ "$(caller pid <<<"$h")" != null ]] || fail "--pid=host: expected the pid established: $h"
container=$(caller container <<<"$h")
if [[ "$(docker info -f '{{.CgroupVersion}}')" == 1 ]]; then
  [[ "$container" == "$appid" ]] || fail "--pid=host: expected container $appid: $h"
fi
log "ok: agent with --pid=host: the app's pid $(caller pid <<<"$h") and container ${container:0:12} established"
docker rm -f "who-host-$tag" "$hostagent" >/dev/null

# ---------------------------------------------------------------- outage
kill "$emulator_pid" && wait "$emulator_pid" 2>/dev/null || true
emulator_pid=""
sleep 3   # past the 2 s TTL: only the fallback window serves now
got=$(app "app-$tag" 10100 "$sock" -- -i "http://localhost/v1/secret?$query" | tr -d '\r')
grep -qi '^X-Cache: STALE' <<<"$got" || fail "the outage read was not served STALE: $(grep -i '^HTTP\|^X-' <<<"$got")"
[[ "$(tail -n1 <<<"$got")" == "$expected" ]] || fail "the STALE read did not carry the value"
log "ok: Connect down: the cached value is served STALE"
sleep 6   # several health checks (1 s apart, 2 failures would be unhealthy)
[[ "$(health_of "$agent")" == healthy ]] || fail "the health check failed through the outage: $(health_of "$agent")"
[[ "$(docker inspect -f '{{.State.Status}} {{.RestartCount}}' "$agent")" == "running 0" ]] ||
  fail "the agent was restarted or stopped during the outage"
fails=$(docker inspect -f '{{.State.Health.FailingStreak}}' "$agent")
[[ "$fails" == 0 ]] || fail "health checks failed during the outage (streak $fails)"
log "ok: through the outage the health check stays healthy and the container keeps running"

# ---------------------------------------------------------------- stop
started=$SECONDS
docker stop -t 30 "$agent" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}} {{.State.OOMKilled}}' "$agent")
[[ "$code" == "0 false" ]] || fail "docker stop: the agent exited with $code"
logs=$(docker logs "$agent" 2>&1)
grep -q '"msg":"stopping","signal":"SIGTERM"' <<<"$logs" && grep -q '"msg":"stopped"' <<<"$logs" ||
  fail "the agent's log does not show a SIGTERM drain ending in \"stopped\""
log "ok: docker stop: drained and exited 0 in $((SECONDS - started)) s"
echo "PASS"
