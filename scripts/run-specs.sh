#!/bin/sh
# Runs the busted specs twice: with the kernels chosen for the device's own class, then with the GPU
# class forced (LUNET_DEVICE_CLASS=gpu: on PoCL every op then runs the kernels a GPU would run, so they
# are checked against the same references without a GPU). Prints one summary line per pass and ends
# with one plain line over both ("specs: N passed, N failed, N skipped") that CI tools read; exits
# non-zero when any spec failed or errored. LUNET_SPEC_CLASSES="device" runs the first pass only.
# The GPU-class pass leaves out the spec files that never choose a kernel by device class (formats, planning,
# fingerprints, evaluation, the CLI's parsing, the docs): run twice they would check the same host code twice
# and push CI past its time budget. Whole-pipeline specs (integration, interop, cascade, examples) stay in.
set -u
HOST_ONLY="fingerprint resample_tie plan_options planner json pickle npz image store rng splits convert_msd
find_best evaluate cli commands docs nnunet_script verify lock torch_format cascade_morph"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
total_passed=0 total_failed=0 total_skipped=0
for class in ${LUNET_SPEC_CLASSES:-device gpu}; do
  if [ "$class" = device ]; then
    echo "== specs, kernels chosen for the device's class"
    lua5.4 /usr/bin/busted --output=utfTerminal "$@" 2>&1 | tee "$log"
  else
    echo "== specs, kernels chosen for the $class class (LUNET_DEVICE_CLASS=$class)"
    files=""
    for f in "$@"; do
      if [ -d "$f" ]; then
        for g in "$f"/*_spec.lua; do
          skip=""
          for h in $HOST_ONLY; do [ "$(basename "$g")" = "${h}_spec.lua" ] && skip=1; done
          [ -z "$skip" ] && files="$files $g"
        done
      else
        files="$files $f"
      fi
    done
    # shellcheck disable=SC2086
    LUNET_DEVICE_CLASS=$class lua5.4 /usr/bin/busted --output=utfTerminal $files 2>&1 | tee "$log"
  fi
  status_line=$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
    grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)
  if [ -z "$status_line" ]; then
    echo "specs ($class): busted printed no summary (it crashed?)" >&2
    total_failed=$((total_failed + 1))
    continue
  fi
  nums=$(echo "$status_line" | tr -cs '0-9' ' ')
  passed=$(echo $nums | cut -d' ' -f1) failures=$(echo $nums | cut -d' ' -f2) errors=$(echo $nums | cut -d' ' -f3)
  skipped=$(echo $nums | cut -d' ' -f4)
  echo "$class class: $passed passed, $((failures + errors)) failed, $skipped skipped"
  total_passed=$((total_passed + passed)) total_failed=$((total_failed + failures + errors))
  total_skipped=$((total_skipped + skipped))
done
echo "specs: $total_passed passed, $total_failed failed, $total_skipped skipped"
[ "$total_failed" -eq 0 ]
