#!/bin/sh
# Offline check of the inline PTX in the GPU kernels (issue #25), for machines with clang and CUDA's ptxas
# but no NVIDIA GPU: compiles kernels/conv/igemm.cl to PTX for every pass x micro-kernel (f16 mma.sync with
# and without ldmatrix, tf32 mma.sync), geometry as build options (GEOM_FIXED, as on GPUs), with the built-ins defined by
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
# f16 fragments with and without ldmatrix (LDSM), tf32 without
for variant in "3 0" "3 1" "4 0"; do
  set -- $variant
  mma=$1 ldsm=$2
  half=$([ $mma = 3 ] && echo 1 || echo 0)
  for pass in 0 1 2 3 4 5; do
    "$CLANG" -x cl -cl-std=CL1.2 -target nvptx64-nvidia-nvcl -Xclang -finclude-default-header -O2 -S \
      -Xclang -target-cpu -Xclang sm_80 -Xclang -target-feature -Xclang +ptx75 \
      -DGEOM_FIXED -DPASS=$pass -DXH=$half -DYH=$half -DMMA=$mma -DLDSM=$ldsm -o "$tmp/k.ptx" "$tmp/src.cl"
    grep -q "mma.sync.aligned" "$tmp/k.ptx" || { echo "ptx-check: no mma.sync in MMA=$mma PASS=$pass"; exit 1; }
    if [ $ldsm = 1 ]; then
      grep -q "ldmatrix.sync.aligned" "$tmp/k.ptx" || { echo "ptx-check: no ldmatrix in PASS=$pass"; exit 1; }
    fi
    for sm in sm_80 sm_90; do
      "$PTXAS" -arch=$sm "$tmp/k.ptx" -o "$tmp/k.cubin"
      n=$((n + 1))
    done
  done
done
# every work-group tile of conv.igemm_tile (ops/conv/igemm.c's TILES: warps_m warps_n fm fn bk), forward
# pass, sm_90, with ptxas' register and spill report for the igemm kernel (clang's code: NVIDIA's OpenCL
# compiler allocates its own); tiles whose local memory passes 48 KiB are skipped, as igemm.c skips them
t=0
for tile in "2 2 2 4 16" "4 2 2 4 16" "2 4 2 4 16" "2 4 4 4 16" "1 4 2 4 16" "1 2 2 4 16" "2 2 2 4 32" "2 4 4 4 32"; do
  set -- $tile
  for variant in "3 0" "3 1" "4 0"; do
    mma=${variant% *} ldsm=${variant#* }
    half=$([ $mma = 3 ] && echo 1 || echo 0)
    elem=$([ $mma = 3 ] && echo 2 || echo 4)
    local_bytes=$((2 * ($1 * $3 * 16 + $2 * $4 * 8) * ($5 + 8) * elem))
    [ $local_bytes -gt 49152 ] && continue
    "$CLANG" -x cl -cl-std=CL1.2 -target nvptx64-nvidia-nvcl -Xclang -finclude-default-header -O2 -S \
      -Xclang -target-cpu -Xclang sm_80 -Xclang -target-feature -Xclang +ptx75 \
      -DGEOM_FIXED -DPASS=0 -DXH=$half -DYH=$half -DMMA=$mma -DLDSM=$ldsm -DWARPS_M=$1 -DWARPS_N=$2 -DFM=$3 -DFN=$4 -DBK=$5 \
      -o "$tmp/k.ptx" "$tmp/src.cl"
    "$PTXAS" -v -arch=sm_90 "$tmp/k.ptx" -o "$tmp/k.cubin" > "$tmp/ptxas.log" 2>&1 || { cat "$tmp/ptxas.log"; exit 1; }
    report=$(awk "/entry function 'igemm'/ {on = 1} on && /spill stores/ {sub(/^ */, \"\"); s = \$0} on && /Used/ {print \$5 \" registers, \" s; exit}" "$tmp/ptxas.log")
    echo "ptx-check: tile $(($1 * $3 * 16))x$(($2 * $4 * 8))$([ $5 = 32 ] && echo k32)$([ $ldsm = 1 ] && echo l) ($1 x $2 warps) MMA=$mma: $report"
    t=$((t + 1))
  done
done
echo "ptx-check: $n kernels assembled (f16 m16n8k16 with and without ldmatrix, tf32 m16n8k8; 6 passes; sm_80 and sm_90), $t tiles"
