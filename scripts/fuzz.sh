#!/bin/sh
# Builds and runs the libFuzzer harnesses in csrc/fuzz/ (clang, ASan + UBSan), each for FUZZ_SECONDS
# (default 60), starting from the seed corpora in spec/fixtures/fuzz/<target>/. New corpus entries go
# to build-fuzz/corpus/<target>/ (the committed seeds are not modified); crashes to build-fuzz/.
# Usage: scripts/fuzz.sh [target...]   (targets: nifti tiff pickle zip; default all)
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/build-fuzz"
SECS="${FUZZ_SECONDS:-60}"
CC="${FUZZ_CC:-clang}"
mkdir -p "$OUT"
TARGETS="${*:-nifti tiff pickle zip}"
SRCS="$ROOT/csrc/img/image.c $ROOT/csrc/img/nifti.c $ROOT/csrc/img/tiff.c $ROOT/csrc/img/png.c \
$ROOT/csrc/tensor.c $ROOT/csrc/core/status.c $ROOT/csrc/core/atomic_file.c $ROOT/csrc/core/env.c $ROOT/csrc/fmt/zip.c \
$ROOT/csrc/fmt/pickle.c $ROOT/csrc/fmt/torch.c $ROOT/csrc/fuzz/stubs.c"
NIFTI_INC="$(dirname "$(find /usr/include -name nifti2_io.h | head -n 1)")"
for t in $TARGETS; do
  bin="$OUT/fuzz_$t"
  echo "fuzz: building $bin"
  $CC -g -O1 -std=c11 -D_GNU_SOURCE -DCL_TARGET_OPENCL_VERSION=120 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$ROOT/csrc" -I"$NIFTI_INC" \
    "$ROOT/csrc/fuzz/fuzz_$t.c" $SRCS -o "$bin" \
    -lnifti2 -lznz -ltiff -lpng -lz -lm -lOpenCL
  mkdir -p "$OUT/corpus/$t"
  echo "fuzz: running $t for ${SECS}s"
  ( cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=1536 -max_len=65536 -print_final_stats=1 "$OUT/corpus/$t" "$ROOT/spec/fixtures/fuzz/$t" )
done
