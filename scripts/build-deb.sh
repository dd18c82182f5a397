#!/usr/bin/env bash
# Builds the Debian package from packaging/debian/ with dpkg-buildpackage
# (docs/deploy.md, "Debian package") and checks it with lintian.
#
#   ./scripts/build-deb.sh [--no-lintian] [OUTDIR]      (default: build-deb/)
#
# The tree (tracked and untracked files, not ignored ones) is copied to a
# scratch directory with packaging/debian as debian/, so neither the checkout
# nor its build directories are touched. Needs the Build-Depends of
# packaging/debian/control (scripts/install-deps.sh installs them) plus
# dpkg-dev, debhelper and lintian. Exit 1 when the build fails or lintian
# reports an error.
set -euo pipefail
lintian=1
if [[ "${1:-}" == --no-lintian ]]; then lintian=0; shift; fi
src=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$src/build-deb}" && cd "${1:-$src/build-deb}" && pwd)

scratch=$(mktemp -d "${TMPDIR:-/tmp}/chitty-deb.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
tree="$scratch/chitty-agent"
mkdir "$tree"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tree" 2>/dev/null) ||
    { echo "build-deb: cannot copy the tree" >&2; exit 1; }
else
  tar -C "$src" --exclude='./build*' --exclude=node_modules -cf - . | tar -C "$tree" -xf -
fi
rm -rf "$tree/debian"
cp -r "$src/packaging/debian" "$tree/debian"

(cd "$tree" && DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-nocheck noautodbgsym} parallel=$(nproc)" dpkg-buildpackage -us -uc)
rm -f "$out"/chitty-agent_*
cp "$scratch"/chitty-agent_* "$out"/
echo "build-deb: $(cd "$out" && ls chitty-agent_*)"

# lintian: errors fail the build; warnings are printed.
((lintian)) || exit 0
lintian --fail-on error --tag-display-limit 0 "$out"/chitty-agent_*.changes
