// Weight gradients summed over the chunks of positions that wgrad_direct (wgrad.cl) writes partial
// sums for (conv.c: reduce_partials; wgrad_cvec's blocked ones go through reduce_cvec).
// dw[i] (+)= sum over chunks of part[chunk][i]; global: (n)
__kernel void reduce_chunks(__global float *restrict dw, __global const float *restrict part, const int n,
                            const int nchunks, const int accumulate) {
  const int i = get_global_id(0);
  if (i >= n) return;
  float s = accumulate ? dw[i] : 0.0f;
  for (int c = 0; c < nchunks; c++) s += part[(size_t)c * n + i];
  dw[i] = s;
}
