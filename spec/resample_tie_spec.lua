-- Seg resampling where two labels' linear scores nearly tie, against nnunetv2's output
-- (scripts/fixtures/make_resample_tie_fixtures.py; a crop of a real 2 x 2 x 3 mm volume resampled to 1 mm).
-- scipy rounds each weight product before summing; a fused multiply-add made the scores 0.5 / 0.5 and the
-- nearest-neighbour tiebreak flipped the label on one plane of the whole volume.
local lunet = require "lunet"
local core = require "lunet.core"

describe("seg resampling of a near tie", function()
  it("equals nnunetv2 voxel for voxel", function()
    local F = "spec/fixtures/resample_tie/"
    local s = lunet.io.npy.read(F .. "seg_in.npy")
    local e = lunet.io.npy.read(F .. "seg_out.npy")
    assert.are.same({ 1, 62, 2, 2 }, { s.shape[1], s.shape[2], s.shape[3], s.shape[4] })
    local out = core.preprocess.resample(s, { 186, 4, 4 }, { 3, 2, 2 }, { 1, 1, 1 },
      { is_seg = true, order = 1, order_z = 0 }, 1)
    local got, exp = out:flat(), e:flat()
    assert.are.equal(#exp, #got)
    local diff = 0
    for i = 1, #exp do if got[i] ~= exp[i] then diff = diff + 1 end end
    assert.are.equal(0, diff)
    -- the voxel of the near tie (z 3, y 2, x 1): label 1 scores 0.5000000000000001, label 2 0.4999999999999999
    assert.are.equal(1, got[3 * 16 + 2 * 4 + 1 + 1])
    assert.are.equal(exp[3 * 16 + 2 * 4 + 1 + 1], got[3 * 16 + 2 * 4 + 1 + 1])
  end)
end)
