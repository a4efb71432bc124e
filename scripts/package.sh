#!/usr/bin/env bash
# Builds the Debian package verbund_<version>_amd64.deb from a clean clone of the committed tree
# (HEAD) with dpkg-buildpackage (debian/; the build uses the CMake release preset).
# usage: scripts/package.sh [OUTDIR]   (default: build/package)
# Uncommitted changes are not in the package. The clone is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=${1:-build/package}
mkdir -p "$out"
out=$(cd "$out" && pwd)
scripts/deps.sh package

version=$(sed -n 's/^project(verbund VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
deb_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "$version" != "$deb_version" ]; then
  echo "package: CMakeLists.txt says version $version, debian/changelog $deb_version" >&2
  exit 1
fi

work=$(mktemp -d /tmp/verbund-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone --quiet --no-hardlinks "$src" "$work/verbund"
# The clone compiles the same sources with the same flags as build/release: ccache's objects
# are reused when its base directory is the clone (relative paths).
export CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir 2>/dev/null || echo "$HOME/.cache/ccache")}
(cd "$work/verbund" && dpkg-buildpackage -b -us -uc -j"$(nproc)" >"$work/build.log" 2>&1) || {
  tail -60 "$work/build.log" >&2
  echo "package: dpkg-buildpackage failed" >&2
  exit 1
}
deb="verbund_${version}_amd64.deb"
mv "$work/$deb" "$out/$deb"
echo "$out/$deb"
