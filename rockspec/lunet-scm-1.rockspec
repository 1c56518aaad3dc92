-- Builds Lunet with CMake through luarocks: `luarocks --lua-version 5.4 make rockspec/lunet-scm-1.rockspec`
-- (Debian's luarocks package; add --local or --tree DIR to install outside the system tree).
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
dependencies = { "lua >= 5.4, < 5.5", "argparse >= 0.7" }
external_dependencies = {
  OPENCL = { header = "CL/cl.h" },
  CLBLAST = { header = "clblast_c.h" },
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
