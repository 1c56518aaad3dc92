// Implicit-GEMM convolutions for GPUs (issue #25): every pass of a convolution and of a transposed
// convolution (kernel == stride) is one GEMM C[M][N] = sum_k A[M][K] B[K][N] whose operands are gathered
// from the tensors as the tiles are loaded, so no im2col buffer exists. A work-group computes a BM x BN
// tile of C, staging BK-deep slices of A and B through local memory, double-buffered (the next slice is
// loaded into registers while the current one is multiplied).
//
// PASS (build option) picks the mapping; x-side tensors are x / dx, y-side ones y / dy, as in the forward:
//   0 conv forward        M = Cout, N = batch * output positions, K = Cin * taps
//   1 conv backward data  M = Cin,  N = batch * input positions,  K = Cout * taps (taps whose stride does not
//                         divide are zeros of B)
//   2 conv weight grad    M = Cout, N = Cin * taps,               K = batch * output positions (split-K)
//   3 convT forward       M = Cout * taps, N = batch * input positions, K = Cin
//   4 convT backward data M = Cin,  N = batch * input positions,  K = Cout * taps
//   5 convT weight grad   M = Cin,  N = Cout * taps,              K = batch * input positions (split-K)
// For convT "input" is the small side (x, Z Y X) and taps = stride, pad 0.
//
// Storage: XH / YH = 1 keep the x-side / y-side activations as float16 (vload_half / vstore_half_rte, no
// cl_khr_fp16 needed); weights, bias and weight gradients are float32 (master weights); accumulation is
// float32 throughout.
//
// MMA picks the micro-kernel:
//   0  float FMA, 16 x 16 work-items each computing TM x TN (any device)
//   1  mma m16n8k16, f16 inputs, f32 accumulation, fragments exchanged through local memory (emulation:
//      runs on any OpenCL device, so CI checks the fragment indexing and the f16 rounding on PoCL)
//   2  mma m16n8k8, tf32 inputs (rounded to nearest, ties away, as cvt.rna.tf32.f32), emulated likewise
//   3  / 4  the same two through inline PTX mma.sync (NVIDIA, sm_80+, chosen after the device probe)
// LDSM = 1 (f16 only): the fragments come out of local memory by ldmatrix.x4 (one instruction for a 16 x 16
// A fragment or two 16 x 8 B fragments, instead of 32-bit loads per register); emulated under MMA 1.
// The MMA kernels run WARPS_M x WARPS_N warps of 32 work-items, each warp an (FM 16) x (FN 8) part of the
// tile: FM x FN fragments of 16 x 8 (the default tile, 64 x 64: 2 x 2 warps of 2 x 4 fragments). The fragment layouts are PTX's (ISA "Matrix Fragments for mma.m16n8k16/k8"): lane
// = 4 g + t; A (row-major 16 x K): reg r holds rows g + 8 (r & 1), k columns; B (col-major K x 8): column g;
// C: rows g and g + 8, columns 2t and 2t + 1.
// XCAT = 1 (passes 0-2): the x side is the channel concatenation of two tensors, x (channels [0, c1)) and
// x2 (the rest), read in place (dx / dx2 written so), as the decoder's first convolution reads the upsampled
// map and the skip without the concatenated copy.
// Geometry: with -DGEOM_FIXED the kernel size KZ KY KX, stride SZ SY SX and padding PZ PY PX are build
// options (constant-folded index arithmetic: GPUs, whose drivers compile in milliseconds and cache); without
// it they are kernel arguments, so that one program serves every geometry (PoCL, where each compile costs
// about a second).
#ifdef GEOM_FIXED
#include "common/conv_geometry.cl"
#else
#define KZ g.kz
#define KY g.ky
#define KX g.kx
#define SZ g.sz
#define SY g.sy
#define SX g.sx
#define PZ g.pz
#define PY g.py
#define PX g.px
#define KV (KZ * KY * KX)
#endif

#ifndef PASS
#define PASS 0
#endif
#ifndef XH
#define XH 0
#endif
#ifndef YH
#define YH 0
#endif
#ifndef MMA
#define MMA 0
#endif
#ifndef XCAT
#define XCAT 0
#endif
#ifndef LDSM
#define LDSM 0
#endif
#if LDSM && !(MMA == 1 || MMA == 3)
#error "igemm: ldmatrix (LDSM) loads f16 fragments only"
#endif
#if XCAT
#define CX (g.c1) // channels of x (the first part)
#else
#define CX (g.Cin)
#endif

#if XH
#define XT half
#define LDX(p, i) vload_half((i), (p))
#define STX(v, p, i) vstore_half_rte((v), (i), (p))
#else
#define XT float
#define LDX(p, i) ((p)[i])
#define STX(v, p, i) ((p)[i] = (v))
#endif
#if YH
#define YT half
#define LDY(p, i) vload_half((i), (p))
#define STY(v, p, i) vstore_half_rte((v), (i), (p))
#else
#define YT float
#define LDY(p, i) ((p)[i])
#define STY(v, p, i) ((p)[i] = (v))
#endif

// Loops over register arrays unroll, so that accumulators and fragments stay in registers; the emulated
// fragments keep their loops (PoCL's compile time grows with the unrolled code: 8 s per program)
#if MMA == 1 || MMA == 2
#define UNROLL _Pragma("unroll 1")
#else
#define UNROLL _Pragma("unroll")
#endif

// The tile (build options, chosen per GEMM shape by ops/conv/igemm.c, tunable conv.igemm_tile): BM x BN
// outputs per work-group, BK-deep slices. FMA: 16 x 16 work-items of TM x TN outputs. MMA: WARPS_M x
// WARPS_N warps, each FM x FN fragments of 16 x 8.
#ifndef BK
#define BK 16
#endif
#if MMA == 0
#ifndef BM
#define BM 64
#endif
#ifndef BN
#define BN 64
#endif
#define WG 256
#define TM (BM / 16)
#define TN (BN / 16)
#else
#ifndef WARPS_M
#define WARPS_M 2
#endif
#ifndef WARPS_N
#define WARPS_N 2
#endif
#ifndef FM
#define FM 2
#endif
#ifndef FN
#define FN 4
#endif
#define WG (32 * WARPS_M * WARPS_N)
#define BM (WARPS_M * FM * 16)
#define BN (WARPS_N * FN * 8)
#endif

#define TRANSPOSED (PASS >= 3)
#define WGRAD (PASS == 2 || PASS == 5)

// The tensors' geometry: x side (Z, Y, X), y side (OZ, OY, OX).
typedef struct {
  int Nb, Cin, Cout, Z, Y, X, OZ, OY, OX, c1;
  int kz, ky, kx, sz, sy, sx, pz, py, px; // unused under GEOM_FIXED
} geo;

// Tap t -> (tz, ty, tx).
#define TAP_SPLIT(t, tz, ty, tx)     \
  const int tz = (t) / (KY * KX);    \
  const int ty = ((t) / KX) % KY;    \
  const int tx = (t) % KX

// ---- A(m, k) ----
inline float load_a(const geo g, const int m, const int k, __global const XT *x, __global const YT *dy,
                    __global const float *w) {
#if PASS == 0 // w (Cout, Cin * KV): row-major as stored
  return w[(size_t)m * (g.Cin * KV) + k];
#elif PASS == 1 // w[co, ci, t] with m = ci, k = (co, t)
  const int co = k / KV, t = k - co * KV;
  return w[((size_t)co * g.Cin + m) * KV + t];
#elif PASS == 2 // dy[b, co, o] with m = co, k = (b, o)
  const int OS = g.OZ * g.OY * g.OX;
  const int b = k / OS, o = k - b * OS;
  return LDY(dy, ((size_t)b * g.Cout + m) * OS + o);
#elif PASS == 3 // w[ci, co, t] with m = (co, t), k = ci
  return w[(size_t)k * (g.Cout * KV) + m];
#elif PASS == 4 // w[ci, co * KV + t] with m = ci, k = (co, t): row-major as stored
  return w[(size_t)m * (g.Cout * KV) + k];
#else // PASS 5: x[b, ci, i] with m = ci, k = (b, i)
  const int S = g.Z * g.Y * g.X;
  const int b = k / S, i = k - b * S;
  return LDX(x, ((size_t)b * g.Cin + m) * S + i);
#endif
}

// A transposed conv's (kernel == stride, pad 0) tap t of small-side position i: its offset in a plane of the
// large side (OZ, OY, OX).
inline size_t up_offset(const geo g, const int i, const int t) {
  const int iz = i / (g.Y * g.X), iy = (i / g.X) % g.Y, ix = i % g.X;
  TAP_SPLIT(t, tz, ty, tx);
  return ((size_t)(iz * SZ + tz) * g.OY + (iy * SY + ty)) * g.OX + (ix * SX + tx);
}

// ---- B(k, n) ----
// The weight gradients' B: n = (channel, tap) of the weights, k = (b, position); each element decomposed.
// (The other passes' B goes through column() / load_b_col below.)
inline float load_b(const geo g, const int k, const int n, __global const XT *x, __global const XT *x2,
                    __global const YT *dy) {
#if PASS == 2
  // x[b, ci, o * s - p + t]; k = (b, o), n = (ci, t)
  const int OS = g.OZ * g.OY * g.OX;
  const int b = k / OS, o = k - b * OS, ci = n / KV, t = n - ci * KV;
  const int oz = o / (g.OY * g.OX), oy = (o / g.OX) % g.OY, ox = o % g.OX;
  TAP_SPLIT(t, tz, ty, tx);
  const int iz = oz * SZ - PZ + tz, iy = oy * SY - PY + ty, ix = ox * SX - PX + tx;
  if (iz < 0 || iz >= g.Z || iy < 0 || iy >= g.Y || ix < 0 || ix >= g.X) return 0.0f;
#if XCAT
  if (ci >= g.c1) return LDX(x2, (((size_t)b * (g.Cin - g.c1) + ci - g.c1) * g.Z + iz) * g.Y * g.X + (size_t)iy * g.X + ix);
#endif
  return LDX(x, (((size_t)b * CX + ci) * g.Z + iz) * g.Y * g.X + (size_t)iy * g.X + ix);
#elif PASS == 5
  // dy[b, co, i * s + t]; k = (b, i), n = (co, t)
  const int S = g.Z * g.Y * g.X;
  const int b = k / S, i = k - b * S, co = n / KV, t = n - co * KV;
  return LDY(dy, ((size_t)b * g.Cout + co) * g.OZ * g.OY * g.OX + up_offset(g, i, t));
#else
  return 0.0f;
#endif
}

// B's column n is the same for every element a work-item loads (WG is a multiple of BN): for the passes
// whose n is a position (0, 1, 3, 4) its decomposition is done once per work-item here, so that a load
// only splits k (by the taps, constants on GPUs) and adds.
#if (WG % BN) != 0
#error "igemm: the work-group size must be a multiple of BN"
#endif
#define COLUMN_FIXED (PASS == 0 || PASS == 1 || PASS == 3 || PASS == 4)
typedef struct {
  int ok;      // n < N
  size_t base;  // offset of the column's batch item (and, PASS 3, of its position)
  size_t base2; // XCAT: the batch item's offset in x2
  int z, y, x; // PASS 0: o s - p; PASS 1: i + p; PASS 4: i s
} bcol;

inline bcol column(const geo g, const int n, const int N) {
  bcol c;
  c.ok = n < N;
  c.z = c.y = c.x = 0;
  c.base2 = 0;
  const int nn = c.ok ? n : 0;
#if PASS == 0
  const int OS = g.OZ * g.OY * g.OX, b = nn / OS, o = nn - b * OS;
  c.base = (size_t)b * CX * g.Z * g.Y * g.X;
  c.base2 = (size_t)b * (g.Cin - CX) * g.Z * g.Y * g.X;
  c.z = o / (g.OY * g.OX) * SZ - PZ; c.y = (o / g.OX) % g.OY * SY - PY; c.x = o % g.OX * SX - PX;
#elif PASS == 1
  const int S = g.Z * g.Y * g.X, b = nn / S, i = nn - b * S;
  c.base = (size_t)b * g.Cout * g.OZ * g.OY * g.OX;
  c.z = i / (g.Y * g.X) + PZ; c.y = (i / g.X) % g.Y + PY; c.x = i % g.X + PX;
#elif PASS == 3
  const int S = g.Z * g.Y * g.X, b = nn / S, i = nn - b * S;
  c.base = (size_t)b * g.Cin * S + i;
#elif PASS == 4
  const int S = g.Z * g.Y * g.X, b = nn / S, i = nn - b * S;
  c.base = (size_t)b * g.Cout * g.OZ * g.OY * g.OX;
  c.z = i / (g.Y * g.X) * SZ; c.y = (i / g.X) % g.Y * SY; c.x = i % g.X * SX;
#else
  c.base = 0;
#endif
  return c;
}

// B(k, n) of a column prepared by column(): the same values as load_b.
inline float load_b_col(const geo g, const bcol c, const int k, __global const XT *x, __global const XT *x2,
                        __global const YT *dy) {
#if PASS == 0
  const int ci = k / KV, t = k - ci * KV;
  TAP_SPLIT(t, tz, ty, tx);
  const int iz = c.z + tz, iy = c.y + ty, ix = c.x + tx;
  if (iz < 0 || iz >= g.Z || iy < 0 || iy >= g.Y || ix < 0 || ix >= g.X) return 0.0f;
#if XCAT
  if (ci >= g.c1) return LDX(x2, c.base2 + (((size_t)(ci - g.c1) * g.Z + iz) * g.Y + iy) * g.X + ix);
#endif
  return LDX(x, c.base + (((size_t)ci * g.Z + iz) * g.Y + iy) * g.X + ix);
#elif PASS == 1
  const int co = k / KV, t = k - co * KV;
  TAP_SPLIT(t, tz, ty, tx);
  const int qz = c.z - tz, qy = c.y - ty, qx = c.x - tx;
  if (qz < 0 || qy < 0 || qx < 0 || qz % SZ || qy % SY || qx % SX) return 0.0f;
  const int oz = qz / SZ, oy = qy / SY, ox = qx / SX;
  if (oz >= g.OZ || oy >= g.OY || ox >= g.OX) return 0.0f;
  return LDY(dy, c.base + (((size_t)co * g.OZ + oz) * g.OY + oy) * g.OX + ox);
#elif PASS == 3
  return LDX(x, c.base + (size_t)k * g.Z * g.Y * g.X);
#elif PASS == 4
  const int co = k / KV, t = k - co * KV;
  TAP_SPLIT(t, tz, ty, tx);
  return LDY(dy, c.base + (((size_t)co * g.OZ + c.z + tz) * g.OY + c.y + ty) * g.OX + c.x + tx);
#else
  return 0.0f;
#endif
}

// ---- C(m, n) ----
inline void store_c(const geo g, const int m, const int n, const float v, __global const float *bias,
                    const int has_bias, __global XT *dx, __global XT *dx2, __global YT *y, __global float *part,
                    const int split, const int M, const int N, const int accumulate) {
#if PASS == 0 // y[b, co, o] (+ bias)
  const int OS = g.OZ * g.OY * g.OX, b = n / OS, o = n - b * OS;
  STY(v + (has_bias ? bias[m] : 0.0f), y, ((size_t)b * g.Cout + m) * OS + o);
#elif PASS == 1 || PASS == 4 // dx[b, ci, i]
  const int S = g.Z * g.Y * g.X, b = n / S, i = n - b * S;
#if XCAT
  if (m >= g.c1) {
    STX(v, dx2, ((size_t)b * (g.Cin - g.c1) + m - g.c1) * S + i);
    return;
  }
#endif
  STX(v, dx, ((size_t)b * CX + m) * S + i);
#elif PASS == 3 // y[b, co, i * s + t] (+ bias)
  const int S = g.Z * g.Y * g.X, b = n / S, i = n - b * S, co = m / KV, t = m - co * KV;
  STY(v + (has_bias ? bias[co] : 0.0f), y, ((size_t)b * g.Cout + co) * g.OZ * g.OY * g.OX + up_offset(g, i, t));
#else // weight gradients: part[split][m][n], which is the weights' own layout for split 0
  __global float *p = part + ((size_t)split * M + m) * N + n;
  *p = accumulate ? *p + v : v;
#endif
}

#define KERNEL_ARGS                                                                                          \
  __global const XT *x, __global const YT *dy, __global const float *w, __global const float *bias,          \
      __global XT *dx, __global YT *y, __global float *part, __global const XT *x2, __global XT *dx2,          \
      const int c1, const int has_bias, const int accumulate,                                                  \
      const int Nb, const int Cin, const int Cout, const int Z, const int Y, const int X, const int OZ,        \
      const int OY, const int OX, const int M, const int N, const int K, const int kchunk, const int kz,          \
      const int ky, const int kx, const int sz, const int sy, const int sx, const int pz, const int py,         \
      const int px

#define GEO_INIT                                                                                             \
  geo g;                                                                                                     \
  g.Nb = Nb; g.Cin = Cin; g.Cout = Cout; g.Z = Z; g.Y = Y; g.X = X; g.OZ = OZ; g.OY = OY; g.OX = OX;         \
  g.c1 = c1;                                                                                                 \
  g.kz = kz; g.ky = ky; g.kx = kx; g.sz = sz; g.sy = sy; g.sx = sx; g.pz = pz; g.py = py; g.px = px;         \
  const int m0 = get_group_id(1) * BM, n0 = get_group_id(0) * BN, split = get_group_id(2);                     \
  const int kbeg = split * kchunk, kend = min(K, kbeg + kchunk);                                               \
  const int tid = get_local_id(0)

// The next slice's operands into registers ra (A_PER of A, k fastest across work-items: the stored row of w,
// or positions of dy / x) and rb (B_PER of B, n fastest), zeros outside M, N and this split's K. Element
// e = tid + r WG of the slice: A (e / BK, e % BK), B (e / BN, e % BN).
#define A_PER (BM * BK / WG)
#define B_PER (BK * BN / WG)
#define A_ML(r) ((tid + (r) * WG) / BK)
#define A_KL(r) ((tid + (r) * WG) % BK)
#define B_KL(r) ((tid + (r) * WG) / BN)
#define B_NL(r) ((tid + (r) * WG) % BN)
#define LOAD_REGS(k0)                                                                                        \
  UNROLL for (int r = 0; r < A_PER; r++) {                                                                  \
    const int m = m0 + A_ML(r), k = (k0) + A_KL(r);                                                          \
    ra[r] = m < M && k < kend ? load_a(g, m, k, x, dy, w) : 0.0f;                                            \
  }                                                                                                          \
  UNROLL for (int r = 0; r < B_PER; r++) {                                                                  \
    const int k = (k0) + B_KL(r);                                                                            \
    rb[r] = LOAD_B(k);                                                                                       \
  }
#if COLUMN_FIXED
#define COLUMN_INIT const bcol col = column(g, n0 + tid % BN, N)
#define LOAD_B(k) (col.ok && (k) < kend ? load_b_col(g, col, (k), x, x2, dy) : 0.0f)
#else
#define COLUMN_INIT const int ncol = n0 + tid % BN
#define LOAD_B(k) (ncol < N && (k) < kend ? load_b(g, (k), ncol, x, x2, dy) : 0.0f)
#endif

// The k loop both micro-kernels run: BK-deep slices double-buffered through local memory (the next slice
// loaded into registers while COMPUTE(cur) multiplies the current one), one barrier per slice.
#define PIPELINE()                                                                                            \
  const int nk = (kend - kbeg + BK - 1) / BK;                                                                 \
  if (nk > 0) {                                                                                               \
    LOAD_REGS(kbeg);                                                                                          \
    STORE_REGS(0);                                                                                            \
  }                                                                                                           \
  barrier(CLK_LOCAL_MEM_FENCE);                                                                               \
  for (int kt = 0; kt < nk; kt++) {                                                                           \
    const int cur = kt & 1;                                                                                   \
    if (kt + 1 < nk) {                                                                                        \
      LOAD_REGS(kbeg + (kt + 1) * BK);                                                                        \
    }                                                                                                         \
    COMPUTE(cur);                                                                                             \
    if (kt + 1 < nk) {                                                                                        \
      STORE_REGS(cur ^ 1);                                                                                    \
    }                                                                                                         \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                             \
  }

#if MMA == 0
// ---------------- float FMA micro-tiles ----------------

__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void igemm(KERNEL_ARGS) {
  GEO_INIT;
  __local float As[2][BK][BM], Bs[2][BK][BN];
  const int tx = tid % 16, ty = tid / 16;
  float acc[TM][TN];
  UNROLL
  for (int i = 0; i < TM; i++)
    UNROLL
    for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;
  float ra[A_PER], rb[B_PER];
  COLUMN_INIT;
#define STORE_REGS(buf)                                                                                      \
  UNROLL for (int r = 0; r < A_PER; r++) As[buf][A_KL(r)][A_ML(r)] = ra[r];                                \
  UNROLL for (int r = 0; r < B_PER; r++) Bs[buf][B_KL(r)][B_NL(r)] = rb[r];
#define COMPUTE(cur)                                                                                          \
  UNROLL for (int kk = 0; kk < BK; kk++) {                                                                    \
    float a[TM], b[TN];                                                                                       \
    UNROLL for (int i = 0; i < TM; i++) a[i] = As[cur][kk][ty + 16 * i];                                      \
    UNROLL for (int j = 0; j < TN; j++) b[j] = Bs[cur][kk][tx + 16 * j];                                      \
    UNROLL for (int i = 0; i < TM; i++)                                                                       \
      UNROLL for (int j = 0; j < TN; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);                             \
  }
  PIPELINE();
#undef COMPUTE
  UNROLL
  for (int i = 0; i < TM; i++)
    UNROLL
    for (int j = 0; j < TN; j++) {
      const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < M && n < N) store_c(g, m, n, acc[i][j], bias, has_bias, dx, dx2, y, part, split, M, N, accumulate);
    }
}

#else
// ---------------- tensor-core fragments ----------------
#define F16 (MMA == 1 || MMA == 3)
#define EMULATED (MMA == 1 || MMA == 2)
#define KSTEP (F16 ? 16 : 8)            // k of one mma
#define LPAD 8                          // elements of padding per local row (bank spread)
#define LROW (BK + LPAD)

#if F16
// local tiles hold the f16 operands as bits (an array of half needs cl_khr_fp16); a register is two
// consecutive k
#define LT ushort
#define LSTORE(v, p, i) vstore_half_rte((v), (i), (__local half *)(p))
#else
#define LT float // local tiles hold f32; a register is one tf32 value
#define LSTORE(v, p, i) ((p)[i] = (v))
#endif

// tf32 of an f32: round to nearest, ties away from zero, at 10 mantissa bits (cvt.rna.tf32.f32).
inline uint tf32_rna(const float f) {
  const uint u = as_uint(f);
  if ((u & 0x7f800000u) == 0x7f800000u) return u; // inf and NaN pass
  return (u + 0x1000u) & 0xffffe000u;
}

#if F16
// A register: row r0 + g (+8 for odd regs), columns k0 + 2t (+8 for regs 2, 3), two halves.
inline uint frag_a(__local const LT *As, const int r0, const int k0, const int lane, const int reg) {
  const int g = lane >> 2, t = lane & 3;
  const int row = r0 + g + 8 * (reg & 1), col = k0 + 2 * t + 8 * (reg >> 1);
  return ((__local const uint *)As)[(row * LROW + col) >> 1];
}
// B register: column c0 + g, rows (k) k0 + 2t (+8 for reg 1); Bs holds B transposed (n-major).
inline uint frag_b(__local const LT *Bs, const int c0, const int k0, const int lane, const int reg) {
  const int g = lane >> 2, t = lane & 3;
  return ((__local const uint *)Bs)[((c0 + g) * LROW + k0 + 2 * t + 8 * reg) >> 1];
}
#else
inline uint frag_a(__local const LT *As, const int r0, const int k0, const int lane, const int reg) {
  const int g = lane >> 2, t = lane & 3;
  return tf32_rna(As[(r0 + g + 8 * (reg & 1)) * LROW + k0 + t + 4 * (reg >> 1)]);
}
inline uint frag_b(__local const LT *Bs, const int c0, const int k0, const int lane, const int reg) {
  const int g = lane >> 2, t = lane & 3;
  return tf32_rna(Bs[(c0 + g) * LROW + k0 + t + 4 * reg]);
}
#endif

#if EMULATED
// The value of A(row, k) / B(k, col) inside one warp's fragments as the exchange holds them: xa[lane][reg],
// xb[lane][reg] (as the hardware's lanes hold them in registers).
inline float xa_val(__local const uint *xa, const int row, const int k) {
#if F16
  const int lane = (row & 7) * 4 + ((k & 7) >> 1), reg = (row >> 3) + 2 * (k >> 3);
  return vload_half(((lane * 4 + reg) << 1) + (k & 1), (__local const half *)xa);
#else
  const int lane = (row & 7) * 4 + (k & 3), reg = (row >> 3) + 2 * (k >> 2);
  return as_float(xa[lane * 4 + reg]);
#endif
}
inline float xb_val(__local const uint *xb, const int k, const int col) {
#if F16
  const int lane = col * 4 + ((k & 7) >> 1), reg = k >> 3;
  return vload_half(((lane * 2 + reg) << 1) + (k & 1), (__local const half *)xb);
#else
  const int lane = col * 4 + (k & 3), reg = k >> 2;
  return as_float(xb[lane * 2 + reg]);
#endif
}
// d = a b + c for one warp: every lane publishes its registers, then computes its four outputs from the
// whole 16 x KSTEP and KSTEP x 8 operands (products of f16 or tf32 values are exact in f32; the sums are
// f32, in k order). Every work-item of the group calls it (barriers), once per fragment pair.
inline void mma_sync(float c[4], const uint a[4], const uint b[2], __local uint *xa, __local uint *xb,
                     const int lane) {
  UNROLL
  for (int r = 0; r < 4; r++) xa[lane * 4 + r] = a[r];
  UNROLL
  for (int r = 0; r < 2; r++) xb[lane * 2 + r] = b[r];
  barrier(CLK_LOCAL_MEM_FENCE);
  const int g = lane >> 2, t = lane & 3;
  UNROLL
  for (int r = 0; r < 4; r++) {
    const int row = g + 8 * (r >> 1), col = 2 * t + (r & 1);
    float s = c[r];
    UNROLL
    for (int k = 0; k < KSTEP; k++) s = fma(xa_val(xa, row, k), xb_val(xb, k, col), s);
    c[r] = s;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
}
#define MMA_SYNC(c, a, b) mma_sync((c), (a), (b), xa, xb, lane)
#if LDSM
// ldmatrix.sync.aligned.m8n8.x4.shared.b16 as the hardware does it: lane l supplies the address (in halves
// of the tile) of row l & 7 of 8 x 8 matrix l >> 3; register i of lane l receives row l >> 2, halves 2 (l & 3)
// and 2 (l & 3) + 1 of matrix i. The addresses go through the exchange, so a wrong one reads a wrong row here
// as it would on the GPU.
inline void ldsm_x4(uint r[4], __local const LT *base, const int addr, __local uint *xa, const int lane) {
  xa[lane] = (uint)addr;
  barrier(CLK_LOCAL_MEM_FENCE);
  UNROLL
  for (int i = 0; i < 4; i++) r[i] = ((__local const uint *)base)[(xa[8 * i + (lane >> 2)] >> 1) + (lane & 3)];
  barrier(CLK_LOCAL_MEM_FENCE);
}
#define LDSM_X4(r, base, addr) ldsm_x4((r), (base), (addr), xa, lane)
#endif
#else
// NVIDIA sm_80+: the instruction itself (the probe in ops/conv/igemm.c runs this before it is chosen).
#if F16
#define MMA_SYNC(c, a, b)                                                                                    \
  __asm__ volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, " \
                   "{%0,%1,%2,%3};"                                                                          \
                   : "+f"((c)[0]), "+f"((c)[1]), "+f"((c)[2]), "+f"((c)[3])                                  \
                   : "r"((a)[0]), "r"((a)[1]), "r"((a)[2]), "r"((a)[3]), "r"((b)[0]), "r"((b)[1]))
#else
#define MMA_SYNC(c, a, b)                                                                                    \
  __asm__ volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, " \
                   "{%0,%1,%2,%3};"                                                                          \
                   : "+f"((c)[0]), "+f"((c)[1]), "+f"((c)[2]), "+f"((c)[3])                                  \
                   : "r"((a)[0]), "r"((a)[1]), "r"((a)[2]), "r"((a)[3]), "r"((b)[0]), "r"((b)[1]))
#endif
#if LDSM
// The row addresses are the tile's shared-memory addresses: a __local pointer converted to an integer is its
// offset in the shared window, which is what ldmatrix's .shared operand takes.
inline void ldsm_x4(uint r[4], __local const LT *base, const int addr) {
  const uint s = (uint)(size_t)(base + addr);
  __asm__ volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                   : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                   : "r"(s)
                   : "memory");
}
#define LDSM_X4(r, base, addr) ldsm_x4((r), (base), (addr))
#endif
#endif

__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void igemm(KERNEL_ARGS) {
  GEO_INIT;
  // 16-byte aligned: the fragments are read as 32-bit words, and ldmatrix reads 16-byte rows
  __local LT As[2][BM * LROW] __attribute__((aligned(16))), Bs[2][BN * LROW] __attribute__((aligned(16)));
#if EMULATED
  __local uint xchg[WARPS_M * WARPS_N][32 * 6];
  __local uint *xa = xchg[tid >> 5], *xb = xchg[tid >> 5] + 32 * 4;
#endif
  const int lane = tid & 31, warp = tid >> 5, wm = warp / WARPS_N, wn = warp % WARPS_N;
  float acc[FM][FN][4];
  UNROLL
  for (int i = 0; i < FM; i++)
    UNROLL
    for (int j = 0; j < FN; j++)
      UNROLL
      for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;
  float ra[A_PER], rb[B_PER];
  COLUMN_INIT;
#define STORE_REGS(buf)                                                                                      \
  UNROLL for (int r = 0; r < A_PER; r++) LSTORE(ra[r], As[buf], A_ML(r) * LROW + A_KL(r));                 \
  UNROLL for (int r = 0; r < B_PER; r++) LSTORE(rb[r], Bs[buf], B_NL(r) * LROW + B_KL(r));
#if LDSM
// A: one x4 per fragment (matrices: rows 0-7 / 8-15 at k 0-7, then at k 8-15, as a[0..3]); B (n-major): one
// x4 per pair of fragments (columns 0-7 at k 0-7 and 8-15, then columns 8-15 likewise, as b[j], b[j + 1]).
#if FN % 2
#error "igemm: ldmatrix loads B fragments in pairs (FN even)"
#endif
#define LOAD_FRAGS(cur, ks)                                                                                   \
  UNROLL for (int i = 0; i < FM; i++)                                                                         \
    LDSM_X4(a[i], As[cur], (wm * (FM * 16) + i * 16 + (lane & 15)) * LROW + (ks) + 8 * (lane >> 4));          \
  UNROLL for (int j = 0; j < FN; j += 2) {                                                                    \
    uint q[4];                                                                                                \
    LDSM_X4(q, Bs[cur], (wn * (FN * 8) + j * 8 + (lane & 7) + 8 * (lane >> 4)) * LROW + (ks) + 8 * ((lane >> 3) & 1)); \
    b[j][0] = q[0]; b[j][1] = q[1]; b[j + 1][0] = q[2]; b[j + 1][1] = q[3];                                   \
  }
#else
#define LOAD_FRAGS(cur, ks)                                                                                   \
  UNROLL for (int i = 0; i < FM; i++)                                                                         \
    UNROLL for (int r = 0; r < 4; r++) a[i][r] = frag_a(As[cur], wm * (FM * 16) + i * 16, (ks), lane, r);     \
  UNROLL for (int j = 0; j < FN; j++)                                                                         \
    UNROLL for (int r = 0; r < 2; r++) b[j][r] = frag_b(Bs[cur], wn * (FN * 8) + j * 8, (ks), lane, r);
#endif
#define COMPUTE(cur)                                                                                          \
  UNROLL for (int ks = 0; ks < BK; ks += KSTEP) {                                                             \
    uint a[FM][4], b[FN][2];                                                                                  \
    LOAD_FRAGS(cur, ks)                                                                                       \
    UNROLL for (int i = 0; i < FM; i++)                                                                       \
      UNROLL for (int j = 0; j < FN; j++) MMA_SYNC(acc[i][j], a[i], b[j]);                                    \
  }
  PIPELINE();
#undef COMPUTE
  const int gq = lane >> 2, tq = lane & 3;
  UNROLL
  for (int i = 0; i < FM; i++)
    UNROLL
    for (int j = 0; j < FN; j++)
      UNROLL
      for (int r = 0; r < 4; r++) {
        const int m = m0 + wm * (FM * 16) + i * 16 + gq + 8 * (r >> 1), n = n0 + wn * (FN * 8) + j * 8 + 2 * tq + (r & 1);
        if (m < M && n < N) store_c(g, m, n, acc[i][j][r], bias, has_bias, dx, dx2, y, part, split, M, N, accumulate);
      }
}
#endif

// Weight gradients split over K: dw[i] (+)= the partial sums of the splits, in split order. global: (M N)
__kernel void igemm_reduce(__global float *dw, __global const float *part, const int MN, const int splits,
                           const int accumulate) {
  const int i = get_global_id(0);
  if (i >= MN) return;
  float s = accumulate ? dw[i] : 0.0f;
  for (int j = 0; j < splits; j++) s += part[(size_t)j * MN + i];
  dw[i] = s;
}
