# Shared by the system tests that boot a real systemd (PID 1) in private
# namespaces: systemd_boot_test.sh (on a read-only host root) and
# package_test.sh (on a throw-away overlay of it). Source it; it defines:
#
#   masked_units           units that would write host state (utmp, sysctl,
#                          modules, clock, users, caches, timers); most also
#                          skip themselves under container=.
#   boot_systemd SCRIPT    runs SCRIPT (which ends by exec'ing systemd) as
#                          PID 1 of new mount/PID/UTS/IPC/network namespaces,
#                          sets $pid1 and $boot_launcher, waits until the
#                          system has booted; returns 1 (with $boot_state)
#                          when it does not.
#   inside CMD…            runs CMD in the booted system's namespaces, with its
#                          root directory.
#   poweroff_systemd       stops it (and kills it if it does not stop).

masked_units="systemd-update-utmp.service systemd-update-utmp-runlevel.service systemd-sysctl.service
  systemd-modules-load.service systemd-timesyncd.service systemd-random-seed.service systemd-sysusers.service
  systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service systemd-tmpfiles-clean.timer
  systemd-journal-flush.service systemd-journal-catalog-update.service systemd-update-done.service
  systemd-remount-fs.service systemd-machine-id-commit.service systemd-hwdb-update.service ldconfig.service
  systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service systemd-binfmt.service
  systemd-pstore.service systemd-firstboot.service timers.target paths.target
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer man-db.timer fstrim.timer logrotate.timer"

pid1=""
boot_launcher=""
boot_state=""

inside() { nsenter -t "$pid1" -m -r -p -u -i -n -- "$@"; }

boot_systemd() {  # boot_systemd SCRIPT LOG
  unshare --mount --pid --fork --mount-proc --uts --ipc --net --propagation private --kill-child "$1" \
    >"$2" 2>&1 &
  boot_launcher=$!
  # The booted systemd is the child of unshare (PID 1 inside).
  for _ in $(seq 100); do
    pid1=$(pgrep -P "$boot_launcher" -x systemd || true)
    [[ -n "$pid1" ]] && break
    sleep 0.1
  done
  [[ -n "$pid1" ]] || { boot_state="systemd did not start"; return 1; }
  for _ in $(seq 300); do
    boot_state=$(inside systemctl is-system-running 2>/dev/null || true)
    [[ "$boot_state" == running || "$boot_state" == degraded ]] && return 0
    sleep 0.2
  done
  return 1
}

poweroff_systemd() {
  if [[ -n "$pid1" ]] && kill -0 "$pid1" 2>/dev/null; then
    inside systemctl poweroff --no-block >/dev/null 2>&1 || true
    for _ in $(seq 100); do kill -0 "$pid1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid1" 2>/dev/null || true
  fi
}
