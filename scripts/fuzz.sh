#!/bin/sh
# Builds and runs the libFuzzer harnesses in csrc/fuzz/ (clang, ASan + UBSan), each for FUZZ_SECONDS
# (default 60), starting from the seed corpora in spec/fixtures/fuzz/<target>/. New corpus entries go
# to build-fuzz/corpus/<target>/ (the committed seeds are not modified); crashes to build-fuzz/.
# Usage: scripts/fuzz.sh [target...]   (targets: nifti tiff png npy store json pickle zip b2nd; default all)
#   nifti, tiff, png: the image readers (img/), through lu_image_read and a write/read round trip
#   npy:   img/npz.c's lu_npy_read and lu_npz_read (every input read both ways)
#   store: data/store.c's lu_store_valid, lu_store_open, lu_store_read_patch (.lcs case files)
#   json:  lua/lunet/util/json.lua's decode (and lua-cjson's) in an embedded Lua 5.4
#   pickle, zip: fmt/pickle.c's restricted unpickler; fmt/zip.c and the torch.save loader (fmt/torch.c)
#   b2nd:  fmt/b2nd.c's lu_b2nd_read (nnunetv2's Blosc2 .b2nd arrays)
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/build-fuzz"
SECS="${FUZZ_SECONDS:-60}"
CC="${FUZZ_CC:-clang}"
mkdir -p "$OUT"
TARGETS="${*:-nifti tiff png npy store json pickle zip b2nd}"
CORE="$ROOT/csrc/tensor.c $ROOT/csrc/core/status.c $ROOT/csrc/core/atomic_file.c $ROOT/csrc/core/env.c \
$ROOT/csrc/fuzz/stubs.c"
IMG="$ROOT/csrc/img/image.c $ROOT/csrc/img/nifti.c $ROOT/csrc/img/tiff.c $ROOT/csrc/img/png.c"
IMG_LIBS="-lnifti2 -lznz -ltiff -lpng -lz"
NIFTI_INC="$(dirname "$(find /usr/include -name nifti2_io.h | head -n 1)")"
for t in $TARGETS; do
  case "$t" in
    nifti|tiff|png) srcs="$IMG $CORE"; libs="$IMG_LIBS" ;;
    npy) srcs="$IMG $ROOT/csrc/img/npz.c $ROOT/csrc/fmt/zip.c $CORE"; libs="$IMG_LIBS" ;;
    pickle|zip) srcs="$ROOT/csrc/fmt/zip.c $ROOT/csrc/fmt/pickle.c $ROOT/csrc/fmt/torch.c $CORE"; libs="-lz" ;;
    store) srcs="$IMG $ROOT/csrc/data/store.c $ROOT/csrc/core/threads.c $CORE"; libs="$IMG_LIBS -lzstd -lpthread" ;;
    json) srcs=""; libs="-llua5.4 -DLU_ROOT=\"$ROOT\"" ;;
    b2nd) srcs="$IMG $ROOT/csrc/fmt/b2nd.c $CORE"; libs="$IMG_LIBS -lzstd -llz4" ;;
    *) echo "fuzz: unknown target '$t' (nifti tiff png npy store json pickle zip b2nd)" >&2; exit 2 ;;
  esac
  bin="$OUT/fuzz_$t"
  echo "fuzz: building $bin"
  # shellcheck disable=SC2086 # word splitting of the source and library lists is intended
  $CC -g -O1 -std=c11 -D_GNU_SOURCE -DCL_TARGET_OPENCL_VERSION=120 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$ROOT/csrc" -I"$NIFTI_INC" \
    "$ROOT/csrc/fuzz/fuzz_$t.c" $srcs -o "$bin" $libs -lm -lOpenCL
  mkdir -p "$OUT/corpus/$t"
  echo "fuzz: running $t for ${SECS}s"
  ( cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=1536 -max_len=65536 -print_final_stats=1 "$OUT/corpus/$t" "$ROOT/spec/fixtures/fuzz/$t" )
done
