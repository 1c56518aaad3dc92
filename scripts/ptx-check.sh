#!/bin/sh
# Offline check of the inline PTX in the GPU kernels (issue #25), for machines with clang and CUDA's ptxas
# but no NVIDIA GPU: compiles kernels/conv/igemm.cl to PTX for every pass x micro-kernel (f16 / tf32
# mma.sync), geometry as build options (GEOM_FIXED, as on GPUs), with the built-ins defined by
# scripts/ptx-prelude.cl, and assembles each with ptxas for sm_80 and sm_90. Exits 0 when all assemble,
# 77 (skip) without clang or ptxas.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
CLANG=${CLANG:-$(command -v clang-15 || command -v clang || true)}
PTXAS=${PTXAS:-$(command -v ptxas || ls /usr/local/cuda/bin/ptxas 2>/dev/null || true)}
if [ -z "$CLANG" ] || [ -z "$PTXAS" ]; then echo "ptx-check: needs clang and ptxas (skipped)"; exit 77; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the kernel with its one include expanded, after the prelude
{ cat "$root/scripts/ptx-prelude.cl" "$root/kernels/common/conv_geometry.cl"
  grep -v '#include "common/conv_geometry.cl"' "$root/kernels/conv/igemm.cl"; } > "$tmp/src.cl"
n=0
for mma in 3 4; do
  half=$([ $mma = 3 ] && echo 1 || echo 0)
  for pass in 0 1 2 3 4 5; do
    "$CLANG" -x cl -cl-std=CL1.2 -target nvptx64-nvidia-nvcl -Xclang -finclude-default-header -O2 -S \
      -Xclang -target-cpu -Xclang sm_80 -Xclang -target-feature -Xclang +ptx75 \
      -DGEOM_FIXED -DPASS=$pass -DXH=$half -DYH=$half -DMMA=$mma -o "$tmp/k.ptx" "$tmp/src.cl"
    grep -q "mma.sync.aligned" "$tmp/k.ptx" || { echo "ptx-check: no mma.sync in MMA=$mma PASS=$pass"; exit 1; }
    for sm in sm_80 sm_90; do
      "$PTXAS" -arch=$sm "$tmp/k.ptx" -o "$tmp/k.cubin"
      n=$((n + 1))
    done
  done
done
echo "ptx-check: $n kernels assembled (f16 m16n8k16 and tf32 m16n8k8, 6 passes, sm_80 and sm_90)"
