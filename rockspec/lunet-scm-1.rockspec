-- Builds Lunet with CMake through luarocks, from a checkout:
--   luarocks --lua-version 5.4 make rockspec/lunet-scm-1.rockspec [--tree DIR | --local]
--   luarocks --lua-version 5.4 test rockspec/lunet-scm-1.rockspec      (busted, configured by .busted)
-- `make` builds the working tree it is run in and never reads source.url. Lunet has no published
-- repository or release tarball yet, so source.url names the checkout itself: `luarocks build` and
-- `luarocks pack` work when run from the checkout's root (git+file://. clones the current directory)
-- and nowhere else. Point it at the public repository once there is one.
rockspec_format = "3.0"
package = "lunet"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "nnU-Net v2's self-configuring segmentation pipeline: C/OpenCL core, Lua front",
  detailed = [[
Lunet fingerprints a dataset in nnU-Net's layout, plans the pipeline with editable Lua rules,
preprocesses, trains U-Nets with OpenCL (CLBlast GEMM), predicts with sliding windows and selects
the best configuration, ensemble and postprocessing.]],
}
-- Every module lua/ requires outside lunet.* (spec/docs_spec.lua checks this list against the code).
-- JSON is lunet.util.json, part of Lunet: see docs/formats.md for why not lua-cjson.
dependencies = {
  "lua >= 5.4, < 5.5",
  "luafilesystem >= 1.8", -- lfs: directory listing and attributes (lunet.util.paths, lunet.dataset)
  "argparse >= 0.7",      -- the lunet command line (lunet.cli.args)
}
-- The specs also decode their fixtures with lua-cjson, an independent decoder from Lunet's own.
test_dependencies = {
  "busted >= 2.1",
  "lua-cjson >= 2.1",
}
test = { type = "busted" }
-- The C libraries CMakeLists.txt links (the Debian packages scripts/install-deps.sh installs).
external_dependencies = {
  OPENCL = { header = "CL/cl.h" },
  CLBLAST = { header = "clblast_c.h" },
  TIFF = { library = "tiff" }, -- Debian keeps tiffio.h under include/<triplet>
  PNG = { header = "png.h" },
  ZSTD = { header = "zstd.h" },
  LZ4 = { header = "lz4.h" },
  NIFTI2 = { header = "nifti/nifti2_io.h" },
  ZLIB = { header = "zlib.h" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUA_LMOD = "$(LUADIR)",
    LUA_CMOD = "$(LIBDIR)",
    LUNET_PORTABLE = "ON",
  },
  install = { bin = { lunet = "scripts/lunet" } },
}
