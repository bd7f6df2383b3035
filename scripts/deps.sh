#!/usr/bin/env bash
# Installs what svcctl needs to build, test and run, from Debian 12's packages.
# Runs apt-get only when something is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libcli11-dev libzookeeper-mt-dev nlohmann-json3-dev libmsgpack-cxx-dev
  libcurl4-openssl-dev libfmt-dev doctest-dev libboost-dev
  zookeeper python3 python3-kazoo python3-pytest python3-msgpack
  clang libclang-rt-14-dev curl
  mandoc zsh fish  # tests: man page lint; the zsh and fish completions run in them
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing: ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
