#!/bin/sh
# Packs what a bare GPU machine needs to run Lunet's specs and benches without building anything:
# the module, lua5.4, the Lua libraries busted uses, and every shared library core.so links
# (OpenCL loader and CLBlast included). Output: .dev/ (ignored by git), carried by the device run.
set -eu
cd "$(dirname "$0")/.."
# a portable build: the default one uses -march=native, which the GPU machine's CPU may not run
cmake -S . -B build-portable -DCMAKE_BUILD_TYPE=Release -DLUNET_PORTABLE=ON >/dev/null
cmake --build build-portable -j "$(nproc)" >/dev/null
rm -rf .dev && mkdir -p .dev/lib .dev/bin .dev/share .dev/clib/lunet
cp build-portable/lunet/core.so build-portable/lunet/testing.so .dev/clib/lunet/
# the demo data's two templates (mixed_spec trains on them; the GPU machine has no mricron-data)
mkdir -p .dev/data && cp /usr/share/mricron/templates/ch2.nii.gz /usr/share/mricron/templates/ch2bet.nii.gz .dev/data/
cp "$(command -v lua5.4)" /usr/bin/busted .dev/bin/
cp -rL /usr/share/lua/5.4 .dev/share/lua
cp -rL /usr/lib/x86_64-linux-gnu/lua/5.4 .dev/clib/sys
for f in .dev/clib/lunet/core.so .dev/clib/lunet/testing.so .dev/bin/lua5.4 $(find .dev/clib/sys -name '*.so'); do
  ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux)[.-]' | while read -r lib; do
  cp -L "$lib" .dev/lib/
done
# The PyTorch references: the amp bench builds nnU-Net's own network and loss, the GPU predict bench runs
# nnUNetv2_predict. The GPU image has torch, numpy, scipy, scikit-image, einops, timm, tqdm, msgpack; nnunetv2
# and what it imports that the image lacks travel as wheels (.whl/, ignored; python 3.12 there). SimpleITK (53 MB)
# does not fit the carry: scripts/device-stubs stands in for its import and the bench reads through nibabel.
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_28_x86_64 -d .whl nnunetv2==2.8.1 dynamic-network-architectures==0.4.4 \
  batchgenerators==0.25.5 blosc2==4.15.0 ndindex==1.10.1 nibabel==5.4.2
# acvl-utils is an sdist on PyPI; built in pip's isolated environment, whose setuptools reads its
# pyproject.toml (Debian 12's setuptools 65 rejects its `project.license`)
python3 -m pip wheel -q --no-deps -w .whl acvl-utils==0.2.6
du -sh .dev .whl
echo "device run: sh scripts/device-check.sh, carrying .dev and .whl"
