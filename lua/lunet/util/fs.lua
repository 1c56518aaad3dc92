--[[ lunet.util.fs: file writes that never leave a half-written file under the final name.

  local fs = require "lunet.util.fs"
  fs.write_atomic(path, content)   -- content to a temp name in path's folder, then renamed over path
  fs.copy_atomic(src, dst)         -- src's bytes written to dst with write_atomic
  fs.rmtree(path)                  -- path and everything below it; nothing when it does not exist
  fs.remove_temp_files(dir [, only]) -- a killed writer's leftovers in dir (run holding dir's lock only)

A reader (a resumed run, a neighbouring process, nnU-Net itself) then sees either the old file or the
whole new one. The temp name keeps path as its prefix ("x.json.tmp<time>.<rand>") so that a leftover
after a crash never matches a listing by ending (*.json, *.nii.gz). core.npz and the image and store
writers do the same in C.
]]
local paths = require "lunet.util.paths"

local M = {}

function M.write_atomic(path, content)
  local tmp = string.format("%s.tmp%d.%d", path, os.time(), math.random(0, 1 << 30))
  local f, err = io.open(tmp, "wb")
  if not f then error(path .. ": cannot create: " .. tostring(err), 0) end
  local ok, werr = f:write(content)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    error(path .. ": write failed: " .. tostring(werr or cerr), 0)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    error(path .. ": rename failed: " .. tostring(rerr), 0)
  end
end

--- Temporary files of writers killed mid-write ("<file>.tmp-XXXXXX" from the C writers' mkstemp,
--- "<file>.tmp<time>.<n>" from write_atomic). Only a run holding the folder's lock may remove them (no live
--- writer owns them then).
function M.is_temp_name(name)
  return name:match("%.tmp%-%w%w%w%w%w%w$") ~= nil or name:match("%.tmp%d+%.%d+$") ~= nil
end

--- Removes dir's temporary files (see is_temp_name), those accepted by only(name) when given; returns how many.
function M.remove_temp_files(dir, only)
  local n = 0
  if not paths.isdir(dir) then return 0 end
  for _, name in ipairs(paths.listdir(dir)) do
    if M.is_temp_name(name) and (not only or only(name)) and os.remove(paths.join(dir, name)) then n = n + 1 end
  end
  return n
end

function M.copy_atomic(src, dst)
  local f, err = io.open(src, "rb")
  if not f then error(src .. ": cannot read: " .. tostring(err), 0) end
  local bytes = f:read("a")
  f:close()
  M.write_atomic(dst, bytes)
end

function M.rmtree(path)
  if not paths.exists(path) then return end
  if paths.isdir(path) then
    for _, name in ipairs(paths.listdir(path)) do M.rmtree(paths.join(path, name)) end
  end
  os.remove(path)
end

return M
