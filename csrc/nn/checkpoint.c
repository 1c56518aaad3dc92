/* Checkpoint reader/writer; the layout is documented in checkpoint.h and docs/formats.md. */
#include "nn/checkpoint.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"

static const char MAGIC[8] = {'L', 'U', 'N', 'E', 'T', 'C', 'K', 'P'};

static int wr(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

lu_status lu_ckpt_save(lu_unet *n, const char *path, const char *json, size_t json_len) {
  size_t nf = lu_unet_flat_floats(n);
  float *buf = malloc((nf ? nf : 1) * sizeof(float));
  if (!buf) return lu_fail(LU_ENOMEM, "%s: checkpoint staging buffer", path);
  char tmp[LU_ATOMIC_TMP_MAX];
  FILE *f;
  lu_status st = lu_atomic_fopen(path, tmp, sizeof tmp, &f);
  if (st != LU_OK) {
    free(buf);
    return st;
  }
  int ok = 1, np = lu_unet_num_params(n);
  uint32_t v = LU_CKPT_VERSION, npu = (uint32_t)np;
  uint64_t tot = lu_unet_num_weights(n), jl = json_len;
  const char *arch = lu_unet_arch_string(n);
  uint32_t al = (uint32_t)strlen(arch);
  ok = ok && wr(f, MAGIC, 8) && wr(f, &v, 4) && wr(f, &npu, 4) && wr(f, &tot, 8);
  ok = ok && wr(f, &al, 4) && wr(f, arch, al) && wr(f, &jl, 8) && wr(f, json, json_len);
  for (int i = 0; i < np && ok; i++) {
    const lu_param *p = lu_unet_param(n, i);
    uint32_t nl = (uint32_t)strlen(p->name), nd = (uint32_t)p->ndim;
    ok = wr(f, &nl, 4) && wr(f, p->name, nl) && wr(f, &nd, 4) && wr(f, p->shape, 8 * (size_t)nd);
  }
  for (int which = 0; which < 3 && ok && st == LU_OK; which += 2) {
    st = lu_unet_read_flat(n, which, buf);
    for (int i = 0; i < np && ok && st == LU_OK; i++) {
      const lu_param *p = lu_unet_param(n, i);
      ok = wr(f, buf + p->offset, p->numel * sizeof(float));
    }
  }
  free(buf);
  if (st != LU_OK) st = lu_fail_context(st, "%s: saving checkpoint", path);
  else if (!ok) st = lu_fail(LU_EIO, "%s: write failed", path);
  return lu_atomic_fclose(f, tmp, path, st);
}

static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

/* Opens path, checks magic and version, reads arch and JSON (both malloc'd). */
static lu_status open_ckpt(const char *path, FILE **out, char **arch, char **json, uint32_t *np, uint64_t *tot) {
  FILE *f = fopen(path, "rb");
  if (!f) return lu_fail(LU_EIO, "%s: cannot open checkpoint", path);
  char m[8];
  uint32_t v, al;
  uint64_t jl;
  if (!rd(f, m, 8) || memcmp(m, MAGIC, 8) != 0) {
    fclose(f);
    return lu_fail(LU_EFORMAT, "%s: not a Lunet checkpoint (bad magic)", path);
  }
  if (!rd(f, &v, 4) || v != LU_CKPT_VERSION) {
    fclose(f);
    return lu_fail(LU_EFORMAT, "%s: checkpoint format version %u, this build reads %d", path, v, LU_CKPT_VERSION);
  }
  if (!rd(f, np, 4) || !rd(f, tot, 8) || !rd(f, &al, 4) || al > (1u << 20)) {
    fclose(f);
    return lu_fail(LU_EFORMAT, "%s: truncated checkpoint header", path);
  }
  char *a = malloc(al + 1);
  if (!a || !rd(f, a, al) || !rd(f, &jl, 8) || jl > (1ull << 31)) {
    free(a);
    fclose(f);
    return lu_fail(LU_EFORMAT, "%s: truncated checkpoint header", path);
  }
  a[al] = 0;
  char *j = malloc(jl + 1);
  if (!j || !rd(f, j, jl)) {
    free(a);
    free(j);
    fclose(f);
    return lu_fail(LU_EFORMAT, "%s: truncated checkpoint JSON header", path);
  }
  j[jl] = 0;
  *out = f;
  *arch = a;
  *json = j;
  return LU_OK;
}

lu_status lu_ckpt_read_header(const char *path, char **json, char **arch) {
  FILE *f = NULL;
  uint32_t np;
  uint64_t tot;
  LU_TRY(open_ckpt(path, &f, arch, json, &np, &tot));
  fclose(f);
  return LU_OK;
}

lu_status lu_ckpt_load(lu_unet *n, const char *path, int with_momentum) {
  FILE *f = NULL;
  char *arch = NULL, *json = NULL;
  uint32_t np;
  uint64_t tot;
  LU_TRY(open_ckpt(path, &f, &arch, &json, &np, &tot));
  free(json);
  lu_status st = LU_OK;
  if (strcmp(arch, lu_unet_arch_string(n)) != 0)
    st = lu_fail(LU_EARG, "%s: checkpoint is for a different network (plan): file has \"%s\", this network is \"%s\"", path,
                 arch, lu_unet_arch_string(n));
  free(arch);
  if (st == LU_OK && (np != (uint32_t)lu_unet_num_params(n) || tot != lu_unet_num_weights(n)))
    st = lu_fail(LU_EARG, "%s: checkpoint has %u tensors / %llu weights, the network %d / %zu", path, np,
                 (unsigned long long)tot, lu_unet_num_params(n), lu_unet_num_weights(n));
  for (uint32_t i = 0; i < np && st == LU_OK; i++) {
    const lu_param *p = lu_unet_param(n, (int)i);
    uint32_t nl, nd;
    char name[256];
    int64_t sh[LU_MAX_DIMS];
    if (!rd(f, &nl, 4) || nl >= sizeof name || !rd(f, name, nl) || !rd(f, &nd, 4) || nd > LU_MAX_DIMS ||
        !rd(f, sh, 8 * (size_t)nd)) {
      st = lu_fail(LU_EFORMAT, "%s: truncated tensor table at entry %u", path, i);
      break;
    }
    name[nl] = 0;
    if (strcmp(name, p->name) != 0 || (int)nd != p->ndim || memcmp(sh, p->shape, 8 * (size_t)nd) != 0)
      st = lu_fail(LU_EARG, "%s: tensor %u is %s, the network expects %s with another shape or name", path, i, name, p->name);
  }
  size_t nf = lu_unet_flat_floats(n);
  float *buf = st == LU_OK ? calloc(nf ? nf : 1, sizeof(float)) : NULL;
  if (st == LU_OK && !buf) st = lu_fail(LU_ENOMEM, "%s: staging buffer", path);
  for (int which = 0; which < (with_momentum ? 3 : 1) && st == LU_OK; which += 2) {
    for (uint32_t i = 0; i < np && st == LU_OK; i++) {
      const lu_param *p = lu_unet_param(n, (int)i);
      if (!rd(f, buf + p->offset, p->numel * sizeof(float)))
        st = lu_fail(LU_EFORMAT, "%s: truncated data (%s of tensor %s)", path, which ? "momentum" : "weights", p->name);
    }
    if (st == LU_OK) st = lu_unet_write_flat(n, which, buf);
  }
  free(buf);
  fclose(f);
  return st;
}
