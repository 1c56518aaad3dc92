#!/bin/sh
# The spec suite under AddressSanitizer, UBSan and LeakSanitizer (`make asan`): build-asan/lunet/core.so is built
# with -fsanitize=address,undefined, and both runtimes are preloaded into lua5.4 (a Debian binary without them).
# Each spec file runs in its own busted process, so a report names its file. Every process the specs start (lunet
# commands, child scripts, PoCL's linker, sh, date) inherits the runtimes and writes its sanitizer reports to files
# of its own (log_path, named after the program), so a report of a child whose output a spec swallows is still
# seen. A spec file fails when busted fails or a lua5.4 process (the only program that runs Lunet's code) left a
# report (a UBSan "runtime error" does not change exit codes); the other programs' reports are kept, not counted.
# scripts/lsan.supp suppresses leaks of libraries that are not Lunet's, never of csrc/.
# Usage: scripts/asan-specs.sh [spec files or folders] (default spec). Logs: $ASAN_LOG_DIR (default
# build-asan/spec-logs): <spec>.log, busted's output, and <spec>.reports/, the sanitizers' reports.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGS=${ASAN_LOG_DIR:-$ROOT/build-asan/spec-logs}
mkdir -p "$LOGS"
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$ROOT/build-asan/?.so;;"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0"
files=""
for a in "${@:-spec}"; do
  if [ -d "$a" ]; then files="$files $(ls "$a"/*_spec.lua)"; else files="$files $a"; fi
done
failed=0 n=0 total_ok=0 total_bad=0 total_skipped=0
for f in $files; do
  n=$((n + 1))
  name=$(basename "$f" .lua)
  log="$LOGS/$name.log" reports="$LOGS/$name.reports"
  rm -rf "$reports"
  mkdir -p "$reports"
  start=$(date +%s)
  # intercept_tls_get_addr=0: GCC 12's LeakSanitizer misreads glibc 2.36's dynamic-TLS vector in some processes
  # ("Tracer caught signal 11" at a DTLS entry, depending only on memory layout: a child of tune_spec fails or
  # passes as a Lua file grows); Lunet keeps no pointers in thread-local storage, so nothing is lost by it
  ASAN_OPTIONS="detect_leaks=1:intercept_tls_get_addr=0:log_path=$reports/asan:log_exe_name=1" \
    UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan:log_exe_name=1" \
    lua5.4 /usr/bin/busted -o TAP "$f" > "$log" 2>&1
  rc=$?
  summary=$(grep -E '^ok ' "$log" | grep -cv '# SKIP')
  skipped=$(grep -cE '^ok [0-9]+ - # SKIP' "$log")
  bad=$(grep -cE '^not ok ' "$log")
  # reports, not notes (LSan in a forked child only warns that the parent's threads are not its own)
  nrep=$(grep -lE 'ERROR: |runtime error:|SUMMARY: ' "$reports"/*.lua5.4.* 2>/dev/null | wc -l)
  total_ok=$((total_ok + summary)) total_bad=$((total_bad + bad)) total_skipped=$((total_skipped + skipped))
  verdict=clean
  if [ "$rc" -ne 0 ] || [ "$nrep" -ne 0 ]; then
    verdict="FAILED (exit $rc, $nrep sanitizer reports of lua5.4 in $reports)"
    failed=$((failed + 1))
  fi
  echo "$f: $summary ok, $bad not ok, $skipped pending, $(( $(date +%s) - start ))s, $verdict"
done
echo "asan: $n spec files, $failed failed; $total_ok specs passed, $total_bad failed, $total_skipped pending"
[ "$failed" -eq 0 ]
