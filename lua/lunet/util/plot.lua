--[[ lunet.util.plot: a small rasterizer for training charts (no plotting library needed).

  local plot = require "lunet.util.plot"
  local c = plot.canvas(800, 600)                       -- white RGB canvas
  c:line(x0, y0, x1, y1, {r, g, b}, width, dash)        -- dash: nil (solid) or {on, off} in pixels
  c:fill_rect(x, y, w, h, color); c:text(x, y, "Loss 0.5", color, scale, align)   -- align "left"|"center"|"right"
  c:text_v(x, y, "loss", color, scale)                   -- vertical text (bottom to top), centred on y
  plot.chart(c, {x=, y=, w=, h=}, {series = {{x = {...}, y = {...}, color =, label =, axis = "left"|"right",
             dash =, width =}}, xlabel =, ylabel =, y2label =, title =, legend = true})
  c:tensor() -> u8 tensor (3, 1, H, W);  c:write(path) -> PNG (atomic, via lunet.io.image)
  plot.progress(log, path [, opts]) -- nnU-Net's progress.png: 3 panels (losses + pseudo Dice, epoch time, LR)
  plot.text_width(s, scale), plot.nice_ticks(lo, hi, n)

The font is a built-in 5x7 bitmap (ASCII letters, digits, common punctuation), drawn at integer scales.
]]
local M = {}

-- ------------------------------------------------------------------------------------------------ font
-- Rows of 5 bits per glyph, most significant bit = leftmost column; 7 rows from the cell top, or from row `off`
-- for letters with descenders (the cell is 9 rows: 7 above the baseline, 2 below).
local F = {
  ["0"] = { 0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E }, ["1"] = { 0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E },
  ["2"] = { 0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F }, ["3"] = { 0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E },
  ["4"] = { 0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02 }, ["5"] = { 0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E },
  ["6"] = { 0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E }, ["7"] = { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 },
  ["8"] = { 0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E }, ["9"] = { 0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C },
  A = { 0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11 }, B = { 0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E },
  C = { 0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E }, D = { 0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C },
  E = { 0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F }, F = { 0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10 },
  G = { 0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F }, H = { 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11 },
  I = { 0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E }, J = { 0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C },
  K = { 0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11 }, L = { 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F },
  M = { 0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11 }, N = { 0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11 },
  O = { 0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E }, P = { 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10 },
  Q = { 0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D }, R = { 0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11 },
  S = { 0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E }, T = { 0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04 },
  U = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E }, V = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04 },
  W = { 0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A }, X = { 0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11 },
  Y = { 0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04 }, Z = { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F },
  a = { 0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F }, b = { 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E },
  c = { 0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E }, d = { 0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F },
  e = { 0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E }, f = { 0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08 },
  g = { off = 2, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E }, h = { 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11 },
  i = { 0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E }, j = { off = 1, 0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C },
  k = { 0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12 }, l = { 0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E },
  m = { 0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11 }, n = { 0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11 },
  o = { 0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E }, p = { off = 2, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10 },
  q = { off = 2, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01 }, r = { 0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10 },
  s = { 0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E }, t = { 0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06 },
  u = { 0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D }, v = { 0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04 },
  w = { 0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A }, x = { 0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11 },
  y = { off = 2, 0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E }, z = { 0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F },
  [" "] = { 0, 0, 0, 0, 0, 0, 0 }, ["."] = { 0, 0, 0, 0, 0, 0x0C, 0x0C },
  ["-"] = { 0, 0, 0, 0x1F, 0, 0, 0 }, ["+"] = { 0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0 },
  ["("] = { 0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02 }, [")"] = { 0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08 },
  [":"] = { 0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0 }, ["/"] = { 0, 0x01, 0x02, 0x04, 0x08, 0x10, 0 },
  ["["] = { 0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E }, ["]"] = { 0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E },
  ["_"] = { 0, 0, 0, 0, 0, 0, 0x1F }, [","] = { 0, 0, 0, 0, 0x0C, 0x04, 0x08 },
  ["%"] = { 0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03 }, ["="] = { 0, 0, 0x1F, 0, 0x1F, 0, 0 },
  ["#"] = { 0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A }, ["'"] = { 0x04, 0x04, 0x08, 0, 0, 0, 0 },
  ["?"] = { 0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04 },
}
M.font = F
local GW, GH, ADV = 5, 9, 6 -- glyph width, cell height (with descenders), advance (1 column gap)

function M.text_width(s, scale)
  scale = scale or 1
  return (#s * ADV - 1) * scale
end

-- ------------------------------------------------------------------------------------------------ canvas
local Canvas = {}
Canvas.__index = Canvas

M.colors = {
  white = { 255, 255, 255 }, black = { 0, 0, 0 }, grey = { 128, 128, 128 }, light = { 225, 225, 225 },
  blue = { 31, 119, 180 }, red = { 214, 39, 40 }, green = { 44, 160, 44 }, orange = { 255, 127, 14 },
  purple = { 148, 103, 189 },
}

function M.canvas(w, h, bg)
  bg = bg or M.colors.white
  local r, g, b = {}, {}, {}
  local n = w * h
  for i = 1, n do r[i], g[i], b[i] = bg[1], bg[2], bg[3] end
  return setmetatable({ w = w, h = h, r = r, g = g, b = b }, Canvas)
end

function Canvas:set(x, y, c)
  x, y = math.floor(x + 0.5), math.floor(y + 0.5)
  if x < 0 or y < 0 or x >= self.w or y >= self.h then return end
  local i = y * self.w + x + 1
  self.r[i], self.g[i], self.b[i] = c[1], c[2], c[3]
end

function Canvas:fill_rect(x, y, w, h, c)
  x, y = math.floor(x), math.floor(y)
  for yy = math.max(0, y), math.min(self.h - 1, y + h - 1) do
    local base = yy * self.w + 1
    for xx = math.max(0, x), math.min(self.w - 1, x + w - 1) do
      local i = base + xx
      self.r[i], self.g[i], self.b[i] = c[1], c[2], c[3]
    end
  end
end

--- Line of the given width (pixels), optionally dashed ({on, off} lengths in pixels along the line).
function Canvas:line(x0, y0, x1, y1, c, width, dash)
  width = width or 1
  local dx, dy = x1 - x0, y1 - y0
  local len = math.sqrt(dx * dx + dy * dy)
  local steps = math.max(1, math.ceil(len * 1.5))
  local half = (width - 1) / 2
  local period = dash and (dash[1] + dash[2]) or nil
  self._dash_pos = self._dash_pos or 0
  for s = 0, steps do
    local t = s / steps
    local on = true
    if period then on = ((self._dash_pos + t * len) % period) < dash[1] end
    if on then
      local x, y = x0 + dx * t, y0 + dy * t
      if width <= 1 then self:set(x, y, c)
      else
        for oy = -half, half do for ox = -half, half do self:set(x + ox, y + oy, c) end end
      end
    end
  end
  if period then self._dash_pos = (self._dash_pos + len) % period end
end

--- Polyline through points {{x, y}, ...}; the dash pattern continues across segments.
function Canvas:polyline(pts, c, width, dash)
  self._dash_pos = 0
  if #pts == 1 then self:fill_rect(pts[1][1] - 1, pts[1][2] - 1, 3, 3, c) end
  for i = 2, #pts do self:line(pts[i - 1][1], pts[i - 1][2], pts[i][1], pts[i][2], c, width, dash) end
end

local function glyph(ch) return F[ch] or F[ch:upper()] or F[ch:lower()] or F["?"] end

--- Text with its top-left corner at (x, y) (align "left"), or centred / right-aligned at x.
function Canvas:text(x, y, s, c, scale, align)
  s, scale = tostring(s), scale or 1
  local w = M.text_width(s, scale)
  if align == "center" then x = x - w / 2 elseif align == "right" then x = x - w end
  x, y = math.floor(x + 0.5), math.floor(y + 0.5)
  for k = 1, #s do
    local g = glyph(s:sub(k, k))
    local gx = x + (k - 1) * ADV * scale
    local off = g.off or 0
    for row = 1, #g do
      local bits = g[row]
      if bits ~= 0 then
        for col = 0, GW - 1 do
          if bits & (1 << (GW - 1 - col)) ~= 0 then
            self:fill_rect(gx + col * scale, y + (off + row - 1) * scale, scale, scale, c)
          end
        end
      end
    end
  end
end

--- Text rotated 90 degrees counter-clockwise (reads bottom to top), centred at (x, y).
function Canvas:text_v(x, y, s, c, scale)
  s, scale = tostring(s), scale or 1
  local w = M.text_width(s, scale)
  local x0, y0 = math.floor(x - GH * scale / 2 + 0.5), math.floor(y + w / 2 + 0.5)
  for k = 1, #s do
    local g = glyph(s:sub(k, k))
    local off = (k - 1) * ADV * scale
    local goff = g.off or 0
    for row = 1, #g do
      local bits = g[row]
      for col = 0, GW - 1 do
        if bits & (1 << (GW - 1 - col)) ~= 0 then
          -- glyph pixel (col, row) -> canvas (x0 + row, y0 - off - col)
          self:fill_rect(x0 + (goff + row - 1) * scale, y0 - off - (col + 1) * scale, scale, scale, c)
        end
      end
    end
  end
end

--- The canvas as a u8 tensor (3, 1, H, W).
function Canvas:tensor()
  local core = require "lunet.core"
  local parts = {}
  local n = self.w * self.h
  local CH = 4096
  for _, plane in ipairs({ self.r, self.g, self.b }) do
    for i = 1, n, CH do parts[#parts + 1] = string.char(table.unpack(plane, i, math.min(n, i + CH - 1))) end
  end
  return core.from_bytes(table.concat(parts), { 3, 1, self.h, self.w }, "u8")
end

function Canvas:write(path)
  require("lunet.io.image").write(path, self:tensor())
end

-- ------------------------------------------------------------------------------------------------ charts
--- "Nice" tick values (1, 2, 5 x 10^k steps) covering [lo, hi] with about n ticks.
function M.nice_ticks(lo, hi, n)
  n = n or 5
  if hi < lo then lo, hi = hi, lo end
  if hi == lo then
    local d = math.abs(lo) > 0 and math.abs(lo) * 0.1 or 1
    lo, hi = lo - d, hi + d
  end
  local raw = (hi - lo) / n
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step
  for _, m in ipairs({ 1, 2, 2.5, 5, 10 }) do
    step = m * mag
    if raw <= step then break end
  end
  local t0 = math.floor(lo / step + 1e-9) * step
  local t1 = math.ceil(hi / step - 1e-9) * step
  local ticks = {}
  local k = 0
  while true do
    local v = t0 + k * step
    if v > t1 + step * 1e-6 then break end
    if math.abs(v) < step * 1e-9 then v = 0 end
    ticks[#ticks + 1] = v
    k = k + 1
  end
  return ticks, t0, t1, step
end

local function fmt_tick(v, step)
  if v == 0 then return "0" end
  local a = math.abs(v)
  if a >= 1e5 or a < 1e-3 then
    local s = string.format("%.1e", v):gsub("%.0e", "e"):gsub("e%+?(%-?)0*(%d)", "e%1%2")
    return s
  end
  local dec = math.max(0, -math.floor(math.log(step, 10) + 1e-9))
  if step / 10 ^ math.floor(math.log(step, 10) + 1e-9) == 2.5 then dec = dec + 1 end
  return string.format("%." .. dec .. "f", v)
end
M.fmt_tick = fmt_tick

local function finite_range(series, axis)
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs(series) do
    if (s.axis or "left") == axis then
      for _, v in ipairs(s.y) do
        if v == v and v ~= math.huge and v ~= -math.huge then lo, hi = math.min(lo, v), math.max(hi, v) end
      end
    end
  end
  if lo > hi then return nil end
  return lo, hi
end

--- One chart in box {x, y, w, h} of canvas c.
function M.chart(c, box, spec)
  local C = M.colors
  local S = spec.scale or 2
  local fh = GH * S
  local ml, mr, mt, mb = 12 * S * 1 + 8 * ADV * S, spec.y2label and (8 * ADV * S + 12 * S) or 20, fh + 16, 2 * fh + 28
  local px, py = box.x + ml, box.y + mt
  local pw, ph = box.w - ml - mr, box.h - mt - mb
  -- x range
  local xlo, xhi = math.huge, -math.huge
  for _, s in ipairs(spec.series) do
    for i = 1, #s.y do
      local xv = s.x and s.x[i] or (i - 1)
      xlo, xhi = math.min(xlo, xv), math.max(xhi, xv)
    end
  end
  if xlo > xhi then xlo, xhi = 0, 1 end
  if xhi == xlo then xhi = xlo + 1 end
  local xticks, xt0, xt1, xstep = M.nice_ticks(xlo, xhi, spec.xticks or 8)
  if spec.integer_x and xstep < 1 then
    xticks, xt0, xt1, xstep = {}, math.floor(xlo), math.ceil(xhi), 1
    for v = xt0, xt1 do xticks[#xticks + 1] = v end
  end
  xlo, xhi = xt0, xt1
  local axes = {}
  for _, a in ipairs({ "left", "right" }) do
    local lo, hi = finite_range(spec.series, a)
    if lo then
      if spec.ylim and spec.ylim[a] then lo, hi = spec.ylim[a][1], spec.ylim[a][2] end
      local ticks, t0, t1, step = M.nice_ticks(lo, hi, spec.yticks or 5)
      axes[a] = { lo = t0, hi = t1, ticks = ticks, step = step }
    end
  end
  local function X(v) return px + (v - xlo) / (xhi - xlo) * pw end
  local function Y(v, a)
    local ax = axes[a or "left"]
    return py + ph - (v - ax.lo) / (ax.hi - ax.lo) * ph
  end
  -- grid and frame
  for _, v in ipairs(xticks) do c:line(X(v), py, X(v), py + ph, C.light, 1) end
  if axes.left then for _, v in ipairs(axes.left.ticks) do c:line(px, Y(v), px + pw, Y(v), C.light, 1) end end
  c:line(px, py, px + pw, py, C.black, 1); c:line(px, py + ph, px + pw, py + ph, C.black, 1)
  c:line(px, py, px, py + ph, C.black, 1); c:line(px + pw, py, px + pw, py + ph, C.black, 1)
  -- ticks and labels
  for _, v in ipairs(xticks) do
    c:line(X(v), py + ph, X(v), py + ph + 5, C.black, 1)
    c:text(X(v), py + ph + 9, fmt_tick(v, xstep), C.black, S, "center")
  end
  if axes.left then
    for _, v in ipairs(axes.left.ticks) do
      c:line(px - 5, Y(v), px, Y(v), C.black, 1)
      c:text(px - 9, Y(v) - 7 * S / 2, fmt_tick(v, axes.left.step), C.black, S, "right")
    end
  end
  if axes.right then
    for _, v in ipairs(axes.right.ticks) do
      c:line(px + pw, Y(v, "right"), px + pw + 5, Y(v, "right"), C.black, 1)
      c:text(px + pw + 9, Y(v, "right") - 7 * S / 2, fmt_tick(v, axes.right.step), C.black, S, "left")
    end
  end
  if spec.xlabel then c:text(px + pw / 2, py + ph + 14 + fh, spec.xlabel, C.black, S, "center") end
  if spec.ylabel then c:text_v(box.x + fh / 2 + 4, py + ph / 2, spec.ylabel, C.black, S) end
  if spec.y2label and axes.right then c:text_v(box.x + box.w - fh / 2 - 4, py + ph / 2, spec.y2label, C.black, S) end
  if spec.title then c:text(px + pw / 2, box.y + 4, spec.title, C.black, S, "center") end
  -- series (NaN breaks a line); their points also place the legend where it hides the least
  local drawn = {}
  for _, s in ipairs(spec.series) do
    local a = s.axis or "left"
    if axes[a] then
      local run = {}
      local function flush()
        if #run > 0 then c:polyline(run, s.color or C.blue, s.width or 2, s.dash) end
        run = {}
      end
      for i = 1, #s.y do
        local v = s.y[i]
        if v ~= v or v == math.huge or v == -math.huge then flush()
        else
          run[#run + 1] = { X(s.x and s.x[i] or (i - 1)), Y(v, a) }
          drawn[#drawn + 1] = run[#run]
        end
      end
      flush()
    end
  end
  -- legend (top right inside the plot)
  if spec.legend ~= false then
    local labels = {}
    for _, s in ipairs(spec.series) do if s.label then labels[#labels + 1] = s end end
    if #labels > 0 then
      local lw = 0
      for _, s in ipairs(labels) do lw = math.max(lw, M.text_width(s.label, S)) end
      local bw, bh = lw + 50, #labels * (fh + 8) + 8
      -- candidate corners (and mid-height right/left); the one covering the fewest data points wins
      local cands = {
        { px + pw - bw - 8, py + 8 }, { px + 8, py + 8 }, { px + pw - bw - 8, py + ph - bh - 8 },
        { px + 8, py + ph - bh - 8 }, { px + pw - bw - 8, py + (ph - bh) / 2 }, { px + 8, py + (ph - bh) / 2 },
      }
      local best, bestn = cands[1], math.huge
      for _, cd in ipairs(cands) do
        local n = 0
        for _, q in ipairs(drawn) do
          if q[1] >= cd[1] - 6 and q[1] <= cd[1] + bw + 6 and q[2] >= cd[2] - 6 and q[2] <= cd[2] + bh + 6 then n = n + 1 end
        end
        -- segments between points cross the box too: sample them
        for k = 2, #drawn do
          local a, b = drawn[k - 1], drawn[k]
          local mx, my = (a[1] + b[1]) / 2, (a[2] + b[2]) / 2
          if mx >= cd[1] and mx <= cd[1] + bw and my >= cd[2] and my <= cd[2] + bh then n = n + 1 end
        end
        if n < bestn then best, bestn = cd, n end
      end
      local bx, by = best[1], best[2]
      c:fill_rect(bx, by, bw, bh, C.white)
      c:line(bx, by, bx + bw, by, C.grey); c:line(bx, by + bh, bx + bw, by + bh, C.grey)
      c:line(bx, by, bx, by + bh, C.grey); c:line(bx + bw, by, bx + bw, by + bh, C.grey)
      for k, s in ipairs(labels) do
        local ly = by + 8 + (k - 1) * (fh + 8)
        c._dash_pos = 0
        c:line(bx + 8, ly + fh / 2, bx + 36, ly + fh / 2, s.color or C.blue, s.width or 2, s.dash)
        c:text(bx + 42, ly, s.label, C.black, S)
      end
    end
  end
  return { X = X, Y = Y, plot = { x = px, y = py, w = pw, h = ph } }
end

-- ------------------------------------------------------------------------------------------------ progress.png
--- nnU-Net's progress plot from the trainer's logging table (lists indexed by epoch, 1-based):
--- train_losses, val_losses, mean_fg_dice, ema_fg_dice, epoch_start_timestamps, epoch_end_timestamps, lrs.
function M.progress(log, path, opts)
  opts = opts or {}
  local W, PH = opts.width or 960, opts.panel_height or 330
  local c = M.canvas(W, 3 * PH)
  local n = #(log.train_losses or {})
  local ep = {}
  for i = 1, n do ep[i] = i - 1 end
  local function upto(t)
    local o = {}
    for i = 1, n do local v = t and t[i]; o[i] = (type(v) == "number") and v or 0 / 0 end
    return o
  end
  local C = M.colors
  M.chart(c, { x = 0, y = 0, w = W, h = PH }, {
    title = "Losses and pseudo Dice", xlabel = "epoch", ylabel = "loss", y2label = "pseudo dice", integer_x = true,
    series = {
      { x = ep, y = upto(log.train_losses), color = C.blue, label = "loss_tr", width = 3 },
      { x = ep, y = upto(log.val_losses), color = C.red, label = "loss_val", width = 3 },
      { x = ep, y = upto(log.mean_fg_dice), color = C.green, label = "pseudo dice", axis = "right", width = 2,
        dash = { 3, 5 } },
      { x = ep, y = upto(log.ema_fg_dice), color = C.green, label = "pseudo dice (mov. avg.)", axis = "right",
        width = 3 },
    },
  })
  local dur = {}
  for i = 1, n do
    local a, b = (log.epoch_start_timestamps or {})[i], (log.epoch_end_timestamps or {})[i]
    dur[i] = (a and b) and (b - a) or 0 / 0
  end
  M.chart(c, { x = 0, y = PH, w = W, h = PH }, {
    title = "Epoch duration", xlabel = "epoch", ylabel = "time [s]", integer_x = true,
    series = { { x = ep, y = dur, color = C.blue, label = "epoch duration", width = 3 } },
  })
  M.chart(c, { x = 0, y = 2 * PH, w = W, h = PH }, {
    title = "Learning rate", xlabel = "epoch", ylabel = "learning rate", integer_x = true,
    series = { { x = ep, y = upto(log.lrs), color = C.blue, label = "learning rate", width = 3 } },
  })
  if path then c:write(path) end
  return c
end

return M
