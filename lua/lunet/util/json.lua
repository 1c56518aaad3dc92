--[[ lunet.util.json: JSON files the way nnU-Net reads and writes them.

  local json = require "lunet.util.json"
  local obj = json.read(path)              -- error "<path>: <problem> at line L col C" on bad input
  json.write(path, obj)                    -- atomic (temp file + rename); indent 4, keys sorted
  json.write(path, obj, {sort_keys=false}) -- keep the key order read from the file (dataset.json style)
  local s = json.encode(obj, {indent=4, sort_keys=true})   -- indent=nil gives one line, Python's default separators
  local v = json.decode(str, name)        -- name (optional) is used in error messages

Output matches Python's `json.dump(obj, f, sort_keys=True, indent=4)` (nnU-Net's save_json) byte for byte:
  * Lua integers are written as integers (`3`), Lua floats as Python's repr (`1.0`, `0.1`, `1e-05`, `1e+16`),
    NaN as `NaN`, infinities as `Infinity` / `-Infinity` (Python writes these; decode accepts them).
    Decoding keeps the distinction: `3` decodes to a Lua integer, `3.0` to a Lua float.
  * Non-ASCII characters are written as \uXXXX escapes (ensure_ascii=True). No trailing newline.
Arrays versus objects (Lua tables cannot tell `[]` from `{}`):
  * decode marks every array with json.array_mt and every object with its own metatable recording key order,
    so read -> write round-trips exactly, empty arrays included;
  * json.array(t) / json.object(t) mark tables you build; an unmarked table is an array when its keys are exactly
    1..n (n >= 1), otherwise an object; an unmarked EMPTY table is written as `{}` (use json.array{} for `[]`).
  * json.null is the value for JSON null (a unique sentinel, also returned by decode).
  * json.keys(obj) gives an object's keys in file order (decoded objects) or sorted order (others).
Object keys: strings; integer keys are written as strings (Python does the same for int keys), sorted numerically
when all keys are numbers, as Python's sort_keys does.
]]
local M = {}

M.null = setmetatable({}, { __tostring = function() return "null" end, __name = "json.null" })
M.array_mt = { __jsontype = "array" }

--- Mark t (default: new table) as a JSON array.
function M.array(t) return setmetatable(t or {}, M.array_mt) end

--- Mark t (default: new table) as a JSON object; keys (optional) gives the key order for sort_keys=false.
function M.object(t, keys)
  return setmetatable(t or {}, { __jsontype = "object", __keys = keys })
end

function M.is_array(t)
  if type(t) ~= "table" then return false end
  local mt = getmetatable(t)
  if mt and mt.__jsontype then return mt.__jsontype == "array" end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  if n == 0 then return false end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

local function key_lt(a, b)
  local ta, tb = type(a), type(b)
  if ta == "number" and tb == "number" then return a < b end
  return tostring(a) < tostring(b)
end

--- Keys of an object: file order for decoded objects (with entries added later appended, sorted), else sorted.
function M.keys(t)
  local mt = getmetatable(t)
  local out, seen = {}, {}
  if mt and mt.__keys then
    for _, k in ipairs(mt.__keys) do
      if t[k] ~= nil and not seen[k] then out[#out + 1] = k; seen[k] = true end
    end
  end
  local extra = {}
  for k in pairs(t) do if not seen[k] then extra[#extra + 1] = k end end
  table.sort(extra, key_lt)
  for _, k in ipairs(extra) do out[#out + 1] = k end
  return out
end

-- ---------------------------------------------------------------------------------------------------------------
-- Encoding

-- Python's float repr: shortest digits that round-trip, fixed notation when -4 <= exponent < 16.
local function float_repr(x)
  if x ~= x then return "NaN" end
  if x == math.huge then return "Infinity" end
  if x == -math.huge then return "-Infinity" end
  if x == 0 then return (1 / x < 0) and "-0.0" or "0.0" end
  local s
  for p = 1, 17 do
    s = string.format("%." .. (p - 1) .. "e", x)
    if tonumber(s) == x then break end
  end
  local sign, d1, drest, e = s:match("^(%-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (d1 .. drest):gsub("0+$", "")
  if digits == "" then digits = "0" end
  local exp = tonumber(e)
  local out
  if exp >= 16 or exp < -4 then
    local mant = digits:sub(1, 1)
    if #digits > 1 then mant = mant .. "." .. digits:sub(2) end
    out = string.format("%se%s%02d", mant, exp < 0 and "-" or "+", math.abs(exp))
  elseif exp < 0 then
    out = "0." .. string.rep("0", -exp - 1) .. digits
  else
    local int_len = exp + 1
    if #digits <= int_len then
      out = digits .. string.rep("0", int_len - #digits) .. ".0"
    else
      out = digits:sub(1, int_len) .. "." .. digits:sub(int_len + 1)
    end
  end
  return sign .. out
end
M.float_repr = float_repr

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  local out = s:gsub('[%c"\\\128-\255]+', function(run)
    -- Control characters and quotes are escaped one by one; UTF-8 sequences become \uXXXX (ensure_ascii).
    local parts = {}
    -- utf8.len first: Lua 5.4.4's utf8.codes skips stray continuation bytes without an error, which
    -- silently dropped them ("\x90\x8d" encoded as "").
    local ok = utf8.len(run) ~= nil and pcall(function()
      for _, cp in utf8.codes(run) do
        local ch = utf8.char(cp)
        if escapes[ch] then parts[#parts + 1] = escapes[ch]
        elseif cp < 0x20 then parts[#parts + 1] = string.format("\\u%04x", cp)
        elseif cp < 0x80 then parts[#parts + 1] = ch
        elseif cp < 0x10000 then parts[#parts + 1] = string.format("\\u%04x", cp)
        else
          local v = cp - 0x10000
          parts[#parts + 1] = string.format("\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
        end
      end
    end)
    if not ok then error("json.encode: string is not valid UTF-8: " .. string.format("%q", s), 0) end
    return table.concat(parts)
  end)
  return '"' .. out .. '"'
end

local function encode_value(v, opts, indent_level, buf, stack)
  local tv = type(v)
  if v == M.null or v == nil then
    buf[#buf + 1] = "null"
  elseif tv == "boolean" then
    buf[#buf + 1] = v and "true" or "false"
  elseif tv == "number" then
    if math.type(v) == "integer" then buf[#buf + 1] = string.format("%d", v)
    else buf[#buf + 1] = float_repr(v) end
  elseif tv == "string" then
    buf[#buf + 1] = encode_string(v)
  elseif tv == "table" then
    if stack[v] then error("json.encode: circular reference", 0) end
    stack[v] = true
    local ind = opts.indent
    local nl, nl_in, item_sep
    if ind then
      nl = "\n" .. string.rep(" ", ind * indent_level)
      nl_in = "\n" .. string.rep(" ", ind * (indent_level + 1))
      item_sep = ","
    else
      nl, nl_in, item_sep = "", "", ", "
    end
    if M.is_array(v) then
      local n = #v
      if n == 0 then buf[#buf + 1] = "[]"
      else
        buf[#buf + 1] = "["
        for i = 1, n do
          if i > 1 then buf[#buf + 1] = item_sep end
          buf[#buf + 1] = nl_in
          encode_value(v[i], opts, indent_level + 1, buf, stack)
        end
        buf[#buf + 1] = nl
        buf[#buf + 1] = "]"
      end
    else
      local keys
      if opts.sort_keys then
        keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        local all_num = true
        for _, k in ipairs(keys) do if type(k) ~= "number" then all_num = false end end
        if all_num then table.sort(keys) else
          for i, k in ipairs(keys) do keys[i] = tostring(k) end
          table.sort(keys)
        end
      else
        keys = M.keys(v)
      end
      if #keys == 0 then buf[#buf + 1] = "{}"
      else
        buf[#buf + 1] = "{"
        for i, k in ipairs(keys) do
          local tk = type(k)
          if tk ~= "string" and tk ~= "number" then
            error("json.encode: object key of type " .. tk .. " is not allowed", 0)
          end
          local val = v[k]
          if val == nil and tk == "string" then val = v[tonumber(k)] end
          if i > 1 then buf[#buf + 1] = item_sep end
          buf[#buf + 1] = nl_in
          local ks = tk == "number" and (math.type(k) == "integer" and string.format("%d", k) or float_repr(k))
            or k
          buf[#buf + 1] = encode_string(ks)
          buf[#buf + 1] = ": "
          encode_value(val, opts, indent_level + 1, buf, stack)
        end
        buf[#buf + 1] = nl
        buf[#buf + 1] = "}"
      end
    end
    stack[v] = nil
  else
    error("json.encode: cannot encode a " .. tv, 0)
  end
end

--- Encode v. opts: indent (number or nil for one line; default nil), sort_keys (default true).
function M.encode(v, opts)
  opts = opts or {}
  local o = { indent = opts.indent, sort_keys = opts.sort_keys ~= false }
  local buf = {}
  encode_value(v, o, 0, buf, {})
  return table.concat(buf)
end

-- ---------------------------------------------------------------------------------------------------------------
-- Decoding (pure Lua, keeps key order and array-ness; fast enough for plans/dataset/fingerprint files)

local function position(str, i)
  local line, col = 1, 1
  for nlpos in str:sub(1, i - 1):gmatch("()\n") do line = line + 1; col = i - nlpos end
  if line == 1 then col = i end
  return line, col
end

local function decode_error(st, i, msg)
  local line, col = position(st.str, i)
  error(string.format("%s: %s at line %d column %d", st.name, msg, line, col), 0)
end

local function skip_ws(st, i)
  return st.str:find("[^ \t\r\n]", i) or (#st.str + 1)
end

local decode_value

local unescape = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function decode_string(st, i)
  -- st.str:sub(i, i) == '"'
  local str = st.str
  local j = i + 1
  local parts = {}
  while true do
    local k = str:find('["\\%c]', j)
    if not k then decode_error(st, i, "unterminated string") end
    local c = str:sub(k, k)
    parts[#parts + 1] = str:sub(j, k - 1)
    if c == '"' then return table.concat(parts), k + 1 end
    if c ~= "\\" then decode_error(st, k, "control character in string") end
    local e = str:sub(k + 1, k + 1)
    if unescape[e] then
      parts[#parts + 1] = unescape[e]; j = k + 2
    elseif e == "u" then
      local hex = str:match("^%x%x%x%x", k + 2)
      if not hex then decode_error(st, k, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        local lo = str:match("^\\u(%x%x%x%x)", j)
        local lv = lo and tonumber(lo, 16)
        if lv and lv >= 0xDC00 and lv <= 0xDFFF then
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lv - 0xDC00)
          j = j + 6
        end
      end
      parts[#parts + 1] = utf8.char(cp)
    else
      decode_error(st, k, "bad escape \\" .. e)
    end
  end
end

local literals = {
  { "true", true }, { "false", false }, { "null", M.null },
  { "NaN", 0 / 0 }, { "Infinity", math.huge }, { "-Infinity", -math.huge },
}

decode_value = function(st, i, depth)
  if depth > 1000 then decode_error(st, i, "nesting too deep") end
  i = skip_ws(st, i)
  local str = st.str
  local c = str:sub(i, i)
  if c == "{" then
    local obj, keys = {}, {}
    i = skip_ws(st, i + 1)
    if str:sub(i, i) == "}" then return M.object(obj, keys), i + 1 end
    while true do
      if str:sub(i, i) ~= '"' then decode_error(st, i, "expected a string key") end
      local k
      k, i = decode_string(st, i)
      i = skip_ws(st, i)
      if str:sub(i, i) ~= ":" then decode_error(st, i, "expected ':'") end
      local v
      v, i = decode_value(st, i + 1, depth + 1)
      if obj[k] == nil then keys[#keys + 1] = k end
      obj[k] = v
      i = skip_ws(st, i)
      local d = str:sub(i, i)
      if d == "}" then return M.object(obj, keys), i + 1 end
      if d ~= "," then decode_error(st, i, "expected ',' or '}'") end
      i = skip_ws(st, i + 1)
    end
  elseif c == "[" then
    local arr = {}
    i = skip_ws(st, i + 1)
    if str:sub(i, i) == "]" then return M.array(arr), i + 1 end
    while true do
      local v
      v, i = decode_value(st, i, depth + 1)
      arr[#arr + 1] = v
      i = skip_ws(st, i)
      local d = str:sub(i, i)
      if d == "]" then return M.array(arr), i + 1 end
      if d ~= "," then decode_error(st, i, "expected ',' or ']'") end
      i = i + 1
    end
  elseif c == '"' then
    return decode_string(st, i)
  elseif c == "" then
    decode_error(st, i, "unexpected end of input")
  else
    local num = str:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if num and num:match("^-?0%d") then decode_error(st, i, "leading zero in number") end
    if num and #num > 0 then
      local v
      if num:find("[.eE]") then v = tonumber(num)
      else v = math.tointeger(tonumber(num)) or tonumber(num .. ".0") end
      if v == nil then decode_error(st, i, "bad number '" .. num .. "'") end
      return v, i + #num
    end
    for _, lit in ipairs(literals) do
      if str:sub(i, i + #lit[1] - 1) == lit[1] then return lit[2], i + #lit[1] end
    end
    decode_error(st, i, "unexpected character '" .. c .. "'")
  end
end

--- Decode a JSON text; name (default "json") prefixes error messages.
function M.decode(str, name)
  if type(str) ~= "string" then error("json.decode: expected a string", 2) end
  local st = { str = str, name = name or "json" }
  local v, i = decode_value(st, 1, 0)
  i = skip_ws(st, i)
  if i <= #str then decode_error(st, i, "trailing data") end
  return v
end

--- Read and decode a JSON file; errors name the file.
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then error(tostring(err), 2) end
  local s = f:read("a")
  f:close()
  local ok, v = pcall(M.decode, s, path)
  if not ok then error(v, 2) end
  return v
end

--- Write obj as JSON to path atomically. opts: indent (default 4), sort_keys (default true).
function M.write(path, obj, opts)
  opts = opts or {}
  local indent = opts.indent
  if indent == nil then indent = 4 elseif indent == false then indent = nil end
  local s = M.encode(obj, { indent = indent, sort_keys = opts.sort_keys ~= false })
  require("lunet.util.fs").write_atomic(path, s) -- required here: decoding needs no lfs
end

return M
