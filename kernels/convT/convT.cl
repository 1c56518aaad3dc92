// Transposed convolution with kernel == stride: the GEMM result T (nb, Cout * KV, Pt) holds, for every
// input voxel p of a tile of input rows (row = iz * Y + iy, all X columns; p = (row - r0) * X + ix),
// the SZ x SY x SX block of outputs it produces. scatter moves T into y (adding the bias); gather is
// its adjoint (dy -> G). Work-items run over output voxels so y / dy are accessed contiguously.
#ifndef SZ
#define SZ 2
#endif
#ifndef SY
#define SY 2
#endif
#ifndef SX
#define SX 2
#endif
#define KV (SZ * SY * SX)

// Index of the output voxel for work-item (ox, q, jc) and of its entry in T / G.
#define CONVT_INDEX                                                                          \
  const int ox = get_global_id(0), q = get_global_id(1), jc = get_global_id(2);            \
  const int rl = q / (SZ * SY), ab = q % (SZ * SY), a = ab / SY, bb = ab % SY;              \
  const int row = r0 + rl, iz = row / Y, iy = row % Y;                                     \
  const int ix = ox / SX, c = ox % SX;                                                     \
  const int j = jc / Cout, co = jc % Cout;                                                 \
  const size_t Pt = (size_t)nrows * X, OY = (size_t)Y * SY, OX = (size_t)X * SX;           \
  const size_t OS = (size_t)Z * SZ * OY * OX;                                              \
  const size_t ti = ((size_t)j * Cout * KV + (size_t)co * KV + (a * SY + bb) * SX + c) * Pt + (size_t)rl * X + ix; \
  const size_t yi = (size_t)jc * OS + ((size_t)(iz * SZ + a) * OY + (size_t)(iy * SY + bb)) * OX + ox;

// global: (X * SX, nrows * SZ * SY, nb * Cout); y_off = first sample's offset in y.
__kernel void scatter(__global float *restrict y, const ulong y_off, __global const float *restrict t,
                      __global const float *restrict b, const int has_bias, const int Cout, const int Z, const int Y,
                      const int X, const int r0, const int nrows) {
  CONVT_INDEX
  y[y_off + yi] = t[ti] + (has_bias ? b[co] : 0.0f);
}

// G[j][co * KV + abc][p] = dy[...]; same work-items as scatter.
__kernel void gather(__global float *restrict g, __global const float *restrict dy, const ulong dy_off,
                     const int Cout, const int Z, const int Y, const int X, const int r0, const int nrows) {
  CONVT_INDEX
  g[ti] = dy[dy_off + yi];
}

// wt[m][ci] = w[ci][m] for w (Cin, M): lets the forward GEMM run without a transposed operand.
// global: (M, Cin)
__kernel void transpose(__global float *restrict wt, __global const float *restrict w, const int Cin, const int M) {
  const int m = get_global_id(0), ci = get_global_id(1);
  wt[(size_t)m * Cin + ci] = w[(size_t)ci * M + m];
}
