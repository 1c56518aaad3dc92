/* torch.save / torch.load zip files (see torch.h). */
#include "fmt/torch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt/zip.h"

#define PKL_MAX ((size_t)1 << 31)

typedef struct {
  lu_zip *z;
  char prefix[1024];
  lu_pv **seen; /* storages by first appearance, for shared keys */
  size_t nseen, capseen;
} loader;

static lu_status persid(void *ud, lu_pv *pid, lu_pv **out, lu_unpickler *u) {
  loader *ld = ud;
  const char *path = ld->z->path;
  if (pid->kind != LU_PV_TUPLE || pid->n < 5 || pid->items[0]->kind != LU_PV_STR || strcmp(pid->items[0]->s, "storage"))
    return lu_fail(LU_EFORMAT, "%s: a persistent id is not ('storage', type, key, location, numel)", path);
  lu_pv *ty = pid->items[1], *key = pid->items[2], *loc = pid->items[3], *numel = pid->items[4];
  if (ty->kind != LU_PV_GLOBAL || ty->gid == 0 || lu_pdtype_size((lu_pdtype)ty->dtype) == 0 || !strstr(ty->s, "Storage"))
    return lu_fail(LU_EFORMAT, "%s: a persistent id names no torch storage type", path);
  if (key->kind != LU_PV_STR || loc->kind != LU_PV_STR || numel->kind != LU_PV_INT || numel->i < 0)
    return lu_fail(LU_EFORMAT, "%s: malformed storage persistent id", path);
  for (size_t i = 0; i < ld->nseen; i++)
    if (!strcmp(ld->seen[i]->s, key->s)) {
      if (ld->seen[i]->dtype != ty->dtype) return lu_fail(LU_EFORMAT, "%s: storage %s is named with two types", path, key->s);
      *out = ld->seen[i];
      return LU_OK;
    }
  char name[1200];
  if (key->len > 100 || strchr(key->s, '/')) return lu_fail(LU_EFORMAT, "%s: bad storage key", path);
  snprintf(name, sizeof name, "%sdata/%s", ld->prefix, key->s);
  int ix = lu_zip_find(ld->z, name);
  if (ix < 0) return lu_fail(LU_EFORMAT, "%s: storage %s (entry %s) is missing", path, key->s, name);
  size_t es = lu_pdtype_size((lu_pdtype)ty->dtype);
  if ((uint64_t)numel->i > ld->z->e[ix].usize / es)
    return lu_fail(LU_EFORMAT, "%s: entry %s: %llu bytes cannot hold %lld %s elements", path, name, (unsigned long long)ld->z->e[ix].usize, (long long)numel->i, lu_pdtype_name((lu_pdtype)ty->dtype));
  lu_pv *s = lu_pv_new(u, LU_PV_STORAGE);
  if (!s || !(s->s = strdup(key->s))) return lu_fail(LU_ENOMEM, "%s: no memory", path);
  s->len = key->len;
  s->dtype = ty->dtype;
  s->i = numel->i;
  size_t n;
  LU_TRY(lu_zip_read(ld->z, ix, 0, &s->data, &n));
  s->nbytes = n;
  if (ld->nseen == ld->capseen) {
    size_t nc = ld->capseen ? 2 * ld->capseen : 16;
    lu_pv **ns = realloc(ld->seen, nc * sizeof *ns);
    if (!ns) return lu_fail(LU_ENOMEM, "%s: no memory", path);
    ld->seen = ns;
    ld->capseen = nc;
  }
  ld->seen[ld->nseen++] = s;
  *out = s;
  return LU_OK;
}

lu_status lu_torch_load(const char *path, const char *const *symbolic, lu_unpickler **u, lu_pv **root) {
  *u = NULL;
  *root = NULL;
  FILE *f = fopen(path, "rb");
  if (f) {
    unsigned char m[2] = {0, 0};
    size_t k = fread(m, 1, 2, f);
    fclose(f);
    if (k == 2 && m[0] == 0x80 && m[1] <= 5)
      return lu_fail(LU_EUNSUPPORTED, "%s: a legacy (pre-1.6, non-zip) torch file: Lunet reads the zip format only; re-save it with a current torch.save", path);
  }
  loader ld = {0};
  LU_TRY(lu_zip_open(path, &ld.z));
  int pk = -1;
  for (int i = 0; i < ld.z->n; i++) {
    const char *nm = ld.z->e[i].name;
    size_t l = strlen(nm);
    if (l >= 8 && !strcmp(nm + l - 8, "data.pkl") && (l == 8 || nm[l - 9] == '/') && l - 8 < sizeof ld.prefix) {
      const char *slash = strchr(nm, '/');
      if (l == 8 || slash == nm + l - 9) { /* "data.pkl" or "<one folder>/data.pkl" */
        memcpy(ld.prefix, nm, l - 8);
        ld.prefix[l - 8] = 0;
        pk = i;
        break;
      }
    }
  }
  lu_status st = LU_OK;
  void *buf = NULL;
  size_t n = 0;
  if (pk < 0) st = lu_fail(LU_EFORMAT, "%s: not a torch checkpoint (the zip holds no <archive>/data.pkl)", path);
  if (st == LU_OK) st = lu_zip_read(ld.z, pk, PKL_MAX, &buf, &n);
  if (st == LU_OK) {
    lu_pickle_opts o = {0};
    o.where = path;
    o.symbolic = symbolic;
    o.persid = persid;
    o.persid_ud = &ld;
    st = lu_unpickle(buf, n, &o, u, root);
  }
  free(buf);
  free(ld.seen);
  lu_zip_close(ld.z);
  return st;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ull; }
  return h;
}

lu_status lu_torch_save(const char *path, const void *pkl, size_t pkl_len, size_t n, const lu_torch_storage *st) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  char arch[512];
  snprintf(arch, sizeof arch, "%s", base);
  char *dot = strrchr(arch, '.');
  if (dot && dot != arch) *dot = 0;
  if (!arch[0]) snprintf(arch, sizeof arch, "archive");
  lu_zip_writer *w;
  LU_TRY(lu_zip_writer_open(path, &w));
  char name[700];
  lu_status s = LU_OK;
#define ADD(nm, d, len) do { if (s == LU_OK) { snprintf(name, sizeof name, "%s/%s", arch, nm); s = lu_zip_writer_add(w, name, d, len, 0, 64); } } while (0)
  ADD("data.pkl", pkl, pkl_len);
  ADD(".format_version", "1", 1);
  ADD(".storage_alignment", "64", 2);
  ADD("byteorder", "little", 6);
  uint64_t h1 = fnv(14695981039346656037ull, pkl, pkl_len), h2 = fnv(1469598103934665603ull ^ 0x5bd1e995, pkl, pkl_len);
  for (size_t i = 0; i < n && s == LU_OK; i++) {
    char key[64];
    snprintf(key, sizeof key, "data/%zu", i);
    ADD(key, st[i].data, st[i].nbytes);
    h1 = fnv(h1, st[i].data, st[i].nbytes);
    h2 = fnv(h2 ^ i, st[i].data, st[i].nbytes);
  }
  ADD("version", "3\n", 2);
  char sid[48];
  snprintf(sid, sizeof sid, "%020llu%020llu", (unsigned long long)(h1 % 10000000000000000000ull), (unsigned long long)(h2 % 10000000000000000000ull));
  ADD(".data/serialization_id", sid, 40);
#undef ADD
  if (s != LU_OK) { lu_zip_writer_abort(w); return s; }
  return lu_zip_writer_finish(w);
}
