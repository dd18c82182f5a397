#!/usr/bin/env bash
# Installs the Debian 12 packages chitty-agent needs to build and test.
# Idempotent: packages already installed are left alone, and apt is not
# touched at all when nothing is missing.
set -euo pipefail

packages=(
  # build
  build-essential meson ninja-build pkg-config
  # libraries (pkg-config names: libuv libcurl libsodium tomlplusplus libsystemd
  # catch2 RapidJSON CLI11; tl/expected.hpp has no .pc)
  libuv1-dev libcurl4-openssl-dev libsodium-dev libtomlplusplus-dev
  libsystemd-dev catch2 rapidjson-dev libcli11-dev libexpected-dev
  # llhttp 8.1 C sources (no -dev package): /usr/share/llhttp, /usr/share/include/llhttp
  node-llhttp
  # fuzzing (libFuzzer) and sanitizers
  clang-19 libclang-rt-19-dev
  # test tools: real curl, setpriv/unshare (util-linux), promtool, systemd tools
  curl util-linux procps python3 openssl prometheus systemd systemd-journal-remote man-db
  # deployment tests (docs/deploy.md): the Debian package and the Docker sidecar
  dpkg-dev debhelper lintian docker.io docker-compose mmdebstrap bash-completion
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
apt_updated=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if ((apt_updated == 0)); then
    "${sudo_cmd[@]}" apt-get update -qq
    apt_updated=1
  fi
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# Node.js and the official 1Password Connect SDK (@1password/connect, pinned in
# tests/fakes/connect-emulator/package-lock.json) for the emulator's SDK test.
# Any node/npm already on PATH will do; otherwise Debian's packages.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-deps: installing nodejs npm"
  apt_install nodejs npm
fi
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
emulator_dir="$repo_root/tests/fakes/connect-emulator"
sdk_marker="$emulator_dir/node_modules/@1password/connect/package.json"
if [[ ! -f "$sdk_marker" || "$emulator_dir/package-lock.json" -nt "$sdk_marker" ]]; then
  echo "install-deps: npm ci in tests/fakes/connect-emulator"
  npm ci --prefix "$emulator_dir" --no-audit --no-fund
fi

# The official MCP SDK (@modelcontextprotocol/sdk, pinned in
# tests/mcp/package-lock.json): its client drives `chittyctl mcp` in the MCP test.
mcp_dir="$repo_root/tests/mcp"
mcp_marker="$mcp_dir/node_modules/@modelcontextprotocol/sdk/package.json"
if [[ -f "$mcp_dir/package-lock.json" ]] && [[ ! -f "$mcp_marker" || "$mcp_dir/package-lock.json" -nt "$mcp_marker" ]]; then
  echo "install-deps: npm ci in tests/mcp"
  npm ci --prefix "$mcp_dir" --no-audit --no-fund
fi
