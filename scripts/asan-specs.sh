#!/bin/sh
# The spec suite under AddressSanitizer, UBSan and LeakSanitizer (`make asan`): build-asan/lunet/core.so is built
# with -fsanitize=address,undefined, and both runtimes are preloaded into lua5.4 (a Debian binary without them).
# Each spec file runs in its own busted process, so a report names its file; a file fails when busted fails or its
# output holds a sanitizer report (a UBSan "runtime error" does not change the exit code). The children the specs
# start (lunet commands, PoCL's linker) inherit the runtimes; scripts/lsan.supp suppresses leaks of programs
# that are not Lunet's, never of csrc/. Usage: scripts/asan-specs.sh [spec files or folders] (default spec).
# Logs: $ASAN_LOG_DIR (default build-asan/spec-logs), one per spec file.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGS=${ASAN_LOG_DIR:-$ROOT/build-asan/spec-logs}
mkdir -p "$LOGS"
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$ROOT/build-asan/?.so;;"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=1"
export LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1"
files=""
for a in "${@:-spec}"; do
  if [ -d "$a" ]; then files="$files $(ls "$a"/*_spec.lua)"; else files="$files $a"; fi
done
failed=0 n=0
for f in $files; do
  n=$((n + 1))
  log="$LOGS/$(basename "$f" .lua).log"
  start=$(date +%s)
  lua5.4 /usr/bin/busted -o TAP "$f" > "$log" 2>&1
  rc=$?
  summary=$(grep -cE '^ok ' "$log")
  bad=$(grep -cE '^not ok ' "$log")
  reports=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log")
  verdict=clean
  if [ "$rc" -ne 0 ] || [ "$reports" -ne 0 ]; then verdict="FAILED (exit $rc, $reports sanitizer reports: $log)"; failed=$((failed + 1)); fi
  echo "$f: $summary ok, $bad not ok, $(( $(date +%s) - start ))s, $verdict"
done
echo "asan: $n spec files, $failed failed"
[ "$failed" -eq 0 ]
