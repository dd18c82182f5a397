#!/usr/bin/env bash
# The Prometheus alerting rules (packaging/prometheus/, docs/alerts.md):
# `promtool check rules` on the rules and `promtool test rules` on their unit
# tests. Exit 77 (skipped) only when promtool is absent.
#
# Needs: promtool (Debian: prometheus; scripts/install-deps.sh installs it).
set -euo pipefail

src=${CHITTY_SOURCE_ROOT:?set by meson}
# Meson passes the promtool it found ('' when none); by hand, the one on PATH.
promtool=${PROMTOOL-$(command -v promtool || true)}

[[ -n "$promtool" ]] || { echo "SKIP: promtool not found"; exit 77; }

dir=$src/packaging/prometheus
"$promtool" check rules "$dir/chitty-agent.rules.yml"
"$promtool" test rules "$dir/chitty-agent.rules.test.yml"
