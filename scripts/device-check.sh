#!/bin/sh
# Runs on the lent GPU machine (device tool) over the packed .dev/ folder: registers NVIDIA's OpenCL
# driver with the carried ICD loader, then runs the device specs and the benches in one go.
# Results go to $OUT (log files). Nothing is built there. The run carries .dev and .whl (scripts/device-pack.sh).
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
dev="$root/.dev"
mkdir -p /tmp/icd
echo "${ICD_LIB:-/usr/local/nvidia/lib64/libnvidia-opencl.so.1}" > /tmp/icd/nvidia.icd # (ICD_LIB: a dry run's PoCL)
export OCL_ICD_VENDORS=/tmp/icd
export LD_LIBRARY_PATH="$dev/lib:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$dev/share/lua/?.lua;$dev/share/lua/?/init.lua;;"
export LUA_CPATH="$dev/clib/?.so;$dev/clib/sys/?.so;;"
export PATH="$dev/bin:$root/scripts:$PATH"
export LUNET_DEVICE="${LUNET_DEVICE:-gpu}" LUNET_CACHE_DIR=/tmp/lunet-cache LUNET_DEMO_TEMPLATES="$dev/data"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
# nnunetv2 for the PyTorch references (bench/train_step.lua amp: nnU-Net's network and loss; bench/predict.lua
# --gpu: nnUNetv2_predict), with a stand-in for SimpleITK's import (scripts/device-pack.sh says why)
if ls "$root"/.whl/*.whl > /dev/null 2>&1; then
  for w in "$root"/.whl/*.whl; do # one at a time: a wheel that does not fit leaves the others installed
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$w" \
      >> "$OUT/pip.log" 2>&1 || echo "pip: $(basename "$w") not installed (see pip.log)"
  done
  python3 -c 'import SimpleITK' 2>/dev/null || export PYTHONPATH="/tmp/site:$root/scripts/device-stubs"
  export PYTHONPATH="${PYTHONPATH:-/tmp/site}" PATH="/tmp/site/bin:$PATH"
fi
python3 -c 'import nnunetv2.inference.predict_from_raw_data, dynamic_network_architectures, torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "nnunetv2 importable")' 2>&1 | tail -1
cd "$root"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
lua5.4 -e 'for _, d in ipairs(require("lunet").devices()) do print(d.index, d.type, d.name, d.driver) end' >> "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
# most valuable first, each bounded, so one slow piece cannot eat the lease
bench() { echo "== bench $*"; timeout "${BENCH_TIMEOUT:-90}" lua5.4 "bench/$1.lua" $2 2>&1 | tail -45; }
spec() {
  filters="" # SPEC_FILTERS: busted name patterns (Lua patterns, no spaces), any of which selects a spec
  for f in ${SPEC_FILTERS:-}; do filters="$filters --filter=$f"; done
  timeout "${SPEC_TIMEOUT:-60}" lua5.4 "$dev/bin/busted" -o TAP $filters "spec/$1_spec.lua" > "$OUT/spec_$1.log" 2>&1
  echo "== spec $1: $(grep -c '^ok' "$OUT/spec_$1.log") ok, $(grep -c '^not ok' "$OUT/spec_$1.log") not ok"
  grep -A3 '^not ok' "$OUT/spec_$1.log" | head -20
}
# PART=1 (default): what the issues' done-when needs, in about 8 minutes; PART=2: tuning, prediction, the per-layer
# table, the profile; PART=3: the other specs and benches; PART=all: everything (past one call's 10 minutes)
# A dry run on PoCL: ICD_LIB=libpocl.so.2.10.0 LUNET_DEVICE=0 LUNET_DEVICE_CLASS=gpu AMP_FLAGS=tiny AMP_STEPS=1 TUNE_BUDGET=5 PREDICT_FLAGS="--shape 24,48,48 --patch 16,32,32 --no-record"
PART="${PART:-1}"
part() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
{
  if part 1; then
    # issue 25: does the tensor-core path run here (the probe), and is every pass right on it, before timing
    lua5.4 -e 'local a = require("lunet.core").conv.mma_available(); print("mma.sync probe: f16 " .. tostring(a.f16) .. ", tf32 " .. tostring(a.tf32) .. ", ldmatrix " .. tostring(a.ldmatrix))'
    # (the PTX fragments on every geometry and pass; the FMA and emulated ones are CI's, part 3 reruns them all)
    SPEC_TIMEOUT=120 SPEC_FILTERS="on.ptx.tiles probes permutation" spec igemm
    # issue 24 / 25: default 3d_fullres (6 stages 32..320, 128^3, batch 2), Lunet mixed and fp32 against PyTorch
    # AMP and fp32 on this card, with peak memory and host waits inside the step; then nnU-Net's 2d plan at
    # 512x512 batch 12 likewise (`amp N tiny [2d]` is the PoCL-sized check)
    BENCH_TIMEOUT=${AMP_TIMEOUT:-200} bench train_step "amp ${AMP_STEPS:-3} ${AMP_FLAGS:-}"
    BENCH_TIMEOUT=${AMP_TIMEOUT:-200} bench train_step "amp ${AMP_STEPS:-3} 2d ${AMP_FLAGS:-}"
  fi
  if part 2; then
    # the implicit GEMM's tile per GEMM shape of the 3d step (lunet tune --igemm, largest GEMMs first within
    # the budget), then the mixed step again on the tuned tiles (the amp lines above ran the rule's tiles)
    BENCH_TIMEOUT=$((${TUNE_BUDGET:-90} + 60)) bench train_step "tune-igemm ${TUNE_BUDGET:-90} ${AMP_FLAGS:-}"
    echo "== mixed step on the tuned tiles: $(timeout 120 lua5.4 bench/train_step.lua amp-one mixed "${AMP_STEPS:-3}" ${AMP_FLAGS:-} 2>&1 | tail -1)"
    # sliding-window prediction: nnUNetv2_predict -device cuda (autocast) against Lunet (mixed precision, windows
    # summed on the device) on the abdominal-CT 3d_fullres plan's window case, with mirroring
    BENCH_TIMEOUT=180 bench predict "${PREDICT_FLAGS:---gpu --plan ct3d --mirror-only --no-record}"
    # the same conv layers on the implicit GEMM: float16 activations (f16 fragments) against PyTorch's float16
    # cuDNN on this card
    BENCH_TIMEOUT=90 bench ops "quick amp"
    # where a mixed step spends its device time (event-based, no finish per kernel)
    LUNET_PROFILE=1 timeout 120 lua5.4 bench/train_step.lua amp-one mixed 2 ${AMP_FLAGS:-} > "$OUT/profile_mixed.txt" 2>&1
    tail -30 "$OUT/profile_mixed.txt"
  fi
  if part 3; then
    BENCH_TIMEOUT=60 bench gemm "1024 2048 4096"
    BENCH_TIMEOUT=60 bench ops quick
    LUNET_CONV_IGEMM=1 BENCH_TIMEOUT=90 bench ops quick # float32 on the tf32 fragments against PyTorch fp32
    BENCH_TIMEOUT=150 bench train_step 2
    # issue 25: held-out Dice of mixed precision on the tensor-core path against fp32 (demo dataset, 250 steps,
    # 5 seeds of each)
    BENCH_TIMEOUT=300 bench mixed_dice "${DICE_ARGS:-10 25 4 5}"
    for s in ${DEVICE_SPECS:-igemm tensor ops conv nnops net amp half mixed profile}; do SPEC_TIMEOUT=90 spec "$s"; done
  fi
} 2>&1 | tee "$OUT/device.log"
