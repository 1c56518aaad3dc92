-- Terminal helpers shared by the stages that draw progress (preprocess, trainer, predict).
local term = {}

--- true when stderr is a terminal (progress bars then redraw in place; otherwise stages print lines)
function term.stderr_is_tty()
  local ok, r = pcall(function()
    local p = io.popen("test -t 2 && echo y || echo n")
    local s = p:read("a")
    p:close()
    return s
  end)
  return ok and type(r) == "string" and r:match("y") ~= nil
end

--- seconds as "mm:ss", or "h:mm:ss" from one hour on
function term.fmt_duration(s)
  s = math.max(0, math.floor(s + 0.5))
  if s >= 3600 then return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return string.format("%02d:%02d", s // 60, s % 60)
end

return term
