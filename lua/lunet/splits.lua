--[[ lunet.splits: cross-validation splits exactly as nnU-Net v2 makes them.

  local splits = require "lunet.splits"
  local s = splits.generate(ids)                       -- 5 folds: {{train={...}, val={...}}, ...}
  local s, created = splits.load_or_create(dir, ids)  -- dir/splits_final.json, written when absent
  local train, val = splits.fold(s, ids, fold)         -- fold 0..4, "all", or >= #s (seeded 80:20)

generate = nnunetv2 generate_crossval_split(sorted ids, seed 12345, 5 folds) = sklearn KFold(shuffle=True,
random_state=12345): numpy RandomState(12345) (MT19937, init_genrand) shuffles 0..n-1 (Fisher-Yates from the
end with masked-rejection random_interval); fold sizes n//5 (+1 for the first n%5 folds); fold f's val = the f-th
consecutive chunk, both lists ordered by index. Identifiers are sorted by bytes (numpy's string sort order).
]]
local core = require "lunet.core"
local json = require "lunet.util.json"

local M = {}

M.SEED = 12345
M.N_SPLITS = 5
M.FILE = "splits_final.json"

--- Byte-wise "<" (numpy sorts unicode strings by code point; UTF-8 byte order is the same), never strcoll.
function M.byte_lt(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function sorted_ids(ids)
  local s = {}
  for i, v in ipairs(ids) do
    if type(v) ~= "string" then error(("splits: case identifier %d is a %s, expected a string"):format(i, type(v)), 3) end
    s[i] = v
  end
  table.sort(s, M.byte_lt)
  return s
end

--- KFold(n_splits, shuffle=True, random_state=seed) over ids (sorted first, as nnU-Net does).
function M.generate(ids, seed, n_splits)
  seed, n_splits = seed or M.SEED, n_splits or M.N_SPLITS
  local keys = sorted_ids(ids)
  local n = #keys
  if n < n_splits then
    error(("splits: cannot make %d folds from %d cases (nnU-Net's KFold needs at least one case per fold)")
      :format(n_splits, n), 2)
  end
  local perm = core.rng.mt_permutation(seed, n) -- 0-based, numpy RandomState(seed).permutation(n)
  local out, start = {}, 1
  for f = 1, n_splits do
    local size = n // n_splits + ((f - 1) < n % n_splits and 1 or 0)
    local in_val = {}
    for k = start, start + size - 1 do in_val[perm[k]] = true end
    start = start + size
    local train, val = json.array {}, json.array {}
    for i = 0, n - 1 do
      if in_val[i] then val[#val + 1] = keys[i + 1] else train[#train + 1] = keys[i + 1] end
    end
    out[f] = { train = train, val = val }
  end
  return json.array(out)
end

local function check_splits(s, path)
  if type(s) ~= "table" or #s == 0 then error(path .. ": expected a non-empty JSON list of folds", 3) end
  for f, fold in ipairs(s) do
    if type(fold) ~= "table" or type(fold.train) ~= "table" or type(fold.val) ~= "table" then
      error(("%s: fold %d must be an object with \"train\" and \"val\" lists"):format(path, f - 1), 3)
    end
  end
  return s
end

--- Reads dir/splits_final.json, or creates it (atomically) from ids. Returns splits, created.
function M.load_or_create(dir, ids)
  local path = dir .. "/" .. M.FILE
  local fh = io.open(path, "r")
  if fh then
    fh:close()
    return check_splits(json.read(path), path), false
  end
  local s = M.generate(ids)
  json.write(path, s)
  return s, true
end

--- Train and val identifiers of one fold, as nnUNetTrainer.do_split: "all" -> every case for both;
--- fold >= #splits -> seeded random 80:20 (RandomState(12345 + fold).choice(n, int(0.8 n), replace=False)).
--- Returns train, val, note (a message when the split is the 80:20 fallback or train and val overlap).
function M.fold(s, ids, fold)
  if fold == "all" then
    local k = sorted_ids(ids)
    local v = {}
    for i, x in ipairs(k) do v[i] = x end
    return k, v, nil
  end
  if math.type(fold) ~= "integer" or fold < 0 then error(("splits: fold must be an integer >= 0 or \"all\", got %s"):format(tostring(fold)), 2) end
  local train, val, note
  if fold < #s then
    train, val = s[fold + 1].train, s[fold + 1].val
  else
    local keys = sorted_ids(ids)
    local n = #keys
    local perm = core.rng.mt_permutation(M.SEED + fold, n)
    local ntr = math.floor(n * 0.8)
    local chosen = {}
    train, val = {}, {}
    for k = 1, ntr do train[k] = keys[perm[k] + 1]; chosen[perm[k]] = true end
    for i = 0, n - 1 do if not chosen[i] then val[#val + 1] = keys[i + 1] end end
    note = ("fold %d is not in the split file (%d splits): using a random (seeded) 80:20 split"):format(fold, #s)
  end
  local inval = {}
  for _, x in ipairs(val) do inval[x] = true end
  for _, x in ipairs(train) do
    if inval[x] then
      note = (note and note .. "; " or "") .. "some validation cases are also in the training set"
      break
    end
  end
  return train, val, note
end

return M
