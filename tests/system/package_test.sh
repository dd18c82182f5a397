#!/usr/bin/env bash
# The Debian package (packaging/debian, docs/deploy.md "Debian package") on a
# real systemd: lintian finds no error; installed with dpkg, the agent's user,
# directories and units appear and the service runs and answers; upgraded, the
# service is restarted by systemd (a new main process) and keeps its state;
# purged, nothing is left: no state, runtime or configuration directory (an
# operator's token file included), no unit.
#
# The package is the one the Docker image's build stage made
# (docker_test.sh leaves it in $MESON_BUILD_ROOT/docker-test/deb); without it
# (no Docker here) it is built on the host with scripts/build-deb.sh. The
# upgrade is the same package with a higher version (repacked with dpkg-deb),
# so its maintainer scripts are the real ones.
#
# The host is never touched: systemd boots (PID 1, private mount, PID, UTS,
# IPC and network namespaces) on an overlay of the host's root whose upper
# layer is a tmpfs that disappears with the namespace; dpkg writes there.
# The host's installed libraries satisfy the package's dependencies.
#
# Exit 77 (skipped) without root, namespaces, systemd, dpkg or lintian.
set -euo pipefail

src=${CHITTY_SOURCE_ROOT:?set by meson}
build=${MESON_BUILD_ROOT:-$PWD}

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root"
[[ -x /lib/systemd/systemd ]] || skip "no /lib/systemd/systemd"
command -v dpkg-deb >/dev/null || skip "no dpkg-deb"
command -v lintian >/dev/null || skip "no lintian (apt-get install lintian)"
unshare --mount --pid --fork --mount-proc true 2>/dev/null || skip "unshare is not permitted here"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || skip "no overlayfs"

work=$(mktemp -d /tmp/chitty-pkg.XXXXXX)
# shellcheck source=boot_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/boot_lib.sh"
fail() {
  echo "FAIL: $*" >&2
  if [[ -n "$pid1" ]]; then
    inside systemctl --no-pager status chitty-agent.service >&2 || true
    inside journalctl --no-pager -n 40 >&2 || true
  fi
  exit 1
}
cleanup() {
  poweroff_systemd
  rm -rf "$work"
}
trap cleanup EXIT
log() { printf '%s %s\n' "$(date +%T)" "$*"; }

# ---------------------------------------------------------------- the package
deb=$(ls "$build"/docker-test/deb/chitty-agent_*.deb 2>/dev/null | head -n1 || true)
if [[ -n "$deb" ]]; then
  log "package from the Docker build stage: $(basename "$deb")"
  mkdir "$work/deb" && cp "$build"/docker-test/deb/chitty-agent_* "$work/deb/"
else
  log "no package from the Docker test: building it here (scripts/build-deb.sh)"
  started=$SECONDS
  "$src/scripts/build-deb.sh" --no-lintian "$work/deb" >"$work/build-deb.log" 2>&1 ||
    { tail -n 40 "$work/build-deb.log" >&2; fail "dpkg-buildpackage failed"; }
  log "built in $((SECONDS - started)) s"
fi
deb=$(ls "$work"/deb/chitty-agent_*.deb | head -n1)
dsc=$(ls "$work"/deb/chitty-agent_*.dsc 2>/dev/null | head -n1 || true)
[[ -n "$dsc" ]] || fail "no source package (.dsc) beside the binary one"
lintian --fail-on error --tag-display-limit 0 "$dsc" "$deb" >"$work/lintian.out" 2>&1 ||
  { cat "$work/lintian.out" >&2; fail "lintian reports errors"; }
log "ok: lintian: no errors ($(grep -c '^W:' "$work/lintian.out" || true) warnings)"
sed 's/^/  lintian: /' "$work/lintian.out"

# Contents: where meson install put things with --prefix=/usr.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/chitty-agent ./lib/systemd/system/chitty-agent.service ./lib/systemd/system/chitty-agent.socket \
    ./usr/lib/sysusers.d/chitty-agent.conf ./usr/lib/tmpfiles.d/chitty-agent.conf ./etc/chitty-agent/agent.toml \
    ./usr/share/man/man8/chitty-agent.8.gz ./usr/share/man/man5/chitty-agent.toml.5.gz \
    ./usr/share/doc/chitty-agent/deploy.md ./usr/share/chitty-agent/prometheus/chitty-agent.rules.yml \
    ./usr/bin/chittyctl ./usr/share/man/man1/chittyctl.1.gz ./usr/share/bash-completion/completions/chittyctl; do
  # (dh_compress gzips documentation over 4 KiB)
  grep -qxF -e "$f" -e "$f.gz" <<<"$contents" || fail "the package lacks $f"
done
dpkg-deb -f "$deb" Depends | grep -q libsodium || fail "Depends lacks the shared libraries: $(dpkg-deb -f "$deb" Depends)"
log "ok: the package holds the binary, units, sysusers/tmpfiles snippets, config, man pages, docs"

# The upgrade: the same package, one version up.
version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -R "$deb" "$work/repack"
sed -i "s/^Version: .*/Version: ${version}+upgrade1/" "$work/repack/DEBIAN/control"
dpkg-deb --root-owner-group -b "$work/repack" "$work/upgrade.deb" >/dev/null
rm -rf "$work/repack"

# ---------------------------------------------------------------- boot
mkdir -p "$work/pkgs" && cp "$deb" "$work/pkgs/current.deb" && cp "$work/upgrade.deb" "$work/pkgs/upgrade.deb"
{
  echo '#!/bin/sh'
  echo 'set -e'
  echo "mount -t tmpfs -o mode=0755 tmpfs '$work/ov'"
  echo "mkdir -p '$work/ov/upper' '$work/ov/work' '$work/ov/root'"
  echo "mount -t overlay overlay -o lowerdir=/,upperdir='$work/ov/upper',workdir='$work/ov/work' '$work/ov/root'"
  echo "r='$work/ov/root'"
  echo 'mount -t proc proc "$r/proc"'
  echo 'mount --rbind /sys "$r/sys" && mount --make-rslave "$r/sys"'
  echo 'mount --rbind /dev "$r/dev" && mount --make-rslave "$r/dev"'
  echo 'mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"'
  echo 'mount -t tmpfs -o mode=0755 tmpfs "$r/run"'
  echo 'mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"'
  # A container image's policy-rc.d (exit 101: start nothing) would stop
  # dpkg's maintainer scripts from starting the service, as it does on this
  # host; a Debian host has none.
  echo 'rm -f "$r/usr/sbin/policy-rc.d"'
  echo 'mkdir -p "$r/run/systemd/system" "$r/run/chitty-pkgs"'
  echo "cp '$work/pkgs/'*.deb \"\$r/run/chitty-pkgs/\""
  for u in $masked_units; do echo "ln -s /dev/null \"\$r/run/systemd/system/$u\""; done
  # Boot only to basic.target: the host's own services (its dockerd among
  # them) stay down; dpkg's scripts start the agent's units themselves.
  echo "printf '%s\\n' '[Unit]' 'Requires=basic.target' 'After=basic.target' >\"\$r/run/systemd/system/deploy-test.target\""
  echo 'mount --bind /proc/sys "$r/proc/sys" && mount -o remount,bind,ro "$r/proc/sys"'
  echo 'cd "$r" && mkdir -p .oldroot && pivot_root . .oldroot && umount -l /.oldroot && rmdir /.oldroot'
  echo 'mount --make-rshared /'
  echo 'exec env container=chitty-test /lib/systemd/systemd --system --unit=deploy-test.target'
} >"$work/boot.sh"
chmod +x "$work/boot.sh"
mkdir -p "$work/ov"
boot_systemd "$work/boot.sh" "$work/systemd.out" ||
  { cat "$work/systemd.out" >&2; fail "system did not boot ($boot_state)"; }
log "ok: systemd booted on an overlay of the host root ($boot_state)"
inside test ! -e /usr/bin/chitty-agent || fail "chitty-agent is already installed in the booted system"

health() {
  inside curl -sS --max-time 10 --unix-socket /run/chitty-agent/agent.sock http://localhost/health
}
main_pid() { inside systemctl show -p MainPID --value chitty-agent.service; }
wait_active() {
  for _ in $(seq 100); do
    [[ "$(inside systemctl is-active chitty-agent.service || true)" == active ]] && health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "chitty-agent.service is not active and answering"
}

# ---------------------------------------------------------------- install
inside env DEBIAN_FRONTEND=noninteractive dpkg -i /run/chitty-pkgs/current.deb >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "dpkg -i failed"; }
wait_active
[[ "$(inside systemctl is-enabled chitty-agent.service)" == enabled ]] || fail "the service is not enabled"
[[ "$(inside systemctl is-enabled chitty-agent.socket)" == enabled ]] || fail "the socket is not enabled"
inside getent passwd chitty-agent >/dev/null || fail "no chitty-agent user"
inside getent group chitty >/dev/null || fail "no chitty group"
[[ "$(inside stat -c '%U:%G %a' /var/lib/chitty-agent)" == "chitty-agent:chitty 700" ]] ||
  fail "state directory: $(inside stat -c '%U:%G %a' /var/lib/chitty-agent)"
[[ "$(inside stat -c '%G %a' /run/chitty-agent/agent.sock)" == "chitty 660" ]] ||
  fail "socket: $(inside stat -c '%G %a' /run/chitty-agent/agent.sock)"
h=$(health)
grep -q '"status":"healthy"' <<<"$h" || fail "unexpected /health: $h"
[[ "$(inside stat -c %U "/proc/$(main_pid)")" == chitty-agent ]] || fail "the agent does not run as chitty-agent"
inside man -w chitty-agent >/dev/null 2>&1 || inside test -f /usr/share/man/man8/chitty-agent.8.gz || fail "no man page"
# The packaged client finds the packaged socket by default.
inside chittyctl health | grep -q '"status":"healthy"' || fail "chittyctl health does not reach the packaged agent"
before=$(main_pid)
log "ok: installed: user and group made, directories and socket with their modes, service enabled, active (pid $before) and healthy"

# ---------------------------------------------------------------- upgrade
# Something in the state directory that must survive the upgrade.
spool=$(inside sh -c 'ls /var/lib/chitty-agent | sort | tr "\n" " "')
inside env DEBIAN_FRONTEND=noninteractive dpkg -i /run/chitty-pkgs/upgrade.deb >"$work/upgrade.log" 2>&1 ||
  { cat "$work/upgrade.log" >&2; fail "dpkg -i (upgrade) failed"; }
wait_active
after=$(main_pid)
[[ "$after" != "$before" && "$after" != 0 ]] || fail "the upgrade did not restart the service (pid $before -> $after)"
[[ "$(inside dpkg-query -W -f '${Version}' chitty-agent)" == "${version}+upgrade1" ]] || fail "not upgraded"
for f in $spool; do inside test -e "/var/lib/chitty-agent/$f" || fail "the upgrade lost /var/lib/chitty-agent/$f"; done
inside journalctl --no-pager -u chitty-agent.service | grep -q 'Stopping chitty-agent' ||
  fail "the journal shows no stop of the old agent"
log "ok: upgraded to ${version}+upgrade1: systemd restarted the service (pid $before -> $after); state kept ($spool)"

# ---------------------------------------------------------------- purge
# An operator's token file beside the configuration must go with the purge.
inside sh -c 'umask 077 && echo operator-token > /etc/chitty-agent/op-connect-token'
inside env DEBIAN_FRONTEND=noninteractive dpkg --purge chitty-agent >"$work/purge.log" 2>&1 ||
  { cat "$work/purge.log" >&2; fail "dpkg --purge failed"; }
[[ "$(inside systemctl is-active chitty-agent.service || true)" != active ]] || fail "the service still runs after purge"
for d in /var/lib/chitty-agent /run/chitty-agent /etc/chitty-agent /usr/bin/chitty-agent \
    /lib/systemd/system/chitty-agent.service /lib/systemd/system/chitty-agent.socket; do
  inside test ! -e "$d" || fail "purge left $d"
done
left=$(inside sh -c 'find /etc /var /run /lib/systemd /usr -xdev -name "*chitty*" 2>/dev/null | grep -v -e "^/var/log/journal" -e "^/run/chitty-pkgs" || true')
[[ -z "$left" ]] || fail "purge left: $left"
inside dpkg-query -W chitty-agent >/dev/null 2>&1 && fail "dpkg still knows the package"
log "ok: purged: no state, runtime or configuration directory (the operator's token included), no unit, no file named chitty"
echo "PASS"
