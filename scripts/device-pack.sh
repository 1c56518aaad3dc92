#!/bin/sh
# Packs what a bare GPU machine needs to run Lunet's specs and benches without building anything:
# the module, lua5.4, the Lua libraries busted uses, and every shared library core.so links
# (OpenCL loader and CLBlast included). Output: .dev/ (ignored by git), carried by the device run.
set -eu
cd "$(dirname "$0")/.."
rm -rf .dev && mkdir -p .dev/lib .dev/bin .dev/share .dev/clib
cp build/lunet/core.so .dev/clib/ 2>/dev/null || { echo "build first (make build)"; exit 1; }
mkdir -p .dev/clib/lunet && mv .dev/clib/core.so .dev/clib/lunet/
cp "$(command -v lua5.4)" /usr/bin/busted .dev/bin/
cp -rL /usr/share/lua/5.4 .dev/share/lua
cp -rL /usr/lib/x86_64-linux-gnu/lua/5.4 .dev/clib/sys
for f in .dev/clib/lunet/core.so .dev/bin/lua5.4 $(find .dev/clib/sys -name '*.so'); do
  ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux)[.-]' | while read -r lib; do
  cp -L "$lib" .dev/lib/
done
du -sh .dev
