-- lunet.util.device_arg: nnU-Net's `-device cpu|cuda|mps` (and Lunet's OpenCL index) to an OpenCL device index.
--
--   device_arg.resolve(spec [, devices]) -> index (0-based, lunet.devices() order) or nil (the default device)
--
-- nnU-Net runs on the CPU or on CUDA; Lunet runs everything on OpenCL, so `cpu` is the first CPU device (PoCL) and
-- `cuda` the first NVIDIA GPU (any GPU when no NVIDIA one). A device that is not there is an error that says which
-- devices there are, never a silent fallback: `-device cpu` must not run on a GPU, nor `-device cuda` on the CPU.
local M = {}

local function listing(devs)
  local t = {}
  for _, d in ipairs(devs) do t[#t + 1] = ("%d: %s (%s)"):format(d.index, d.name, d.type) end
  return #t > 0 and table.concat(t, "; ") or "none"
end

function M.resolve(spec, devices)
  if spec == nil then return nil end
  local devs = devices or require("lunet.core").devices()
  local n = math.tointeger(tonumber(spec))
  if n then
    for _, d in ipairs(devs) do if d.index == n then return n end end
    error(("-device %d: no such OpenCL device (devices: %s)"):format(n, listing(devs)), 0)
  end
  local s = tostring(spec):lower()
  if s == "cpu" then
    for _, d in ipairs(devs) do if d.type == "cpu" then return d.index end end
    error("-device cpu: no OpenCL CPU device (install pocl-opencl-icd); devices: " .. listing(devs), 0)
  elseif s == "cuda" or s == "gpu" then
    local any
    for _, d in ipairs(devs) do
      if d.type == "gpu" then
        if tostring(d.vendor):find("NVIDIA", 1, true) or tostring(d.platform):find("NVIDIA", 1, true) then
          return d.index
        end
        any = any or d.index
      end
    end
    if any then return any end
    error(("-device %s: no OpenCL GPU device (install the GPU's OpenCL driver, or use -device cpu); devices: %s")
      :format(s, listing(devs)), 0)
  elseif s == "mps" then
    error("-device mps: Apple's Metal is not available to Lunet (OpenCL only); use -device cpu or an OpenCL GPU", 0)
  end
  error(("-device %s: expected cpu, cuda or an OpenCL device index (devices: %s)"):format(tostring(spec),
    listing(devs)), 0)
end

return M
