#!/usr/bin/env bash
# The agent under real systemd: boots systemd (PID 1) in private mount, PID,
# UTS and IPC namespaces with the shipped units (a drop-in only points them at
# the binary under test and at root), then checks socket activation,
# Type=notify start-up and STATUS, the watchdog setting, `systemctl reload`,
# journald's structured fields, the identity of a client run as a transient
# unit, and a clean stop; then the same service without socket activation;
# then the agent as a LoadCredential= provider (docs/systemd.md): a consumer
# unit's first credential request socket-activates the agent and the value
# lands in its $CREDENTIALS_DIRECTORY; a unit not in policy and a revoked
# credential make their consumers fail to start, and the audit trail says
# why; and the watchdog restarts an agent that hangs.
# Exit 77 (skipped) where namespaces are not allowed.
#
# The booted system must not touch the host: it runs with container=… (so
# systemd skips hardware and kernel set-up), in its own network namespace,
# with fresh tmpfs on /run, /tmp, /var and /dev/shm, a read-only / and
# /proc/sys, and the units that write host state masked. unshare
# --kill-child takes it down if this script is killed.
#
# Needs: root, unshare, nsenter, systemd (/lib/systemd/systemd).
set -euo pipefail

agent=${CHITTY_AGENT_BIN:?set by meson}
src=${CHITTY_SOURCE_ROOT:?set by meson}

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root"
[[ -x /lib/systemd/systemd ]] || skip "no /lib/systemd/systemd"
unshare --mount --pid --fork --mount-proc true 2>/dev/null || skip "unshare is not permitted here"

# Everything the booted system needs is copied into its /run before its /tmp
# replaces ours.
work=$(mktemp -d "${MESON_BUILD_ROOT:-$PWD}/chitty-systemd.XXXXXX")
[[ -n "$work" && -d "$work" ]] || { echo "FAIL: no work directory"; exit 1; }
# shellcheck source=boot_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/boot_lib.sh"

fail() {
  echo "FAIL: $*" >&2
  if [[ -n "$pid1" ]]; then
    echo "--- systemctl status" >&2
    inside systemctl --no-pager status chitty-agent.service chitty-agent.socket >&2 || true
    echo "--- journal" >&2
    inside journalctl --no-pager -n 60 >&2 || true
  fi
  exit 1
}
cleanup() {
  poweroff_systemd
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/units/chitty-agent.service.d" "$work/units/chitty-agent.socket.d"
cp "$src/systemd/chitty-agent.service" "$src/systemd/chitty-agent.socket" "$work/units/"
# (For a sanitizer build: LeakSanitizer stops the world with ptrace, which the
# unit's seccomp filter rightly forbids; the integration suite covers leaks.)
# The binary is copied into the booted system's /run: the build tree may be
# under /tmp, which the booted system replaces with its own.
# The credential the consumer units ask for comes from the agent's
# environment (the env fallback: no Connect server here). TimeoutAbortSec=
# bounds how long a hung agent gets after the watchdog's SIGABRT.
db_password='system-test-db-7c41e9a2'
printf '%s\n' '[Service]' 'ExecStartPre=' \
  "ExecStartPre=/run/chitty-test/chitty-agent --check-config /run/chitty-test/agent.toml" \
  'ExecStart=' "ExecStart=/run/chitty-test/chitty-agent --config /run/chitty-test/agent.toml" \
  'User=' 'Group=' 'StateDirectory=' 'WatchdogSec=2s' 'TimeoutAbortSec=2s' \
  'Environment=ASAN_OPTIONS=detect_leaks=0' "Environment=CHITTY_TEST_DB_PASSWORD=$db_password" \
  >"$work/units/chitty-agent.service.d/test.conf"
# Consumers: one the policy names, one it does not. Each copies what it was
# given (a test value) where the test can compare it.
for consumer in chitty-consumer chitty-stranger; do
  printf '%s\n' '[Unit]' "Description=LoadCredential= consumer ($consumer)" 'After=chitty-agent.socket' \
    '[Service]' 'Type=oneshot' 'RemainAfterExit=yes' \
    'LoadCredential=db_password:/run/chitty-agent/agent.sock' \
    "ExecStart=/bin/sh -c 'cp \"\$CREDENTIALS_DIRECTORY/db_password\" /run/chitty-test/$consumer.out; stat -c %%a \"\$CREDENTIALS_DIRECTORY/db_password\" >/run/chitty-test/$consumer.mode'" \
    >"$work/units/$consumer.service"
done
emergency_token='system-test-emergency-3e8d0c5b'
printf '%s\n' "$emergency_token" >"$work/emergency"
printf '%s\n' '[Socket]' 'SocketGroup=' >"$work/units/chitty-agent.socket.d/test.conf"
printf '%s\n' '[Unit]' 'Description=chitty-agent system test' 'Requires=basic.target' 'After=basic.target' \
  >"$work/units/chitty-test.target"
# socket_group = "root" is the agent's own group: the socket is created
# without chown, which the unit's seccomp filter (~@privileged) forbids.
printf '%s\n' '[agent]' 'socket = "/run/chitty-agent/agent.sock"' 'socket_mode = "0660"' 'socket_group = "root"' \
  'state_dir = "/run/chitty-test/state"' 'log_level = "info"' \
  '[emergency]' 'token_file = "/run/chitty-test/emergency"' \
  '[[credential]]' 'type = "db_password"' 'ref = "op://Prod/Database/password"' 'env = "CHITTY_TEST_DB_PASSWORD"' \
  '[[service]]' 'name = "consumer"' 'unit = "chitty-consumer.service"' 'allow = ["type:db_password"]' \
  '[[service]]' 'name = "operator"' 'uid = 0' 'allow = []' 'admin = true' >"$work/agent.toml"
{
  echo '#!/bin/sh'
  echo 'set -e'
  echo 'mount -t tmpfs -o mode=0755 tmpfs /run'
  echo 'mkdir -p /run/systemd/system /run/chitty-test'
  echo "cp -r '$work/units/.' /run/systemd/system/"
  echo "cp '$work/agent.toml' /run/chitty-test/agent.toml"
  echo "cp '$work/emergency' /run/chitty-test/emergency && chmod 0600 /run/chitty-test/emergency"
  echo "cp '$agent' /run/chitty-test/chitty-agent"
  for u in $masked_units; do echo "ln -s /dev/null /run/systemd/system/$u"; done
  echo 'mount -t tmpfs -o mode=1777 tmpfs /tmp'
  echo 'mount -t tmpfs -o mode=0755 tmpfs /var'
  echo 'mkdir -p /var/lib /var/log /var/cache /var/spool /var/tmp && chmod 1777 /var/tmp'
  echo 'ln -s /run /var/run && ln -s /run/lock /var/lock'
  echo 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm'
  echo 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys'
  echo 'mount -o remount,bind,ro /'
  echo 'mount --make-rshared /'
  echo 'exec env container=chitty-test /lib/systemd/systemd --system --unit=chitty-test.target'
} >"$work/boot.sh"
chmod +x "$work/boot.sh"

boot_systemd "$work/boot.sh" "$work/systemd.out" ||
  { cat "$work/systemd.out" >&2; fail "system did not boot ($boot_state)"; }
state=$boot_state
echo "ok: systemd booted ($state)"

inside systemctl start chitty-agent.socket || fail "cannot start chitty-agent.socket"
[[ "$(inside systemctl is-active chitty-agent.service || true)" == inactive ]] || fail "service started before a client came"

body=$(inside curl --silent --show-error --max-time 10 --unix-socket /run/chitty-agent/agent.sock http://localhost/health) \
  || fail "no answer on the activated socket"
grep -q '"status":"healthy"' <<<"$body" || fail "unexpected /health: $body"
echo "ok: socket activation started the service on the first connection"

[[ "$(inside systemctl is-active chitty-agent.service)" == active ]] || fail "service not active"
status=$(inside systemctl show -p StatusText --value chitty-agent.service)
[[ "$status" == "serving on /run/chitty-agent/agent.sock (socket-activated)" ]] || fail "StatusText: $status"
[[ "$(inside systemctl show -p Type --value chitty-agent.service)" == notify ]] || fail "not Type=notify"
[[ "$(inside systemctl show -p WatchdogUSec --value chitty-agent.service)" == 2s ]] || fail "watchdog not set"
echo "ok: Type=notify, READY=1 and STATUS= seen by systemd: $status"

# WatchdogSec=2s: systemd records each WATCHDOG=1; missing pings would get the
# service killed within 2 s.
first=$(inside systemctl show -p WatchdogTimestampMonotonic --value chitty-agent.service)
sleep 2.5
second=$(inside systemctl show -p WatchdogTimestampMonotonic --value chitty-agent.service)
[[ -n "$first" && -n "$second" && "$second" -gt "$first" ]] || fail "no watchdog pings ($first -> $second)"
[[ "$(inside systemctl is-active chitty-agent.service)" == active ]] || fail "service died under the watchdog"
restarts=$(inside systemctl show -p NRestarts --value chitty-agent.service)
[[ "$restarts" == 0 ]] || fail "service was restarted $restarts times"
echo "ok: WATCHDOG=1 pings keep a 2 s watchdog satisfied ($first -> $second)"
inside systemctl reload chitty-agent.service || fail "systemctl reload failed"
status=$(inside systemctl show -p StatusText --value chitty-agent.service)
[[ "$status" == *"configuration reloaded"* ]] || fail "StatusText after reload: $status"
[[ "$(inside systemctl is-active chitty-agent.service)" == active ]] || fail "service not active after reload"
echo "ok: systemctl reload (SIGHUP, RELOADING=1, READY=1): $status"

journal=$(inside journalctl --no-pager -u chitty-agent.service -o json)
grep -q '"CHITTY_MODULE":"app"' <<<"$journal" || fail "no CHITTY_MODULE field in the journal"
grep -q '"MESSAGE":"ready"' <<<"$journal" || fail "no ready message in the journal"
grep -q '"CHITTY_SOCKET_ACTIVATED":"true"' <<<"$journal" || fail "no CHITTY_SOCKET_ACTIVATED field"
grep -q '"MESSAGE":"configuration reloaded"' <<<"$journal" || fail "no reload message in the journal"
grep -q '"SYSLOG_IDENTIFIER":"chitty-agent"' <<<"$journal" || fail "no SYSLOG_IDENTIFIER"
if grep -q '"MESSAGE":"{' <<<"$journal"; then fail "JSON lines went to the journal instead of fields"; fi
echo "ok: journald has structured fields (CHITTY_MODULE, CHITTY_SOCKET_ACTIVATED, ...)"

# A client as a transient systemd unit: the agent names the unit.
caller=$(inside systemd-run --quiet --wait --pipe --unit=chitty-client-test.service \
  curl --silent --unix-socket /run/chitty-agent/agent.sock http://localhost/health) || fail "systemd-run client failed"
grep -q '"unit":"chitty-client-test.service"' <<<"$caller" || fail "client unit not identified: $caller"
echo "ok: a client run as chitty-client-test.service is identified by its unit"

inside systemctl stop chitty-agent.service || fail "stop failed"
[[ "$(inside systemctl show -p ExecMainStatus --value chitty-agent.service)" == 0 ]] || fail "agent did not exit 0"
inside test -S /run/chitty-agent/agent.sock || fail "the socket unit's socket was removed by the agent"
journal=$(inside journalctl --no-pager -u chitty-agent.service -o json)
grep -q '"MESSAGE":"stopping"' <<<"$journal" || fail "no stopping record"
grep -q '"MESSAGE":"stopped"' <<<"$journal" || fail "no stopped record"
echo "ok: stopped with exit 0, the activated socket left in place"

# Without socket activation: the agent creates its socket itself, under the
# same hardened unit (seccomp included).
inside systemctl stop chitty-agent.socket || fail "cannot stop the socket unit"
inside systemctl start chitty-agent.service || fail "the service does not start without socket activation"
status=$(inside systemctl show -p StatusText --value chitty-agent.service)
[[ "$status" == "serving on /run/chitty-agent/agent.sock" ]] || fail "StatusText without activation: $status"
body=$(inside curl --silent --show-error --max-time 10 --unix-socket /run/chitty-agent/agent.sock http://localhost/health) \
  || fail "no answer on the agent's own socket"
grep -q '"status":"healthy"' <<<"$body" || fail "unexpected /health: $body"
inside systemctl stop chitty-agent.service || fail "stop failed"
[[ "$(inside systemctl show -p ExecMainStatus --value chitty-agent.service)" == 0 ]] || fail "agent did not exit 0"
if inside test -e /run/chitty-agent/agent.sock; then fail "the agent left its own socket behind"; fi
echo "ok: without socket activation the agent creates, serves and removes its own socket"

# LoadCredential=: the consumer's first credential request starts the agent.
inside systemctl start chitty-agent.socket || fail "cannot start chitty-agent.socket"
[[ "$(inside systemctl is-active chitty-agent.service || true)" == inactive ]] || fail "agent running before the consumer"
inside systemctl start chitty-consumer.service || fail "the consumer did not start"
[[ "$(inside systemctl is-active chitty-agent.service)" == active ]] || fail "the credential request did not activate the agent"
got=$(inside cat /run/chitty-test/chitty-consumer.out) || fail "the consumer wrote nothing"
[[ "$got" == "$db_password" ]] || fail "the consumer got the wrong credential"
mode=$(inside cat /run/chitty-test/chitty-consumer.mode)
echo "ok: socket activation on the consumer's LoadCredential= request; the value in \$CREDENTIALS_DIRECTORY (mode $mode)"
audit_trail() {
  inside curl --silent --max-time 10 --unix-socket /run/chitty-agent/agent.sock 'http://localhost/api/credentials/audit?limit=100'
}
# The audit events (one per line) holding every string given.
events_with() {
  local line s all
  while IFS= read -r line; do
    all=1
    for s in "$@"; do [[ "$line" == *"$s"* ]] || { all=0; break; }; done
    ((all)) && printf '%s\n' "$line"
  done < <(audit_trail | sed 's/},{"v":1,/}\n{"v":1,/g')
  return 0
}
# Waits up to 5 s for such an event (the trail is read back from the spool,
# which the agent writes off its event loop).
has_event() {
  for _ in $(seq 25); do
    [[ -n "$(events_with "$@")" ]] && return 0
    sleep 0.2
  done
  return 1
}
audit=$(audit_trail)
has_event '"action":"load_credential","decision":"allow"' '"service":"consumer"' \
  '"unit":"chitty-consumer.service"' '"credential_type":"db_password"' || fail "no allow event for the consumer: $audit"
if grep -q "$db_password" <<<"$audit"; then fail "the value is in the audit trail"; fi
if inside journalctl --no-pager -o cat -u chitty-agent.service | grep -q "$db_password"; then
  fail "the value is in the agent's journal"
fi

# A unit the policy does not name: no credential, so it does not start.
if inside systemctl start chitty-stranger.service 2>/dev/null; then fail "a consumer not in policy started"; fi
status=$(inside systemctl show -p ExecMainStatus --value chitty-stranger.service)
[[ "$status" == 243 ]] || fail "the stranger failed otherwise than on its credential (status $status)"
if inside test -e /run/chitty-test/chitty-stranger.out; then fail "the stranger's program ran"; fi
has_event '"action":"load_credential","decision":"deny"' '"unit":"chitty-stranger.service"' \
  '"code":"forbidden"' || fail "no deny event for the stranger: $(audit_trail)"
echo "ok: a consumer not in policy fails to start (status 243/CREDENTIALS), audited as forbidden"

# A root process of another unit naming the consumer in its address (what
# systemd's helper does, from the consumer's own cgroup): refused, audited
# under what it is.
forged=$(inside systemd-run --quiet --wait --pipe --unit=chitty-forger.service python3 -c '
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + "5eed/unit/chitty-consumer.service/db_password")
s.connect("/run/chitty-agent/agent.sock")
s.shutdown(socket.SHUT_WR)
data = b""
while len(data) <= 1048576:
    b = s.recv(65536)
    if not b:
        break
    data += b
print("unusable" if len(data) > 1048576 and data.count(b"\0") == len(data) else len(data))') \
  || fail "the forger did not run"
[[ "$forged" == unusable ]] || fail "the forger got something else than the refusal: $forged"
has_event '"action":"load_credential","decision":"deny"' '"unit":"chitty-forger.service"' '"uid":0' \
  'from a process of chitty-forger.service' || fail "no deny event for the forger: $(audit_trail)"
echo "ok: a root process of another unit that names the consumer gets no value, audited as itself"

# Revoked: the consumer's next start fails.
revoke=$(inside curl --silent --max-time 10 --unix-socket /run/chitty-agent/agent.sock \
  -H "X-Emergency-Token: $emergency_token" --data-binary '{"credential_type":"db_password","reason":"system test"}' \
  http://localhost/api/onepassword/emergency-revoke)
grep -q '"success":true' <<<"$revoke" || fail "revocation failed: $revoke"
inside systemctl stop chitty-consumer.service
inside rm -f /run/chitty-test/chitty-consumer.out
if inside systemctl start chitty-consumer.service 2>/dev/null; then fail "the consumer started with a revoked credential"; fi
status=$(inside systemctl show -p ExecMainStatus --value chitty-consumer.service)
[[ "$status" == 243 ]] || fail "revoked: the consumer failed otherwise than on its credential (status $status)"
has_event '"action":"load_credential","decision":"deny"' '"unit":"chitty-consumer.service"' \
  '"code":"revoked"' || fail "no revoked event for the consumer: $(audit_trail)"
echo "ok: a revoked credential makes its consumer fail to start, audited as revoked"

# The watchdog: an agent that stops answering (SIGSTOP) is killed and restarted.
pid=$(inside systemctl show -p MainPID --value chitty-agent.service)
[[ "$pid" -gt 0 ]] || fail "no main pid"
inside kill -STOP "$pid"
restarted=""
for _ in $(seq 150); do
  now=$(inside systemctl show -p MainPID --value chitty-agent.service)
  if [[ "$(inside systemctl show -p NRestarts --value chitty-agent.service)" -ge 1 && "$now" -gt 0 && "$now" != "$pid" &&
        "$(inside systemctl is-active chitty-agent.service)" == active ]]; then
    restarted=$now
    break
  fi
  sleep 0.2
done
[[ -n "$restarted" ]] || fail "the watchdog did not restart the hung agent"
inside journalctl --no-pager -u chitty-agent.service | grep -qi 'watchdog timeout' || fail "no watchdog timeout in the journal"
body=$(inside curl --silent --show-error --max-time 10 --unix-socket /run/chitty-agent/agent.sock http://localhost/health) \
  || fail "no answer after the restart"
grep -q '"status":"healthy"' <<<"$body" || fail "unexpected /health after the restart: $body"
echo "ok: the watchdog killed the hung agent (pid $pid) and systemd restarted it (pid $restarted)"
inside systemctl stop chitty-agent.service chitty-agent.socket || fail "stop failed"

echo "PASS"
