/* Run-length connected components. Pass 1 finds the foreground runs of every row (z, y), in
 * parallel over rows. Pass 2 unions runs of a row with the overlapping runs of the previous rows
 * that are neighbours under the connectivity (for 26: (z,y-1), (z-1,y-1), (z-1,y), (z-1,y+1), with
 * diagonal touching allowed). Pass 3 numbers the roots in run order, which is raster order of each
 * component's first voxel. Work is proportional to voxels / 8 (word skipping) plus runs. */
#include "eval/cc.h"

#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "eval/metrics.h"

typedef struct { int32_t x0, x1; } run_t; /* [x0, x1) */

typedef struct {
  const uint8_t *mask;
  int64_t nx;
  int64_t *row_start; /* counts in pass a, offsets in pass b */
  run_t *runs;
  int pass;
} scan_job;

/* Index of the first byte != 0 (want_fg) or == 0 (!want_fg) in p[x..nx), or nx. */
static inline int64_t seek(const uint8_t *p, int64_t x, int64_t nx, int want_fg) {
  if (want_fg) {
    while (x < nx && ((uintptr_t)(p + x) & 7)) { if (p[x]) return x; x++; }
    while (x + 8 <= nx) {
      uint64_t w;
      memcpy(&w, p + x, 8);
      if (w) break;
      x += 8;
    }
    while (x < nx && !p[x]) x++;
    return x;
  }
  while (x + 8 <= nx) {
    uint64_t w;
    memcpy(&w, p + x, 8);
    /* all 8 bytes nonzero? */
    if (((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL) != 0) break;
    x += 8;
  }
  while (x < nx && p[x]) x++;
  return x;
}

/* Rows [r0, r1): pass 0 counts each row's runs, pass 1 writes them at the row's offset. */
static void scan_rows(void *ctx, int64_t r0, int64_t r1) {
  const scan_job *j = ctx;
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t *p = j->mask + r * j->nx;
    int64_t x = 0, k = 0;
    run_t *out = j->pass ? j->runs + j->row_start[r] : NULL;
    for (;;) {
      x = seek(p, x, j->nx, 1);
      if (x >= j->nx) break;
      int64_t e = seek(p, x + 1, j->nx, 0);
      if (out) out[k] = (run_t){(int32_t)x, (int32_t)e};
      k++;
      x = e;
    }
    if (!j->pass) j->row_start[r] = k;
  }
}

static inline int32_t uf_find(int32_t *parent, int32_t a) {
  while (parent[a] != a) {
    parent[a] = parent[parent[a]];
    a = parent[a];
  }
  return a;
}

static inline void uf_union(int32_t *parent, int32_t a, int32_t b) {
  a = uf_find(parent, a);
  b = uf_find(parent, b);
  if (a == b) return;
  if (a < b) parent[b] = a;
  else parent[a] = b;
}

/* Unions runs of row a with runs of row b; ext = 1 lets runs touch diagonally along x. */
static void merge_rows(const run_t *runs, int32_t a0, int32_t a1, int32_t b0, int32_t b1, int ext, int32_t *parent) {
  int32_t i = a0, j = b0;
  while (i < a1 && j < b1) {
    const run_t *ra = &runs[i], *rb = &runs[j];
    if (ra->x0 < rb->x1 + ext && rb->x0 < ra->x1 + ext) uf_union(parent, i, j);
    /* advance the run that ends first */
    if (ra->x1 < rb->x1) i++;
    else j++;
  }
}

typedef struct {
  int64_t nrows;
  int64_t *row_start; /* nrows + 1 */
  run_t *runs;
  int32_t *comp;      /* per run: final label 1..n */
  int32_t n;
  int64_t *sizes;     /* n + 1 */
} cc_state;

static void cc_free(cc_state *s) {
  free(s->row_start);
  free(s->runs);
  free(s->comp);
  free(s->sizes);
}

static lu_status cc_compute(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, int connectivity, int threads,
                            cc_state *s) {
  memset(s, 0, sizeof *s);
  if (nz < 1 || ny < 1 || nx < 1) return lu_fail(LU_EARG, "cc: empty volume %lldx%lldx%lld", (long long)nz, (long long)ny, (long long)nx);
  if (nx > INT32_MAX) return lu_fail(LU_EARG, "cc: rows of %lld voxels are too long", (long long)nx);
  if (connectivity != 6 && connectivity != 18 && connectivity != 26)
    return lu_fail(LU_EARG, "cc: connectivity %d is not 6, 18 or 26", connectivity);
  int64_t nrows = nz * ny;
  s->nrows = nrows;
  s->row_start = malloc((size_t)(nrows + 1) * sizeof(int64_t));
  if (!s->row_start) return lu_fail(LU_ENOMEM, "cc: no memory for %lld row offsets", (long long)nrows);
  if (threads < 1) threads = 1;
  if (threads > LU_MAX_THREADS) threads = LU_MAX_THREADS;
  if (nrows < threads * 64) threads = 1;
  scan_job job = {mask, nx, s->row_start, NULL, 0};
  lu_status st = lu_parallel_for(threads, nrows, scan_rows, &job);
  if (st != LU_OK) { cc_free(s); return st; }
  int64_t total = 0;
  for (int64_t r = 0; r < nrows; r++) {
    int64_t c = s->row_start[r];
    s->row_start[r] = total;
    total += c;
  }
  s->row_start[nrows] = total;
  if (total > INT32_MAX - 1) { cc_free(s); return lu_fail(LU_EUNSUPPORTED, "cc: %lld runs exceed the 32-bit run index", (long long)total); }
  s->runs = malloc((size_t)(total ? total : 1) * sizeof(run_t));
  int32_t *parent = malloc((size_t)(total ? total : 1) * sizeof(int32_t));
  if (!s->runs || !parent) { free(parent); cc_free(s); return lu_fail(LU_ENOMEM, "cc: no memory for %lld runs", (long long)total); }
  job.pass = 1;
  job.runs = s->runs;
  st = lu_parallel_for(threads, nrows, scan_rows, &job);
  if (st != LU_OK) { free(parent); cc_free(s); return st; }
  for (int64_t i = 0; i < total; i++) parent[i] = (int32_t)i;

  const int ext_face = connectivity == 6 ? 0 : 1;   /* (z,y-1) and (z-1,y) */
  for (int64_t z = 0; z < nz; z++)
    for (int64_t y = 0; y < ny; y++) {
      int64_t r = z * ny + y;
      int32_t a0 = (int32_t)s->row_start[r], a1 = (int32_t)s->row_start[r + 1];
      if (a0 == a1) continue;
      if (y > 0) merge_rows(s->runs, a0, a1, (int32_t)s->row_start[r - 1], (int32_t)s->row_start[r], ext_face, parent);
      if (z > 0) {
        int64_t q = r - ny;
        merge_rows(s->runs, a0, a1, (int32_t)s->row_start[q], (int32_t)s->row_start[q + 1], ext_face, parent);
        if (connectivity != 6) {
          int ext_edge = connectivity == 26 ? 1 : 0; /* (z-1, y±1) */
          if (y > 0) merge_rows(s->runs, a0, a1, (int32_t)s->row_start[q - 1], (int32_t)s->row_start[q], ext_edge, parent);
          if (y + 1 < ny) merge_rows(s->runs, a0, a1, (int32_t)s->row_start[q + 1], (int32_t)s->row_start[q + 2], ext_edge, parent);
        }
      }
    }
  /* Number the sets in run order. parent[i] < i for every non-root (unions hang the larger root
   * under the smaller, path halving only shortens), so processing runs in order, parent[i] already
   * holds its final label when i is reached: overwrite parent with labels in place. Run order is
   * raster order, so labels follow each component's first voxel. */
  int32_t n = 0;
  for (int64_t i = 0; i < total; i++) {
    int32_t p = parent[i];
    parent[i] = p == (int32_t)i ? ++n : parent[p];
  }
  s->comp = parent;
  s->n = n;
  s->sizes = calloc((size_t)n + 1, sizeof(int64_t));
  if (!s->sizes) { cc_free(s); return lu_fail(LU_ENOMEM, "cc: no memory for %d component sizes", n); }
  for (int64_t i = 0; i < total; i++) s->sizes[s->comp[i]] += s->runs[i].x1 - s->runs[i].x0;
  return LU_OK;
}

lu_status lu_cc_label(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, int connectivity, int threads,
                      int32_t *labels, int32_t *n_out, int64_t **sizes_out) {
  cc_state s;
  LU_TRY(cc_compute(mask, nz, ny, nx, connectivity, threads, &s));
  if (labels) {
    memset(labels, 0, (size_t)(nz * ny * nx) * sizeof(int32_t));
    for (int64_t r = 0; r < s.nrows; r++) {
      int32_t *row = labels + r * nx;
      for (int64_t i = s.row_start[r]; i < s.row_start[r + 1]; i++) {
        int32_t l = s.comp[i];
        for (int32_t x = s.runs[i].x0; x < s.runs[i].x1; x++) row[x] = l;
      }
    }
  }
  if (n_out) *n_out = s.n;
  if (sizes_out) { *sizes_out = s.sizes; s.sizes = NULL; }
  cc_free(&s);
  return LU_OK;
}

lu_status lu_cc_mark_all_but_largest(uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, int connectivity,
                                     int threads, int64_t *n_removed) {
  cc_state s;
  LU_TRY(cc_compute(mask, nz, ny, nx, connectivity, threads, &s));
  int64_t best = 0, removed = 0;
  for (int32_t l = 1; l <= s.n; l++)
    if (s.sizes[l] > best) best = s.sizes[l];
  for (int64_t r = 0; r < s.nrows; r++) {
    uint8_t *row = mask + r * nx;
    for (int64_t i = s.row_start[r]; i < s.row_start[r + 1]; i++) {
      if (s.sizes[s.comp[i]] == best) continue;
      memset(row + s.runs[i].x0, 2, (size_t)(s.runs[i].x1 - s.runs[i].x0));
      removed += s.runs[i].x1 - s.runs[i].x0;
    }
  }
  if (n_removed) *n_removed = removed;
  cc_free(&s);
  return LU_OK;
}

static lu_status seg_dims(const lu_tensor *seg, int64_t *nz, int64_t *ny, int64_t *nx) {
  char b[64];
  int nd = seg->ndim;
  if (nd < 2) return lu_fail(LU_EARG, "cc: image of shape %s has fewer than 2 dimensions", lu_shape_str(nd, seg->shape, b, sizeof b));
  *nx = seg->shape[nd - 1];
  *ny = seg->shape[nd - 2];
  *nz = nd >= 3 ? seg->shape[nd - 3] : 1;
  for (int d = 0; d < nd - 3; d++)
    if (seg->shape[d] != 1)
      return lu_fail(LU_EARG, "cc: image of shape %s has more than one channel", lu_shape_str(nd, seg->shape, b, sizeof b));
  return LU_OK;
}

lu_status lu_cc_keep_largest_seg(lu_tensor *seg, const int32_t *labels, int n_labels, double background,
                                 int connectivity, int threads) {
  if (!seg || !seg->host) return lu_fail(LU_EARG, "cc: segmentation must be a host tensor");
  int64_t nz = 0, ny = 0, nx = 0;
  LU_TRY(seg_dims(seg, &nz, &ny, &nx));
  int maxl = 0;
  for (int i = 0; i < n_labels; i++) {
    if (labels[i] < 0 || labels[i] > LU_EVAL_MAX_LABEL) return lu_fail(LU_EARG, "cc: label %d out of range 0..%d", labels[i], LU_EVAL_MAX_LABEL);
    if (labels[i] > maxl) maxl = labels[i];
  }
  int nb = maxl + 2;
  uint8_t in_set[LU_EVAL_MAX_LABEL + 2] = {0};
  for (int i = 0; i < n_labels; i++) in_set[labels[i]] = 1;
  int64_t n = nz * ny * nx;
  uint8_t *mask = malloc((size_t)n);
  uint16_t *bins = malloc(65536 * sizeof(uint16_t));
  if (!mask || !bins) { free(mask); free(bins); return lu_fail(LU_ENOMEM, "cc: no memory for a %lld-voxel mask", (long long)n); }
  lu_status st = LU_OK;
  for (int64_t s = 0; s < n && st == LU_OK; s += 65536) {
    int64_t e = s + 65536 < n ? s + 65536 : n;
    st = lu_eval_value_bins(seg, s, e, nb, bins);
    for (int64_t i = s; i < e && st == LU_OK; i++) mask[i] = in_set[bins[i - s]];
  }
  free(bins);
  int64_t removed = 0;
  if (st == LU_OK) st = lu_cc_mark_all_but_largest(mask, nz, ny, nx, connectivity, threads, &removed);
  if (st == LU_OK && removed)
    for (int64_t i = 0; i < n; i++)
      if (mask[i] == 2) lu_host_set(seg, i, background);
  free(mask);
  return st;
}
