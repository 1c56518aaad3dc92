#!/bin/sh
# `make faults`: kill -9 lunet preprocess / train / predict at random points on the demo data, resume, compare with
# an uninterrupted run, print a tally (scripts/faults.lua has the details). FAULTS_KILLS=N kills per stage (default
# 20), FAULTS_STAGES="preprocess train predict", FAULTS_SEED, FAULTS_DIR, FAULTS_KEEP=1. Results: docs/reliability.md.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH="$ROOT/build/?.so;;"
exec lua5.4 "$ROOT/scripts/faults.lua" "$@"
