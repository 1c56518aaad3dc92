#!/bin/sh
# Installs the Debian 12 packages Lunet builds, tests and demos with. Idempotent:
# packages already present are skipped, so a second run costs one dpkg query.
set -eu
PKGS="build-essential cmake pkg-config lua5.4 liblua5.4-dev lua-busted lua-cjson
ocl-icd-opencl-dev ocl-icd-libopencl1 pocl-opencl-icd clinfo libclblast-dev clblast-utils
libtiff-dev libzstd-dev libnifti2-dev zlib1g-dev libpng-dev mricron-data luarocks lua-filesystem"
[ -n "${LUNET_EXTRA_PKGS:-}" ] && PKGS="$PKGS $LUNET_EXTRA_PKGS"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "lunet: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
