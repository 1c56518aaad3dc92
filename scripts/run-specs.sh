#!/bin/sh
# Runs the busted specs and ends with one plain summary line ("specs: N passed, N failed, N skipped")
# that CI tools read; exits non-zero when any spec failed or errored.
set -u
log=$(mktemp)
trap 'rm -f "$log"' EXIT
lua5.4 /usr/bin/busted --output=utfTerminal "$@" 2>&1 | tee "$log"
status_line=$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
  grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)
if [ -z "$status_line" ]; then
  echo "specs: busted printed no summary (it crashed?)" >&2
  exit 1
fi
set -- $(echo "$status_line" | tr -cs '0-9' ' ')
passed=$1 failed=$(($2 + $3)) skipped=$4
echo "specs: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
