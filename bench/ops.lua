-- Convolution throughput of the layers a default nnU-Net runs: 3d_fullres at patch 64^3 (batch 2,
-- stages 32, 64, 128, 256, 320, 320) and 2d at 256x256 (batch 2, stages 32 .. 512), forward,
-- backward-data and backward-weight (+ bias), against CLBlast's SGEMM ceiling on the same device
-- and, when PyTorch is importable, PyTorch CPU on the same convolutions at the same thread count
-- (best of a run before and a run after lunet's).
--
--   lua5.4 bench/ops.lua [quick] [3d|2d] [amp] [notorch] [threads=N] [rounds=N]
-- quick: three representative layers per network only. threads: PyTorch's thread count (default:
-- the number of cores). amp: activations (x, y, dy, dx) as float16, weights float32, as mixed precision
-- stores them (Lunet: the implicit GEMM on GPUs); PyTorch then runs float16 tensors (autocast's casts).
-- PyTorch runs on CUDA when it has it (same card, cudnn.benchmark as nnU-Net sets it), else on the CPU.
-- Norm / loss timings live in bench/ops_misc.lua.
local core = require "lunet.core"
io.stdout:setvbuf("line") -- a bench cut off by the device script's timeout still shows what it printed
local conv, ops = core.conv, core.ops

local args = {}
for _, a in ipairs(arg or {}) do args[a:match("^(%w+)") or a] = a:match("=(.*)$") or true end
local function wall_clock()
  if core.now then return core.now() end
  local p = io.popen("date +%s.%N")
  local s = tonumber(p:read("a"))
  p:close()
  return s
end
local ncores = tonumber((io.popen("nproc"):read("a"))) or 1
local threads = tonumber(args.threads) or ncores
-- Both sides are timed alike: each pass alone, the fastest of at least MIN_REPS runs (and
-- MIN_SECONDS), and the faster of `rounds` alternating rounds (PyTorch, lunet, PyTorch, lunet ...):
-- on a shared or virtual machine, interference only ever slows a run down, and a mean of a few
-- runs measured minutes apart compared the machine's moods more than the two implementations.
local MIN_REPS, MIN_SECONDS, MAX_REPS = 3, 0.3, 12
local rounds = tonumber(args.rounds) or 2

-- ---- the layers ----
-- each entry: {name, transposed, N, Cin, Cout, spatial{...}, k{...}, stride{...}, count}
local function unet_layers(name, nsp, batch, patch, feats, in_ch, classes)
  local layers, seen = {}, {}
  local function add(tag, tr, cin, cout, sp, k, s)
    local key = table.concat({ tostring(tr), cin, cout, table.concat(sp, "x"), table.concat(k, ""), table.concat(s, "") }, "|")
    if seen[key] then seen[key].count = seen[key].count + 1; return end
    local l = { name = name .. " " .. tag, tr = tr, n = batch, cin = cin, cout = cout, sp = sp, k = k, s = s, count = 1 }
    seen[key] = l
    layers[#layers + 1] = l
  end
  local function rep(v) local t = {} for i = 1, nsp do t[i] = v end return t end
  local res, cin = { patch }, in_ch
  for st = 1, #feats do
    local sp = rep(res[st])
    local stride = st == 1 and rep(1) or rep(2)
    local insp = st == 1 and sp or rep(res[st - 1])
    add(("enc%d.conv1"):format(st - 1), false, cin, feats[st], insp, rep(3), stride)
    add(("enc%d.conv2"):format(st - 1), false, feats[st], feats[st], sp, rep(3), rep(1))
    cin = feats[st]
    res[st + 1] = res[st] // 2
  end
  for st = #feats - 1, 1, -1 do
    local sp = rep(res[st])
    add(("dec%d.up"):format(st - 1), true, feats[st + 1], feats[st], rep(res[st + 1]), rep(2), rep(2))
    add(("dec%d.conv1"):format(st - 1), false, 2 * feats[st], feats[st], sp, rep(3), rep(1))
    add(("dec%d.conv2"):format(st - 1), false, feats[st], feats[st], sp, rep(3), rep(1))
    add(("dec%d.seg"):format(st - 1), false, feats[st], classes, sp, rep(1), rep(1))
  end
  return layers
end

local nets = {}
if not args["2d"] then
  nets[#nets + 1] = { name = "3d_fullres 64^3", layers = unet_layers("3d", 3, 2, 64, { 32, 64, 128, 256, 320, 320 }, 1, 3) }
end
if not args["3d"] then
  nets[#nets + 1] = { name = "2d 256^2", layers = unet_layers("2d", 2, 2, 256, { 32, 64, 128, 256, 512, 512, 512 }, 1, 3) }
end
if args.quick then
  for _, net in ipairs(nets) do
    local pick = {}
    for _, l in ipairs(net.layers) do
      if l.name:match("enc0.conv2") or l.name:match("enc2.conv2") or l.name:match("dec1.up") then pick[#pick + 1] = l end
    end
    net.layers = pick
  end
end

local function shapes(l)
  local xs = { l.n, l.cin, table.unpack(l.sp) }
  local ws = l.tr and { l.cin, l.cout, table.unpack(l.k) } or { l.cout, l.cin, table.unpack(l.k) }
  local opts = l.tr and { stride = l.s } or { k = l.k, stride = l.s }
  local ys = l.tr and conv.T_out_shape(xs, l.cout, opts) or conv.out_shape(xs, l.cout, opts)
  return xs, ws, ys, opts
end

local ACT = args.amp and "f16" or "f32"

local function dtensor(shape, v, dtype)
  local t = core.zeros(shape, dtype or "f32", true)
  ops.fill(t, v)
  return t
end

-- ---- lunet timings ----
local function time_lunet(l)
  local xs, ws, ys, opts = shapes(l)
  local x, w, b, y = dtensor(xs, 0.01, ACT), dtensor(ws, 0.01), dtensor({ l.cout }, 0.1), dtensor(ys, 0, ACT)
  local dy, dx, dw, db = dtensor(ys, 0.01, ACT), dtensor(xs, 0, ACT), dtensor(ws, 0), dtensor({ l.cout }, 0)
  local F = l.tr and { conv.T_fwd, conv.T_bwd_data, conv.T_bwd_weight } or { conv.fwd, conv.bwd_data, conv.bwd_weight }
  local out = {}
  local runs = {
    function() F[1](x, w, b, y, opts) end,
    function() F[2](dy, w, dx, opts) end,
    function() F[3](x, dy, dw, db, opts) end,
  }
  for i, run in ipairs(runs) do
    run() -- warm: kernel builds, buffer pool
    core.finish()
    local reps, t0, best = 0, wall_clock(), math.huge
    repeat
      local t1 = wall_clock()
      run()
      core.finish()
      best = math.min(best, wall_clock() - t1)
      reps = reps + 1
    until (reps >= MIN_REPS and wall_clock() - t0 > MIN_SECONDS) or reps >= MAX_REPS
    out[i] = best
  end
  for _, t in ipairs({ x, w, b, y, dy, dx, dw, db }) do t:free() end
  return out
end

local function sgemm_ceiling()
  local n = 1024
  local a, b, c = dtensor({ n, n }, 0.01), dtensor({ n, n }, 0.01), dtensor({ n, n }, 0)
  ops.gemm(c, a, b)
  core.finish()
  local reps, t0 = 0, wall_clock()
  repeat
    ops.gemm(c, a, b)
    core.finish()
    reps = reps + 1
  until wall_clock() - t0 > 1.0
  return 2 * n ^ 3 / ((wall_clock() - t0) / reps) / 1e9
end

-- ---- PyTorch timings (subprocess) ----
local torch_script = [==[
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
layers = json.load(sys.stdin)
aten = torch.ops.aten
out = []
MIN_REPS, MIN_SECONDS, MAX_REPS = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
amp = sys.argv[5] == "amp"
cuda = torch.cuda.is_available()
dev = "cuda" if cuda else "cpu"
torch.backends.cudnn.benchmark = True
dt = torch.float16 if amp else torch.float32
sync = torch.cuda.synchronize if cuda else (lambda: None)
def bench(f):
    f(); sync()
    t0 = time.perf_counter(); reps = 0; best = float("inf")
    while True:
        t1 = time.perf_counter(); f(); sync(); best = min(best, time.perf_counter() - t1); reps += 1
        if (reps >= MIN_REPS and time.perf_counter() - t0 > MIN_SECONDS) or reps >= MAX_REPS: break
    return best
with torch.no_grad():
    for l in layers:
        nsp = len(l["sp"])
        tr = l["tr"]
        x = torch.full([l["n"], l["cin"]] + l["sp"], 0.01, device=dev, dtype=dt)
        w = torch.full(([l["cin"], l["cout"]] if tr else [l["cout"], l["cin"]]) + l["k"], 0.01, device=dev, dtype=dt)
        b = torch.full([l["cout"]], 0.1, device=dev, dtype=dt)
        pad = [0] * nsp if tr else [(k - 1) // 2 for k in l["k"]]
        y = aten.convolution(x, w, b, l["s"], pad, [1] * nsp, tr, [0] * nsp, 1)
        dy = torch.full(y.shape, 0.01, device=dev, dtype=dt)
        f = lambda: aten.convolution(x, w, b, l["s"], pad, [1] * nsp, tr, [0] * nsp, 1)
        bd = lambda: aten.convolution_backward(dy, x, w, [l["cout"]], l["s"], pad, [1] * nsp, tr, [0] * nsp, 1, [True, False, False])
        bw = lambda: aten.convolution_backward(dy, x, w, [l["cout"]], l["s"], pad, [1] * nsp, tr, [0] * nsp, 1, [False, True, True])
        out.append([bench(f), bench(bd), bench(bw)])
where = torch.cuda.get_device_name() if cuda else "CPU with %d threads" % torch.get_num_threads()
json.dump({"version": torch.__version__, "where": where + (" float16" if amp else ""), "times": out}, sys.stdout)
]==]

local function time_torch(layers)
  if args.notorch then return nil end
  if not os.execute("python3 -c 'import torch' >/dev/null 2>&1") then return nil end
  local ok, cjson = pcall(require, "cjson")
  if not ok then return nil end
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(torch_script)
  f:close()
  local input = os.tmpname()
  local plain = {}
  for i, l in ipairs(layers) do plain[i] = { n = l.n, cin = l.cin, cout = l.cout, sp = l.sp, k = l.k, s = l.s, tr = l.tr } end
  f = assert(io.open(input, "w"))
  f:write(cjson.encode(plain))
  f:close()
  local p = io.popen(("python3 %s %d %d %g %d %s < %s"):format(script, threads, MIN_REPS, MIN_SECONDS, MAX_REPS,
    args.amp and "amp" or "fp32", input))
  local txt = p:read("a")
  p:close()
  os.remove(script)
  os.remove(input)
  local okj, res = pcall(cjson.decode, txt)
  return okj and res or nil
end

-- ---- report ----
local dev = core.devices()[core.default_device() + 1]
local ceiling = sgemm_ceiling()
io.write(("device: %s (%s); CLBlast SGEMM 1024^3: %.1f GFLOP/s\n"):format(dev.name, dev.platform, ceiling))

local totals = {}
for _, net in ipairs(nets) do
  -- alternating rounds, the faster time per layer and pass on each side
  local tt, lt = nil, {}
  for _ = 1, rounds do
    local t = time_torch(net.layers)
    if t and not tt then
      tt = t
    elseif t then
      for i, row in ipairs(tt.times) do
        for j = 1, 3 do row[j] = math.min(row[j], t.times[i][j]) end
      end
    end
    for i, l in ipairs(net.layers) do
      local r = time_lunet(l)
      if lt[i] then
        for j = 1, 3 do lt[i][j] = math.min(lt[i][j], r[j]) end
      else
        lt[i] = r
      end
    end
  end
  io.write(("\n== %s (batch 2, %s activations)%s\n"):format(net.name, ACT,
    tt and (", PyTorch %s on %s"):format(tt.version, tt.where) or ", no PyTorch"))
  io.write(("%-16s %4s %-14s %-12s | %21s | %21s | %21s\n"):format("layer", "x", "in", "cin>cout",
    "fwd GF/s sgemm torch", "bwd-data GF/s  torch", "bwd-wt GF/s    torch"))
  local sum = { l = { 0, 0, 0 }, t = { 0, 0, 0 }, f = 0 }
  for i, l in ipairs(net.layers) do
    local xs = { l.n, l.cin, table.unpack(l.sp) }
    local fl = conv.flops(xs, l.cout, l.tr and { stride = l.s } or { k = l.k, stride = l.s }, l.tr)
    local cells = {}
    for j = 1, 3 do
      local g = fl / lt[i][j] / 1e9
      local tr = tt and tt.times[i][j] / lt[i][j]
      cells[j] = ("%6.1f %4.2f %8s"):format(g, g / ceiling, tr and ("%.2fx"):format(tr) or "-")
      sum.l[j] = sum.l[j] + lt[i][j] * l.count
      if tt then sum.t[j] = sum.t[j] + tt.times[i][j] * l.count end
    end
    sum.f = sum.f + fl * l.count
    io.write(("%-16s %4d %-14s %-12s | %s | %s | %s\n"):format(l.name, l.count, table.concat(l.sp, "x"),
      l.cin .. ">" .. l.cout, cells[1], cells[2], cells[3]))
  end
  local cells = {}
  for j = 1, 3 do
    cells[j] = ("%6.1f %4.2f %8s"):format(sum.f / sum.l[j] / 1e9, sum.f / sum.l[j] / 1e9 / ceiling,
      tt and ("%.2fx"):format(sum.t[j] / sum.l[j]) or "-")
  end
  io.write(("%-16s %4s %-14s %-12s | %s | %s | %s\n"):format("whole net", "", "", "", cells[1], cells[2], cells[3]))
  io.write(("time per step (s): lunet fwd %.2f bwd-data %.2f bwd-wt %.2f%s\n"):format(sum.l[1], sum.l[2], sum.l[3],
    tt and ("; torch fwd %.2f bwd-data %.2f bwd-wt %.2f"):format(sum.t[1], sum.t[2], sum.t[3]) or ""))
  totals[#totals + 1] = sum
end
io.write("\nratios: 'sgemm' = conv GFLOP/s / SGEMM 1024^3 GFLOP/s; 'torch' = PyTorch time / lunet time (>1: lunet faster)\n")
