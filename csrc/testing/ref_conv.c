#include "testing/ref_conv.h"

int lu_ref_out_extent(lu_ref_geom *g) {
  for (int i = 0; i < 3; i++) {
    if (g->tr) {
      g->out[i] = g->in[i] * g->s[i];
      continue;
    }
    int64_t e = g->in[i] + 2 * g->p[i] - g->k[i];
    if (e < 0) return 0;
    g->out[i] = e / g->s[i] + 1;
  }
  return 1;
}

void lu_ref_conv(const lu_ref_geom *g, lu_ref_pass pass, const double *x, const double *w, const double *dy,
                 double *acc) {
  int64_t IS = g->in[0] * g->in[1] * g->in[2], OS = g->out[0] * g->out[1] * g->out[2];
  int kv = g->k[0] * g->k[1] * g->k[2];
  /* the strided side (conv's output, convT's input) is enumerated; the other is reached by taps */
  const int64_t *sm = g->tr ? g->in : g->out, *lg = g->tr ? g->out : g->in;
  for (int n = 0; n < g->N; n++)
    for (int co = 0; co < g->Cout; co++)
      for (int ci = 0; ci < g->Cin; ci++)
        for (int64_t a = 0; a < sm[0]; a++)
          for (int64_t b = 0; b < sm[1]; b++)
            for (int64_t c = 0; c < sm[2]; c++)
              for (int tz = 0; tz < g->k[0]; tz++)
                for (int ty = 0; ty < g->k[1]; ty++)
                  for (int tx = 0; tx < g->k[2]; tx++) {
                    int64_t lz = a * g->s[0] - g->p[0] + tz, ly = b * g->s[1] - g->p[1] + ty,
                            lx = c * g->s[2] - g->p[2] + tx;
                    if (lz < 0 || ly < 0 || lx < 0 || lz >= lg[0] || ly >= lg[1] || lx >= lg[2]) continue;
                    int64_t si = (a * sm[1] + b) * sm[2] + c, li = (lz * lg[1] + ly) * lg[2] + lx;
                    int64_t ii = g->tr ? si : li, oi = g->tr ? li : si;
                    int64_t xi = ((int64_t)n * g->Cin + ci) * IS + ii, yi = ((int64_t)n * g->Cout + co) * OS + oi;
                    int64_t tap = (tz * g->k[1] + ty) * g->k[2] + tx;
                    int64_t wi = g->tr ? ((int64_t)ci * g->Cout + co) * kv + tap : ((int64_t)co * g->Cin + ci) * kv + tap;
                    if (pass == LU_REF_FWD) acc[yi] += w[wi] * x[xi];
                    else if (pass == LU_REF_BWD_DATA) acc[xi] += w[wi] * dy[yi];
                    else acc[wi] += x[xi] * dy[yi];
                  }
}
