// Two-stage reductions over float32: each work-group reduces a strided slice into one partial,
// accumulating in float with Kahan compensation so sums of millions of elements keep ~1e-6 relative
// accuracy; the host finishes the (few hundred) partials in double.
#ifndef WG
#define WG 64
#endif
#ifndef CONTIG
#define CONTIG 0
#endif

#define OP_SUM 0
#define OP_SUMSQ 1
#define OP_MAX 2

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void reduce_f32(__global const float *x, const ulong n, const int op, __global float *partials) {
  __local float sh[WG];
  __local float shc[WG];
  size_t lid = get_local_id(0), gid = get_global_id(0), stride = get_global_size(0);
  float acc = (op == OP_MAX) ? -INFINITY : 0.0f, comp = 0.0f;
#if CONTIG
  // CPUs: PoCL runs a work-group's work-items one after the other, so a grid-stride loop would stream
  // the whole array once per work-item of a cache line; here each work-item owns a contiguous,
  // 16-aligned chunk and sums it in 16 Kahan lanes
  const size_t chunk = ((n + stride - 1) / stride + 15) & ~(size_t)15;
  const size_t i0 = gid * chunk, i1 = min(n, i0 + chunk);
  float16 va = (float16)((op == OP_MAX) ? -INFINITY : 0.0f), vc = (float16)(0.0f);
  size_t i = i0;
  for (; i + 16 <= i1; i += 16) {
    float16 v = vload16(0, x + i);
    if (op == OP_MAX) {
      va = fmax(va, v);
      continue;
    }
    if (op == OP_SUMSQ) v = v * v;
    const float16 y = v - vc, t = va + y;
    vc = (t - va) - y;
    va = t;
  }
  float lanes[16], lcomp[16];
  vstore16(va, 0, lanes);
  vstore16(vc, 0, lcomp);
  for (int j = 0; j < 16; j++) {
    if (op == OP_MAX) {
      acc = fmax(acc, lanes[j]);
      continue;
    }
    const float y = (lanes[j] - lcomp[j]) - comp, t = acc + y;
    comp = (t - acc) - y;
    acc = t;
  }
  for (; i < i1; i++) {
    float v = x[i];
#else
  for (size_t i = gid; i < n; i += stride) {
    float v = x[i];
#endif
    if (op == OP_MAX) { acc = fmax(acc, v); continue; }
    if (op == OP_SUMSQ) v = v * v;
    float y = v - comp, t = acc + y;
    comp = (t - acc) - y;
    acc = t;
  }
  sh[lid] = acc;
  shc[lid] = comp;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (size_t s = WG / 2; s > 0; s >>= 1) {
    if (lid < s) {
      if (op == OP_MAX) sh[lid] = fmax(sh[lid], sh[lid + s]);
      else { sh[lid] = (sh[lid] - shc[lid]) + (sh[lid + s] - shc[lid + s]); shc[lid] = 0.0f; }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) partials[get_group_id(0)] = op == OP_MAX ? sh[0] : sh[0] - shc[0];
}
