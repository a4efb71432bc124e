#!/usr/bin/env bash
# Installs the Debian packages Verbund needs, only when something is missing (idempotent).
# usage: scripts/deps.sh build|test|package
set -euo pipefail
kind=${1:-build}

build_pkgs=(cmake ninja-build ccache g++ pkg-config git
  libasio-dev libssl-dev libsqlite3-dev nlohmann-json3-dev libc-ares-dev libspdlog-dev
  libcli11-dev libpugixml-dev libcpp-httplib-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev openssl)
# Test-only tools: the third-party SIP peers, sanitizer/fuzzer toolchain, formatting check,
# the differential parser (sofia-sip), audio checks, the browser tests of the web UI (Node.js
# with playwright-core from package-lock.json, driving Debian's headless Chromium).
# iptables: the NAT router (MASQUERADE) of the NAT test.
test_pkgs=(clang libclang-rt-14-dev clang-format sip-tester kamailio libsofia-sip-ua-dev sox
  iproute2 iptables procps python3 baresip-core linphone-cli sipvicious valgrind nodejs chromium)

# What a running node needs besides its own binary: the media relay it starts and supervises
# (rtpengine in userspace, no kernel module). Part of both set-ups (run.sh and test.sh).
run_pkgs=(rtpengine-daemon)

# Building the Debian package (scripts/package.sh) and checking it (its test runs lintian).
package_pkgs=(dpkg-dev debhelper lintian)

pkgs=("${build_pkgs[@]}" "${run_pkgs[@]}")
[ "$kind" = test ] && pkgs+=("${test_pkgs[@]}" "${package_pkgs[@]}")
[ "$kind" = package ] && pkgs+=("${package_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm: Debian ships it as its own package; Node.js builds that bundle it conflict with that one.
if [ "$kind" = test ] && ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Kamailio's package enables a system service; tests start their own instances.
if [[ " ${missing[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now kamailio >/dev/null 2>&1 || true
fi
# So does rtpengine's: every node starts its own rtpengine as a child process.
if [[ " ${missing[*]} " == *" rtpengine-daemon "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now rtpengine-daemon >/dev/null 2>&1 || true
fi
echo "deps: done"
