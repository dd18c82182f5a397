#!/usr/bin/env bash
# `meson install` into a DESTDIR (docs/deploy.md, "Installing from source"):
# every file lands under the build's prefix where the table says, the
# installed service runs the installed binary with the installed
# configuration (whatever the prefix), that configuration is valid, the
# sysusers/tmpfiles snippets apply to an empty root, and the man pages render
# without a warning.
set -euo pipefail
build=${MESON_BUILD_ROOT:?set by meson}
src=${CHITTY_SOURCE_ROOT:?set by meson}
fail() { echo "FAIL: $*" >&2; exit 1; }

dest=$(mktemp -d "${TMPDIR:-/tmp}/chitty-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --quiet --no-rebuild >"$dest.log" 2>&1 ||
  { cat "$dest.log" >&2; rm -f "$dest.log"; fail "meson install failed"; }
rm -f "$dest.log"

opt() {  # the build's value of a directory option, as an absolute path
  meson introspect --buildoptions "$build" |
    python3 -c 'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; p=o["prefix"]; v=o[sys.argv[1]] if sys.argv[1] != "prefix" else p; print(v if v.startswith("/") else p + "/" + v)' "$1"
}
prefix=$(opt prefix) bindir=$(opt bindir) sysconfdir=$(opt sysconfdir) datadir=$(opt datadir) mandir=$(opt mandir)
unitdir=$(find "$dest" -name chitty-agent.service -printf '%h\n' | head -n1)
[[ -n "$unitdir" ]] || fail "no chitty-agent.service installed"
unitdir=${unitdir#"$dest"}
echo "prefix $prefix: units in $unitdir"

for f in "$bindir/chitty-agent" "$bindir/chittyctl" "$mandir/man1/chittyctl.1" \
    "$datadir/bash-completion/completions/chittyctl" "$datadir/doc/chitty-agent/chittyctl.md" \
    "$datadir/doc/chitty-agent/mcp.md" "$unitdir/chitty-agent.service" "$unitdir/chitty-agent.socket" \
    "$sysconfdir/chitty-agent/agent.toml" "$mandir/man8/chitty-agent.8" "$mandir/man5/chitty-agent.toml.5" \
    "$datadir/doc/chitty-agent/deploy.md" "$datadir/doc/chitty-agent/config.md" \
    "$datadir/chitty-agent/prometheus/chitty-agent.rules.yml"; do
  [[ -e "$dest$f" ]] || fail "not installed: $f"
done
[[ -x "$dest$bindir/chitty-agent" ]] || fail "the binary is not executable"
sysusers=$(find "$dest" -path '*/sysusers.d/chitty-agent.conf' | head -n1)
tmpfiles=$(find "$dest" -path '*/tmpfiles.d/chitty-agent.conf' | head -n1)
[[ -n "$sysusers" && -n "$tmpfiles" ]] || fail "sysusers.d or tmpfiles.d snippet missing"
echo "ok: every file in its place"

# The installed unit names the installed binary and configuration.
unit="$dest$unitdir/chitty-agent.service"
start=$(sed -n 's/^ExecStart=//p' "$unit")
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
[[ "$start" == "$bindir/chitty-agent --config $sysconfdir/chitty-agent/agent.toml" ]] ||
  fail "ExecStart= does not match the install: $start"
[[ "$pre" == "$bindir/chitty-agent --check-config $sysconfdir/chitty-agent/agent.toml" ]] ||
  fail "ExecStartPre= does not match the install: $pre"
# Nothing else differs from the source unit but those paths.
diff <(sed -e "s|$bindir/chitty-agent|/usr/bin/chitty-agent|g" -e "s|$sysconfdir/chitty-agent/|/etc/chitty-agent/|g" "$unit") \
  "$src/systemd/chitty-agent.service" >/dev/null || fail "the installed unit differs from systemd/chitty-agent.service in more than its paths"
echo "ok: the installed unit runs $bindir/chitty-agent with $sysconfdir/chitty-agent/agent.toml"

"$dest$bindir/chitty-agent" --check-config "$dest$sysconfdir/chitty-agent/agent.toml" >/dev/null ||
  fail "the installed configuration does not pass --check-config"
echo "ok: the installed configuration is valid"

root="$dest/empty-root"
mkdir -p "$root/etc"
touch "$root/etc/passwd" "$root/etc/group" "$root/etc/shadow" "$root/etc/gshadow"
systemd-sysusers --root="$root" "$sysusers" || fail "systemd-sysusers rejects the snippet"
grep -q '^chitty-agent:' "$root/etc/passwd" && grep -q '^chitty:.*chitty-agent' "$root/etc/group" ||
  fail "sysusers did not make chitty-agent in group chitty"
systemd-tmpfiles --root="$root" --create "$tmpfiles" || fail "systemd-tmpfiles rejects the snippet"
[[ "$(stat -c %a "$root/var/lib/chitty-agent")" == 700 ]] || fail "tmpfiles: state directory mode"
echo "ok: the sysusers.d and tmpfiles.d snippets apply"

if command -v man >/dev/null; then
  for page in "$dest$mandir/man8/chitty-agent.8" "$dest$mandir/man5/chitty-agent.toml.5" "$dest$mandir/man1/chittyctl.1"; do
    warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
    [[ -z "$warnings" ]] || fail "$(basename "$page") renders with warnings: $warnings"
    LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q '^NAME' || fail "$(basename "$page") does not render"
  done
  echo "ok: the man pages render without warnings"
else
  echo "note: man is not installed; the man pages were not rendered"
fi
"$dest$bindir/chittyctl" --version | grep -q '^chittyctl ' || fail "the installed chittyctl does not run"
bash -n "$dest$datadir/bash-completion/completions/chittyctl" || fail "the bash completion does not parse"
echo "ok: chittyctl, its man page and its bash completion are installed"
echo PASS
