#!/usr/bin/env bash
# Builds Verbund and runs every test: formatting, the release build's unit, fuzz-corpus and
# integration tests, then the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# Installs what it needs first. Set VERBUND_TEST_PRESETS="release" to run one preset only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
# Let ccache share results between clones in different folders (paths are made relative).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true

jobs=$(nproc)
echo "== format check"
files=$(git ls-files '*.h' '*.cpp' 2>/dev/null || find src tests fuzz bench -name '*.h' -o -name '*.cpp')
if ! clang-format --dry-run --Werror $files >/tmp/verbund-format.log 2>&1; then
  head -40 /tmp/verbund-format.log
  echo "format check failed: run clang-format -i on the files above"
  exit 1
fi

# playwright-core for the browser tests (tests/browser): `npm ci` only when node_modules is
# missing or package-lock.json changed since the last install.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules/playwright-core ] || [ "$(cat node_modules/.verbund-lock-sha256 2>/dev/null)" != "$lock_sum" ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_sum" > node_modules/.verbund-lock-sha256
fi

rc=0
for preset in ${VERBUND_TEST_PRESETS:-release asan}; do
  echo "== build ($preset)"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "== test ($preset)"
  # Integration tests start real processes on loopback; run them one at a time.
  if ! ctest --preset "$preset" -j "$jobs" --timeout 600; then rc=1; fi
done
exit $rc
