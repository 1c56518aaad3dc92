#!/bin/sh
# Installs the Debian 12 packages Lunet builds, tests and demos with. Idempotent:
# packages already present are skipped, so a second run costs one dpkg query.
set -eu
PKGS="build-essential cmake pkg-config lua5.4 liblua5.4-dev lua-busted lua-cjson
ocl-icd-opencl-dev ocl-icd-libopencl1 pocl-opencl-icd clinfo libclblast-dev clblast-utils
libtiff-dev libzstd-dev liblz4-dev libnifti2-dev zlib1g-dev libpng-dev mricron-data luarocks lua-filesystem lua-argparse
libopenmpi-dev openmpi-bin curl"
[ -n "${LUNET_EXTRA_PKGS:-}" ] && PKGS="$PKGS $LUNET_EXTRA_PKGS"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ -n "$missing" ]; then
  echo "lunet: installing$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# Real NIfTI test volumes (KmeansTest_*) ship in insighttoolkit5-examples' doc folder, which Debian
# images often exclude from installs: unpack the package under /tmp/itkex, where the specs look.
itk_data=usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1UCharRaw.nii.gz
if [ ! -f "/$itk_data" ] && [ ! -f "/tmp/itkex/$itk_data" ]; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -qq insighttoolkit5-examples >/dev/null 2>&1); then
    dpkg -x "$tmp"/insighttoolkit5-examples_*.deb /tmp/itkex
  else
    echo "lunet: could not download insighttoolkit5-examples (its image specs will be pending)" >&2
  fi
  rm -rf "$tmp"
fi
