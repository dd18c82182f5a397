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
  curl util-linux procps python3 prometheus systemd systemd-journal-remote
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
