/* The restricted unpickler and the pickler primitives (see pickle.h). The unpickler is the machine of
 * CPython's pickle.py (a value stack, a mark stack, a memo) without its one dangerous power: a GLOBAL
 * opcode can only name a callable from the table below, whose effect is implemented here. */
#include "fmt/pickle.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- dtypes ---------- */

static const struct { const char *name; size_t size; } k_pd[LU_PD_COUNT] = {
  [LU_PD_F32] = {"float32", 4}, [LU_PD_F16] = {"float16", 2}, [LU_PD_BF16] = {"bfloat16", 2},
  [LU_PD_F64] = {"float64", 8}, [LU_PD_I64] = {"int64", 8}, [LU_PD_I32] = {"int32", 4},
  [LU_PD_I16] = {"int16", 2}, [LU_PD_I8] = {"int8", 1}, [LU_PD_U8] = {"uint8", 1},
  [LU_PD_BOOL] = {"bool", 1}, [LU_PD_U16] = {"uint16", 2}, [LU_PD_U32] = {"uint32", 4},
  [LU_PD_U64] = {"uint64", 8},
};
const char *lu_pdtype_name(lu_pdtype d) { return d < LU_PD_COUNT ? k_pd[d].name : "?"; }
size_t lu_pdtype_size(lu_pdtype d) { return d < LU_PD_COUNT ? k_pd[d].size : 0; }
int lu_pdtype_parse(const char *name, lu_pdtype *out) {
  for (int i = 0; i < LU_PD_COUNT; i++)
    if (!strcmp(name, k_pd[i].name)) { *out = (lu_pdtype)i; return 1; }
  return 0;
}

/* ---------- the allow-list ---------- */

enum {
  G_SYMBOLIC = 0, G_ODICT, G_REBUILD_V2, G_REBUILD, G_PARAM, G_PARAM_STATE, G_STORAGE, G_DEVICE,
  G_NP_RECONSTRUCT, G_NP_NDARRAY, G_NP_DTYPE, G_NP_SCALAR, G_NP_FROMBUFFER, G_CODECS_ENCODE,
  G_SET, G_FROZENSET, G_BYTES, G_BYTEARRAY,
};

static const struct { const char *module, *name; int gid, dtype; } k_globals[] = {
  {"collections", "OrderedDict", G_ODICT, 0},
  {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, 0},
  {"torch._utils", "_rebuild_tensor", G_REBUILD, 0},
  {"torch._utils", "_rebuild_parameter", G_PARAM, 0},
  {"torch._utils", "_rebuild_parameter_with_state", G_PARAM_STATE, 0},
  {"torch", "FloatStorage", G_STORAGE, LU_PD_F32},
  {"torch", "HalfStorage", G_STORAGE, LU_PD_F16},
  {"torch", "BFloat16Storage", G_STORAGE, LU_PD_BF16},
  {"torch", "DoubleStorage", G_STORAGE, LU_PD_F64},
  {"torch", "LongStorage", G_STORAGE, LU_PD_I64},
  {"torch", "IntStorage", G_STORAGE, LU_PD_I32},
  {"torch", "ShortStorage", G_STORAGE, LU_PD_I16},
  {"torch", "CharStorage", G_STORAGE, LU_PD_I8},
  {"torch", "ByteStorage", G_STORAGE, LU_PD_U8},
  {"torch", "BoolStorage", G_STORAGE, LU_PD_BOOL},
  {"torch", "device", G_DEVICE, 0},
  {"numpy.core.multiarray", "_reconstruct", G_NP_RECONSTRUCT, 0},
  {"numpy._core.multiarray", "_reconstruct", G_NP_RECONSTRUCT, 0},
  {"numpy", "ndarray", G_NP_NDARRAY, 0},
  {"numpy", "dtype", G_NP_DTYPE, 0},
  {"numpy.core.multiarray", "scalar", G_NP_SCALAR, 0},
  {"numpy._core.multiarray", "scalar", G_NP_SCALAR, 0},
  {"numpy.core.numeric", "_frombuffer", G_NP_FROMBUFFER, 0},
  {"numpy._core.numeric", "_frombuffer", G_NP_FROMBUFFER, 0},
  {"_codecs", "encode", G_CODECS_ENCODE, 0},
  {"builtins", "set", G_SET, 0}, {"__builtin__", "set", G_SET, 0},
  {"builtins", "frozenset", G_FROZENSET, 0}, {"__builtin__", "frozenset", G_FROZENSET, 0},
  {"builtins", "bytes", G_BYTES, 0}, {"__builtin__", "bytes", G_BYTES, 0},
  {"builtins", "bytearray", G_BYTEARRAY, 0}, {"__builtin__", "bytearray", G_BYTEARRAY, 0},
};

/* ---------- the machine ---------- */

struct lu_unpickler {
  const unsigned char *p, *end, *start;
  const lu_pickle_opts *o;
  const char *where;
  lu_pv *arena;
  size_t made, max_items, max_depth;
  lu_pv **stack;
  size_t sn, scap;
  size_t *marks;
  size_t mn, mcap;
  lu_pv **memo;
  size_t memo_cap, memo_count;
  int proto;
};

static lu_status bad(lu_unpickler *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lu_status bad(lu_unpickler *u, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lu_fail(LU_EFORMAT, "%s: %s (pickle offset %zu)", u->where, msg, (size_t)(u->p - u->start));
}

lu_pv *lu_pv_new(lu_unpickler *u, lu_pv_kind kind) {
  if (u->made >= u->max_items) return NULL;
  lu_pv *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->kind = kind;
  v->next = u->arena;
  u->arena = v;
  u->made++;
  return v;
}

static lu_status oom(lu_unpickler *u) {
  if (u->made >= u->max_items) return bad(u, "more than %zu values", u->max_items);
  return lu_fail(LU_ENOMEM, "%s: no memory while unpickling", u->where);
}

#define NEWV(var, kind) lu_pv *var = lu_pv_new(u, kind); if (!var) return oom(u)

static void pv_free(lu_pv *v) {
  free(v->s);
  free(v->items);
  free(v->shape);
  free(v->stride);
  free(v->data);
  free(v);
}

void lu_unpickler_free(lu_unpickler *u) {
  if (!u) return;
  for (lu_pv *v = u->arena, *nx; v; v = nx) { nx = v->next; pv_free(v); }
  free(u->stack);
  free(u->marks);
  free(u->memo);
  free(u);
}

static lu_status push(lu_unpickler *u, lu_pv *v) {
  if (u->sn == u->scap) {
    if (u->scap >= u->max_items) return bad(u, "stack grows past %zu values", u->max_items);
    size_t nc = u->scap ? 2 * u->scap : 64;
    lu_pv **ns = realloc(u->stack, nc * sizeof *ns);
    if (!ns) return oom(u);
    u->stack = ns;
    u->scap = nc;
  }
  u->stack[u->sn++] = v;
  return LU_OK;
}

static lu_status pop(lu_unpickler *u, lu_pv **v) {
  if (u->sn == 0 || (u->mn && u->sn <= u->marks[u->mn - 1])) return bad(u, "stack underflow");
  *v = u->stack[--u->sn];
  return LU_OK;
}

static lu_status top(lu_unpickler *u, lu_pv **v) {
  if (u->sn == 0 || (u->mn && u->sn <= u->marks[u->mn - 1])) return bad(u, "stack underflow");
  *v = u->stack[u->sn - 1];
  return LU_OK;
}

/* Pops to the last mark: the items are u->stack[*first .. u->sn) until the next push. */
static lu_status pop_mark(lu_unpickler *u, size_t *first) {
  if (u->mn == 0) return bad(u, "no MARK on the stack");
  *first = u->marks[--u->mn];
  return LU_OK;
}

static lu_status add_item(lu_unpickler *u, lu_pv *c, lu_pv *x) {
  if (c->n == c->cap) {
    size_t nc = c->cap ? 2 * c->cap : 4;
    lu_pv **ni = realloc(c->items, nc * sizeof *ni);
    if (!ni) return oom(u);
    c->items = ni;
    c->cap = nc;
  }
  c->items[c->n++] = x;
  return LU_OK;
}

static lu_status need(lu_unpickler *u, uint64_t k) {
  if ((uint64_t)(u->end - u->p) < k) return bad(u, "truncated pickle (needs %llu more bytes)", (unsigned long long)k);
  return LU_OK;
}

static uint64_t le(const unsigned char *p, int k) {
  uint64_t v = 0;
  for (int i = k - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static lu_status mkstr(lu_unpickler *u, lu_pv_kind kind, const void *s, size_t n, lu_pv **out) {
  NEWV(v, kind);
  v->s = malloc(n + 1);
  if (!v->s) return oom(u);
  memcpy(v->s, s, n);
  v->s[n] = 0;
  v->len = n;
  *out = v;
  return LU_OK;
}

static lu_status mkint(lu_unpickler *u, int64_t i, lu_pv **out) {
  NEWV(v, LU_PV_INT);
  v->i = i;
  *out = v;
  return LU_OK;
}

/* Dict: set key (replacing an equal key's value). Keys compare by kind and value (str, int, float, bool, None). */
static int key_eq(const lu_pv *a, const lu_pv *b) {
  if (a == b) return 1;
  if (a->kind == LU_PV_STR && b->kind == LU_PV_STR) return a->len == b->len && !memcmp(a->s, b->s, a->len);
  if (a->kind == LU_PV_INT && b->kind == LU_PV_INT) return a->i == b->i;
  if (a->kind == LU_PV_BOOL && b->kind == LU_PV_BOOL) return a->flag == b->flag;
  if (a->kind == LU_PV_NONE && b->kind == LU_PV_NONE) return 1;
  if (a->kind == LU_PV_FLOAT && b->kind == LU_PV_FLOAT) return a->f == b->f;
  return 0;
}

static lu_status dict_set(lu_unpickler *u, lu_pv *d, lu_pv *k, lu_pv *v) {
  if (d->kind != LU_PV_DICT) return bad(u, "SETITEM on a value that is not a dict");
  /* linear search only for small dicts; big dicts take appended keys as they come (pickle.py never
   * writes duplicates) */
  if (d->n <= 64)
    for (size_t i = 0; i < d->n; i += 2)
      if (key_eq(d->items[i], k)) { d->items[i + 1] = v; return LU_OK; }
  LU_TRY(add_item(u, d, k));
  return add_item(u, d, v);
}

static lu_status memo_put(lu_unpickler *u, uint64_t idx) {
  lu_pv *v = NULL;
  LU_TRY(top(u, &v));
  /* a pickle stores at most one memo entry per opcode: larger indices are hostile */
  if (idx >= u->max_items || idx > (uint64_t)(u->end - u->start)) return bad(u, "memo index %llu is implausible", (unsigned long long)idx);
  if (idx >= u->memo_cap) {
    size_t nc = u->memo_cap ? u->memo_cap : 64;
    while (nc <= idx) nc *= 2;
    lu_pv **nm = realloc(u->memo, nc * sizeof *nm);
    if (!nm) return oom(u);
    memset(nm + u->memo_cap, 0, (nc - u->memo_cap) * sizeof *nm);
    u->memo = nm;
    u->memo_cap = nc;
  }
  if (!u->memo[idx]) u->memo_count++;
  u->memo[idx] = v;
  return LU_OK;
}

static lu_status memo_get(lu_unpickler *u, uint64_t idx) {
  if (idx >= u->memo_cap || !u->memo[idx]) return bad(u, "memo entry %llu is missing", (unsigned long long)idx);
  return push(u, u->memo[idx]);
}

static lu_status find_global(lu_unpickler *u, const char *mod, size_t ml, const char *name, size_t nl) {
  char full[512];
  if (ml + nl + 2 > sizeof full) return bad(u, "global name too long");
  if (memchr(mod, 0, ml) || memchr(name, 0, nl)) return bad(u, "global name holds a nul byte");
  memcpy(full, mod, ml);
  full[ml] = '.';
  memcpy(full + ml + 1, name, nl);
  full[ml + 1 + nl] = 0;
  NEWV(g, LU_PV_GLOBAL);
  g->s = malloc(ml + nl + 2);
  if (!g->s) return oom(u);
  memcpy(g->s, mod, ml);
  g->s[ml] = '\n';
  memcpy(g->s + ml + 1, name, nl);
  g->s[ml + 1 + nl] = 0;
  g->len = ml + 1 + nl;
  for (size_t i = 0; i < sizeof k_globals / sizeof k_globals[0]; i++)
    if (strlen(k_globals[i].module) == ml && !memcmp(k_globals[i].module, mod, ml) && strlen(k_globals[i].name) == nl &&
        !memcmp(k_globals[i].name, name, nl)) {
      g->gid = k_globals[i].gid;
      g->dtype = k_globals[i].dtype;
      return push(u, g);
    }
  if (u->o && u->o->symbolic)
    for (const char *const *s = u->o->symbolic; *s; s++)
      if (!strcmp(*s, full)) return push(u, g);
  return lu_fail(LU_EFORMAT, "%s: the pickle names the global %s, which Lunet does not load (only tensors and plain values are allowed)", u->where, full);
}

static const char *gname(const lu_pv *g, char *buf, size_t n) {
  snprintf(buf, n, "%s", g->s ? g->s : "?");
  char *nl = strchr(buf, '\n');
  if (nl) *nl = '.';
  return buf;
}

static int is_int(const lu_pv *v) { return v->kind == LU_PV_INT || v->kind == LU_PV_BOOL; }
static int64_t int_of(const lu_pv *v) { return v->kind == LU_PV_BOOL ? v->flag : v->i; }

/* A tuple of ints (or a list) into a freshly allocated array. */
static lu_status int_tuple(lu_unpickler *u, const lu_pv *t, const char *what, int64_t **out, int *n) {
  if ((t->kind != LU_PV_TUPLE && t->kind != LU_PV_LIST) || t->n > LU_PICKLE_MAX_DIMS) return bad(u, "%s is not a tuple of at most %d integers", what, LU_PICKLE_MAX_DIMS);
  int64_t *a = calloc(t->n ? t->n : 1, sizeof *a);
  if (!a) return oom(u);
  for (size_t i = 0; i < t->n; i++) {
    if (!is_int(t->items[i])) { free(a); return bad(u, "%s is not a tuple of integers", what); }
    a[i] = int_of(t->items[i]);
  }
  *out = a;
  *n = (int)t->n;
  return LU_OK;
}

/* Builds a tensor view of storage st; checks it stays inside the storage. */
static lu_status make_tensor(lu_unpickler *u, lu_pv *st, const lu_pv *off, const lu_pv *size, const lu_pv *stride, lu_pv **out) {
  if (st->kind != LU_PV_STORAGE) return bad(u, "_rebuild_tensor_v2: the first argument is not a storage");
  if (!is_int(off) || int_of(off) < 0 || int_of(off) > ((int64_t)1 << 48)) return bad(u, "_rebuild_tensor_v2: bad storage offset");
  NEWV(t, LU_PV_TENSOR);
  int ns = 0;
  LU_TRY(int_tuple(u, size, "tensor size", &t->shape, &t->ndim));
  LU_TRY(int_tuple(u, stride, "tensor stride", &t->stride, &ns));
  if (ns != t->ndim) return bad(u, "tensor size and stride differ in length (%d, %d)", t->ndim, ns);
  /* sizes, strides and the element count stay below 2^48, so no product below overflows */
  int64_t last = int_of(off), empty = 0, numel = 1;
  const int64_t lim = (int64_t)1 << 48;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] < 0 || t->stride[d] < 0 || t->shape[d] > lim || t->stride[d] > lim) return bad(u, "tensor size or stride out of range");
    if (t->shape[d] == 0) empty = 1;
    else {
      if (numel > lim / t->shape[d]) return bad(u, "tensor of more than 2^48 elements");
      numel *= t->shape[d];
      if (t->stride[d] && t->shape[d] - 1 > (lim - last) / t->stride[d]) return bad(u, "tensor view out of range");
      last += (t->shape[d] - 1) * t->stride[d];
    }
  }
  if (!empty && last >= st->i) return bad(u, "tensor reaches element %lld of a storage of %lld elements", (long long)last, (long long)st->i);
  t->i = int_of(off);
  t->dtype = st->dtype;
  LU_TRY(add_item(u, t, st));
  *out = t;
  return LU_OK;
}

static lu_status latin1(lu_unpickler *u, const lu_pv *s, lu_pv **out) {
  /* str (UTF-8) -> bytes: each code point must be < 256 */
  NEWV(b, LU_PV_BYTES);
  b->s = malloc(s->len + 1);
  if (!b->s) return oom(u);
  size_t k = 0;
  for (size_t i = 0; i < s->len;) {
    unsigned char c = (unsigned char)s->s[i];
    if (c < 0x80) { b->s[k++] = (char)c; i++; }
    else if ((c & 0xE0) == 0xC0 && i + 1 < s->len && c <= 0xC3) { b->s[k++] = (char)(((c & 0x1F) << 6) | (s->s[i + 1] & 0x3F)); i += 2; }
    else return bad(u, "_codecs.encode: the string is not latin-1");
  }
  b->s[k] = 0;
  b->len = k;
  *out = b;
  return LU_OK;
}

static const struct { const char *code; int dt; } k_np[] = {
  {"f4", LU_PD_F32}, {"f2", LU_PD_F16}, {"f8", LU_PD_F64}, {"i8", LU_PD_I64}, {"i4", LU_PD_I32},
  {"i2", LU_PD_I16}, {"i1", LU_PD_I8}, {"u1", LU_PD_U8}, {"b1", LU_PD_BOOL}, {"u2", LU_PD_U16},
  {"u4", LU_PD_U32}, {"u8", LU_PD_U64},
};

static lu_status np_array_data(lu_unpickler *u, lu_pv *a, const lu_pv *data) {
  if (data->kind != LU_PV_BYTES) return bad(u, "numpy array data is not bytes (object arrays are not loaded)");
  int64_t numel = 1;
  for (int d = 0; d < a->ndim; d++) {
    if (a->shape[d] < 0 || (a->shape[d] && numel > INT64_MAX / a->shape[d])) return bad(u, "numpy array shape out of range");
    numel *= a->shape[d];
  }
  size_t es = lu_pdtype_size((lu_pdtype)a->dtype);
  if ((uint64_t)numel > data->len / es || (uint64_t)numel * es != data->len)
    return bad(u, "numpy array of %lld elements of %zu bytes holds %zu bytes", (long long)numel, es, data->len);
  a->data = malloc(data->len ? data->len : 1);
  if (!a->data) return oom(u);
  memcpy(a->data, data->s, data->len);
  a->nbytes = data->len;
  return LU_OK;
}

/* Calls the allow-listed callable g with the tuple args (REDUCE, NEWOBJ). */
static lu_status call(lu_unpickler *u, lu_pv *g, lu_pv *args, lu_pv **out) {
  char nb[512];
  if (g->kind != LU_PV_GLOBAL) return bad(u, "REDUCE on a value that is not callable");
  if (args->kind != LU_PV_TUPLE) return bad(u, "REDUCE arguments are not a tuple");
  lu_pv **a = args->items;
  size_t n = args->n;
  switch (g->gid) {
  case G_ODICT: {
    NEWV(d, LU_PV_DICT);
    d->flag = 1;
    if (n == 1 && (a[0]->kind == LU_PV_LIST || a[0]->kind == LU_PV_TUPLE)) {
      for (size_t i = 0; i < a[0]->n; i++) {
        lu_pv *kv = a[0]->items[i];
        if ((kv->kind != LU_PV_TUPLE && kv->kind != LU_PV_LIST) || kv->n != 2) return bad(u, "OrderedDict items are not pairs");
        LU_TRY(dict_set(u, d, kv->items[0], kv->items[1]));
      }
    } else if (n != 0) return bad(u, "OrderedDict called with unexpected arguments");
    *out = d;
    return LU_OK;
  }
  case G_REBUILD_V2:
    if (n < 6 || n > 7) return bad(u, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", n);
    LU_TRY(make_tensor(u, a[0], a[1], a[2], a[3], out));
    (*out)->flag = a[4]->kind == LU_PV_BOOL && a[4]->flag;
    return LU_OK;
  case G_REBUILD:
    if (n != 4) return bad(u, "_rebuild_tensor takes 4 arguments, got %zu", n);
    return make_tensor(u, a[0], a[1], a[2], a[3], out);
  case G_PARAM:
  case G_PARAM_STATE: {
    if (n < 3 || a[0]->kind != LU_PV_TENSOR) return bad(u, "_rebuild_parameter: expected (tensor, requires_grad, hooks)");
    NEWV(t, LU_PV_TENSOR);
    lu_pv *s = a[0];
    t->i = s->i;
    t->dtype = s->dtype;
    t->ndim = s->ndim;
    t->shape = malloc(sizeof(int64_t) * (size_t)(s->ndim ? s->ndim : 1));
    t->stride = malloc(sizeof(int64_t) * (size_t)(s->ndim ? s->ndim : 1));
    if (!t->shape || !t->stride) return oom(u);
    memcpy(t->shape, s->shape, sizeof(int64_t) * (size_t)s->ndim);
    memcpy(t->stride, s->stride, sizeof(int64_t) * (size_t)s->ndim);
    LU_TRY(add_item(u, t, s->items[0]));
    t->flag = a[1]->kind == LU_PV_BOOL && a[1]->flag;
    *out = t;
    return LU_OK;
  }
  case G_DEVICE: {
    if (n < 1 || n > 2 || a[0]->kind != LU_PV_STR) return bad(u, "torch.device: expected (type[, index])");
    NEWV(d, LU_PV_DEVICE);
    d->i = -1;
    const char *colon = strchr(a[0]->s, ':');
    size_t tl = colon ? (size_t)(colon - a[0]->s) : a[0]->len;
    if (colon) {
      char *end;
      long long ix = strtoll(colon + 1, &end, 10);
      if (end == colon + 1 || *end || ix < 0) return bad(u, "torch.device: bad device string");
      d->i = ix;
    }
    if (n == 2) {
      if (a[1]->kind == LU_PV_INT) d->i = a[1]->i;
      else if (a[1]->kind != LU_PV_NONE) return bad(u, "torch.device: bad index");
    }
    d->s = malloc(tl + 1);
    if (!d->s) return oom(u);
    memcpy(d->s, a[0]->s, tl);
    d->s[tl] = 0;
    d->len = tl;
    *out = d;
    return LU_OK;
  }
  case G_NP_RECONSTRUCT: {
    if (n != 3 || a[0]->kind != LU_PV_GLOBAL || a[0]->gid != G_NP_NDARRAY) return bad(u, "numpy _reconstruct: only numpy.ndarray is rebuilt");
    NEWV(v, LU_PV_NDARRAY);
    v->dtype = -1;
    *out = v;
    return LU_OK;
  }
  case G_NP_DTYPE: {
    if (n < 1 || a[0]->kind != LU_PV_STR) return bad(u, "numpy.dtype: expected a type code");
    NEWV(v, LU_PV_DTYPE);
    v->dtype = -1;
    for (size_t i = 0; i < sizeof k_np / sizeof k_np[0]; i++)
      if (!strcmp(a[0]->s, k_np[i].code)) v->dtype = k_np[i].dt;
    if (v->dtype < 0) return bad(u, "numpy dtype '%.40s' is not supported", a[0]->s);
    *out = v;
    return LU_OK;
  }
  case G_NP_SCALAR: {
    if (n != 2 || a[0]->kind != LU_PV_DTYPE || a[1]->kind != LU_PV_BYTES) return bad(u, "numpy scalar: expected (dtype, bytes)");
    int dt = a[0]->dtype;
    size_t es = lu_pdtype_size((lu_pdtype)dt);
    if (a[1]->len != es) return bad(u, "numpy scalar of %zu bytes for a %zu-byte dtype", a[1]->len, es);
    const unsigned char *b = (const unsigned char *)a[1]->s;
    uint64_t raw = le(b, (int)es);
    lu_pv *v = NULL;
    switch (dt) {
    case LU_PD_F64: { double d; memcpy(&d, &raw, 8); v = lu_pv_new(u, LU_PV_FLOAT); if (!v) return oom(u); v->f = d; break; }
    case LU_PD_F32: { float f; uint32_t r32 = (uint32_t)raw; memcpy(&f, &r32, 4); v = lu_pv_new(u, LU_PV_FLOAT); if (!v) return oom(u); v->f = f; break; }
    case LU_PD_F16: {
      unsigned h = (unsigned)raw, e = (h >> 10) & 31, m = h & 1023;
      double f = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, (int)e - 25);
      v = lu_pv_new(u, LU_PV_FLOAT); if (!v) return oom(u); v->f = (h & 0x8000) ? -f : f; break;
    }
    case LU_PD_BOOL: v = lu_pv_new(u, LU_PV_BOOL); if (!v) return oom(u); v->flag = raw != 0; break;
    case LU_PD_U64: if (raw > INT64_MAX) return bad(u, "numpy uint64 scalar out of int64 range"); /* fall through */
    default: {
      int64_t i = (int64_t)raw;
      if (dt == LU_PD_I8) i = (int8_t)raw;
      else if (dt == LU_PD_I16) i = (int16_t)raw;
      else if (dt == LU_PD_I32) i = (int32_t)raw;
      LU_TRY(mkint(u, i, &v));
    }
    }
    *out = v;
    return LU_OK;
  }
  case G_NP_FROMBUFFER: {
    if (n != 4 || a[0]->kind != LU_PV_BYTES || a[1]->kind != LU_PV_DTYPE || a[3]->kind != LU_PV_STR) return bad(u, "numpy _frombuffer: expected (bytes, dtype, shape, order)");
    NEWV(v, LU_PV_NDARRAY);
    v->dtype = a[1]->dtype;
    LU_TRY(int_tuple(u, a[2], "numpy shape", &v->shape, &v->ndim));
    v->flag = a[3]->s[0] == 'F';
    LU_TRY(np_array_data(u, v, a[0]));
    *out = v;
    return LU_OK;
  }
  case G_CODECS_ENCODE:
    if (n != 2 || a[0]->kind != LU_PV_STR || a[1]->kind != LU_PV_STR || (strcmp(a[1]->s, "latin1") && strcmp(a[1]->s, "latin-1")))
      return bad(u, "_codecs.encode: only (str, 'latin1') is accepted");
    return latin1(u, a[0], out);
  case G_BYTES:
  case G_BYTEARRAY:
    if (n == 0) return mkstr(u, LU_PV_BYTES, "", 0, out);
    if (g->gid == G_BYTEARRAY && n == 2 && a[0]->kind == LU_PV_STR && a[1]->kind == LU_PV_STR) return latin1(u, a[0], out);
    if (n == 1 && a[0]->kind == LU_PV_BYTES) { *out = a[0]; return LU_OK; }
    return bad(u, "bytes called with unexpected arguments");
  case G_SET:
  case G_FROZENSET: {
    NEWV(s, LU_PV_SET);
    s->flag = g->gid == G_FROZENSET;
    if (n == 1 && (a[0]->kind == LU_PV_LIST || a[0]->kind == LU_PV_TUPLE || a[0]->kind == LU_PV_SET)) {
      for (size_t i = 0; i < a[0]->n; i++) LU_TRY(add_item(u, s, a[0]->items[i]));
    } else if (n != 0) return bad(u, "set called with unexpected arguments");
    *out = s;
    return LU_OK;
  }
  default:
    return bad(u, "the pickle calls %s, which Lunet does not do", gname(g, nb, sizeof nb));
  }
}

static lu_status build(lu_unpickler *u, lu_pv *obj, lu_pv *state) {
  if (obj->kind == LU_PV_DICT) return LU_OK; /* OrderedDict attributes (torch's _metadata): dropped */
  if (obj->kind == LU_PV_TENSOR) return LU_OK; /* _rebuild_parameter_with_state's state: dropped */
  if (obj->kind == LU_PV_DTYPE) {
    if (state->kind != LU_PV_TUPLE || state->n < 2 || state->items[1]->kind != LU_PV_STR) return bad(u, "numpy dtype: unexpected state");
    const char *bo = state->items[1]->s;
    if (!strcmp(bo, ">") && lu_pdtype_size((lu_pdtype)obj->dtype) > 1) return bad(u, "big-endian numpy data is not supported");
    if (state->n >= 4 && state->items[3]->kind != LU_PV_NONE) return bad(u, "structured numpy dtypes are not supported");
    return LU_OK;
  }
  if (obj->kind == LU_PV_NDARRAY && obj->dtype < 0) {
    if (state->kind != LU_PV_TUPLE || state->n != 5 || state->items[2]->kind != LU_PV_DTYPE) return bad(u, "numpy array: unexpected state");
    obj->dtype = state->items[2]->dtype;
    LU_TRY(int_tuple(u, state->items[1], "numpy shape", &obj->shape, &obj->ndim));
    obj->flag = state->items[3]->kind == LU_PV_BOOL && state->items[3]->flag;
    return np_array_data(u, obj, state->items[4]);
  }
  char nb[512];
  if (obj->kind == LU_PV_GLOBAL) return bad(u, "BUILD on the global %s", gname(obj, nb, sizeof nb));
  return bad(u, "BUILD on a value that takes no state");
}

static lu_status make_seq(lu_unpickler *u, lu_pv_kind kind, size_t first, lu_pv **out) {
  NEWV(t, kind);
  size_t k = u->sn - first;
  if (k) {
    t->items = malloc(k * sizeof *t->items);
    if (!t->items) return oom(u);
    memcpy(t->items, u->stack + first, k * sizeof *t->items);
  }
  t->n = t->cap = k;
  u->sn = first;
  *out = t;
  return LU_OK;
}

static lu_status run(lu_unpickler *u, lu_pv **root) {
  for (;;) {
    LU_TRY(need(u, 1));
    unsigned op = *u->p++;
    lu_pv *v = NULL, *x = NULL, *y = NULL;
    size_t first = 0;
    uint64_t len;
    switch (op) {
    case 0x80: /* PROTO */
      LU_TRY(need(u, 1));
      u->proto = *u->p++;
      if (u->proto > 5) return bad(u, "pickle protocol %d is not supported (2..5 are)", u->proto);
      break;
    case 0x95: /* FRAME: a length hint */
      LU_TRY(need(u, 8));
      u->p += 8;
      break;
    case '.': /* STOP */
      LU_TRY(pop(u, root));
      return LU_OK;
    case 'N': { NEWV(nv, LU_PV_NONE); LU_TRY(push(u, nv)); break; }
    case 0x88: case 0x89: { NEWV(b, LU_PV_BOOL); b->flag = op == 0x88; LU_TRY(push(u, b)); break; }
    case 'K': LU_TRY(need(u, 1)); LU_TRY(mkint(u, u->p[0], &v)); u->p += 1; LU_TRY(push(u, v)); break;
    case 'M': LU_TRY(need(u, 2)); LU_TRY(mkint(u, (int64_t)le(u->p, 2), &v)); u->p += 2; LU_TRY(push(u, v)); break;
    case 'J': LU_TRY(need(u, 4)); LU_TRY(mkint(u, (int32_t)(uint32_t)le(u->p, 4), &v)); u->p += 4; LU_TRY(push(u, v)); break;
    case 0x8a: case 0x8b: { /* LONG1, LONG4 */
      int w = op == 0x8a ? 1 : 4;
      LU_TRY(need(u, (uint64_t)w));
      len = le(u->p, w);
      u->p += w;
      LU_TRY(need(u, len));
      const unsigned char *b = u->p;
      u->p += len;
      int64_t val = 0;
      if (len > 0) {
        int neg = b[len - 1] & 0x80;
        for (uint64_t i = 8; i < len; i++)
          if (b[i] != (neg ? 0xFF : 0x00)) return bad(u, "integer out of the int64 range");
        uint64_t r = 0;
        uint64_t k = len < 8 ? len : 8;
        for (uint64_t i = k; i-- > 0;) r = r << 8 | b[i];
        if (k < 8 && neg) r |= ~(uint64_t)0 << (8 * k);
        if (len > 8 && ((r >> 63) != 0) != (neg != 0)) return bad(u, "integer out of the int64 range");
        memcpy(&val, &r, 8);
      }
      LU_TRY(mkint(u, val, &v));
      LU_TRY(push(u, v));
      break;
    }
    case 'G': {
      LU_TRY(need(u, 8));
      uint64_t r = 0;
      for (int i = 0; i < 8; i++) r = r << 8 | u->p[i];
      u->p += 8;
      NEWV(f, LU_PV_FLOAT);
      memcpy(&f->f, &r, 8);
      LU_TRY(push(u, f));
      break;
    }
    case 'X': case 0x8c: case 0x8d: case 'B': case 'C': case 0x8e: case 0x96: {
      int w = (op == 0x8c || op == 'C') ? 1 : (op == 'X' || op == 'B') ? 4 : 8;
      LU_TRY(need(u, (uint64_t)w));
      len = le(u->p, w);
      u->p += w;
      LU_TRY(need(u, len));
      int is_str = op == 'X' || op == 0x8c || op == 0x8d;
      LU_TRY(mkstr(u, is_str ? LU_PV_STR : LU_PV_BYTES, u->p, (size_t)len, &v));
      u->p += len;
      LU_TRY(push(u, v));
      break;
    }
    case ']': { NEWV(l, LU_PV_LIST); LU_TRY(push(u, l)); break; }
    case ')': { NEWV(t0, LU_PV_TUPLE); LU_TRY(push(u, t0)); break; }
    case '}': { NEWV(d0, LU_PV_DICT); LU_TRY(push(u, d0)); break; }
    case 0x8f: { NEWV(s0, LU_PV_SET); LU_TRY(push(u, s0)); break; }
    case '(':
      if (u->mn >= u->max_depth) return bad(u, "marks nest deeper than %zu", u->max_depth);
      if (u->mn == u->mcap) {
        size_t nc = u->mcap ? 2 * u->mcap : 32;
        size_t *nm = realloc(u->marks, nc * sizeof *nm);
        if (!nm) return oom(u);
        u->marks = nm;
        u->mcap = nc;
      }
      u->marks[u->mn++] = u->sn;
      break;
    case 't': LU_TRY(pop_mark(u, &first)); LU_TRY(make_seq(u, LU_PV_TUPLE, first, &v)); LU_TRY(push(u, v)); break;
    case 'l': LU_TRY(pop_mark(u, &first)); LU_TRY(make_seq(u, LU_PV_LIST, first, &v)); LU_TRY(push(u, v)); break;
    case 0x91: LU_TRY(pop_mark(u, &first)); LU_TRY(make_seq(u, LU_PV_SET, first, &v)); v->flag = 1; LU_TRY(push(u, v)); break;
    case 0x85: case 0x86: case 0x87: {
      size_t k = op - 0x84;
      if (u->sn < k || (u->mn && u->sn - k < u->marks[u->mn - 1])) return bad(u, "stack underflow");
      LU_TRY(make_seq(u, LU_PV_TUPLE, u->sn - k, &v));
      LU_TRY(push(u, v));
      break;
    }
    case 'd': {
      LU_TRY(pop_mark(u, &first));
      if ((u->sn - first) % 2) return bad(u, "DICT with an odd number of items");
      NEWV(d, LU_PV_DICT);
      for (size_t i = first; i < u->sn; i += 2) LU_TRY(dict_set(u, d, u->stack[i], u->stack[i + 1]));
      u->sn = first;
      LU_TRY(push(u, d));
      break;
    }
    case 'a':
      LU_TRY(pop(u, &x));
      LU_TRY(top(u, &v));
      if (v->kind != LU_PV_LIST) return bad(u, "APPEND to a value that is not a list");
      LU_TRY(add_item(u, v, x));
      break;
    case 'e': case 0x90: /* APPENDS, ADDITEMS */
      LU_TRY(pop_mark(u, &first));
      if (first == 0 || (u->mn && first <= u->marks[u->mn - 1])) return bad(u, "stack underflow");
      v = u->stack[first - 1];
      if (v->kind != (op == 'e' ? LU_PV_LIST : LU_PV_SET) || (op == 0x90 && v->flag)) return bad(u, "%s to a value that is not a %s", op == 'e' ? "APPENDS" : "ADDITEMS", op == 'e' ? "list" : "set");
      for (size_t i = first; i < u->sn; i++) LU_TRY(add_item(u, v, u->stack[i]));
      u->sn = first;
      break;
    case 's':
      LU_TRY(pop(u, &y));
      LU_TRY(pop(u, &x));
      LU_TRY(top(u, &v));
      LU_TRY(dict_set(u, v, x, y));
      break;
    case 'u':
      LU_TRY(pop_mark(u, &first));
      if (first == 0 || (u->mn && first <= u->marks[u->mn - 1])) return bad(u, "stack underflow");
      if ((u->sn - first) % 2) return bad(u, "SETITEMS with an odd number of items");
      v = u->stack[first - 1];
      for (size_t i = first; i < u->sn; i += 2) LU_TRY(dict_set(u, v, u->stack[i], u->stack[i + 1]));
      u->sn = first;
      break;
    case '0': LU_TRY(pop(u, &x)); break;
    case '1': LU_TRY(pop_mark(u, &first)); u->sn = first; break;
    case '2': LU_TRY(top(u, &x)); LU_TRY(push(u, x)); break;
    case 'c': {
      const unsigned char *m = u->p, *mend = memchr(m, '\n', (size_t)(u->end - m));
      if (!mend) return bad(u, "truncated GLOBAL");
      const unsigned char *nm = mend + 1, *nend = memchr(nm, '\n', (size_t)(u->end - nm));
      if (!nend) return bad(u, "truncated GLOBAL");
      u->p = nend + 1;
      LU_TRY(find_global(u, (const char *)m, (size_t)(mend - m), (const char *)nm, (size_t)(nend - nm)));
      break;
    }
    case 0x93: /* STACK_GLOBAL */
      LU_TRY(pop(u, &y));
      LU_TRY(pop(u, &x));
      if (x->kind != LU_PV_STR || y->kind != LU_PV_STR) return bad(u, "STACK_GLOBAL needs two strings");
      LU_TRY(find_global(u, x->s, x->len, y->s, y->len));
      break;
    case 'R': case 0x81: /* REDUCE, NEWOBJ (the callables here treat both alike) */
      LU_TRY(pop(u, &y));
      LU_TRY(pop(u, &x));
      LU_TRY(call(u, x, y, &v));
      LU_TRY(push(u, v));
      break;
    case 0x92: { /* NEWOBJ_EX */
      lu_pv *kw = NULL;
      LU_TRY(pop(u, &kw));
      LU_TRY(pop(u, &y));
      LU_TRY(pop(u, &x));
      if (kw->kind != LU_PV_DICT || kw->n) return bad(u, "NEWOBJ_EX with keyword arguments");
      LU_TRY(call(u, x, y, &v));
      LU_TRY(push(u, v));
      break;
    }
    case 'b':
      LU_TRY(pop(u, &y));
      LU_TRY(top(u, &v));
      LU_TRY(build(u, v, y));
      break;
    case 'q': LU_TRY(need(u, 1)); len = u->p[0]; u->p += 1; LU_TRY(memo_put(u, len)); break;
    case 'r': LU_TRY(need(u, 4)); len = le(u->p, 4); u->p += 4; LU_TRY(memo_put(u, len)); break;
    case 0x94: LU_TRY(memo_put(u, u->memo_count)); break; /* MEMOIZE: index len(memo) */
    case 'h': LU_TRY(need(u, 1)); len = u->p[0]; u->p += 1; LU_TRY(memo_get(u, len)); break;
    case 'j': LU_TRY(need(u, 4)); len = le(u->p, 4); u->p += 4; LU_TRY(memo_get(u, len)); break;
    case 'Q': /* BINPERSID */
      LU_TRY(pop(u, &x));
      if (!u->o || !u->o->persid) return bad(u, "the pickle refers to external data (a persistent id); load it with torch_load");
      LU_TRY(u->o->persid(u->o->persid_ud, x, &v, u));
      LU_TRY(push(u, v));
      break;
    case 0x97: case 0x98: return bad(u, "out-of-band buffers are not supported");
    default:
      u->p--;
      return bad(u, "opcode 0x%02x is not supported (protocols 2 to 5 as Python writes them are)", op);
    }
  }
}

lu_status lu_unpickle(const void *buf, size_t n, const lu_pickle_opts *opts, lu_unpickler **out, lu_pv **root) {
  *out = NULL;
  *root = NULL;
  lu_unpickler *u = calloc(1, sizeof *u);
  if (!u) return lu_fail(LU_ENOMEM, "no memory");
  u->p = u->start = buf;
  u->end = u->p + n;
  u->o = opts;
  u->where = opts && opts->where ? opts->where : "pickle";
  u->max_depth = opts && opts->max_depth ? opts->max_depth : 1000;
  u->max_items = opts && opts->max_items ? opts->max_items : 50000000;
  lu_status st = run(u, root);
  if (st == LU_OK && u->sn != 0) st = bad(u, "%zu values left on the stack at STOP", u->sn);
  if (st != LU_OK) { lu_unpickler_free(u); *root = NULL; return st; }
  *out = u;
  return LU_OK;
}

/* ---------- pickler ---------- */

static void grow(lu_pickler *p, size_t k) {
  if (p->failed) return;
  if (p->n + k > p->cap) {
    size_t nc = p->cap ? p->cap : 256;
    while (nc < p->n + k) nc *= 2;
    unsigned char *nb = realloc(p->buf, nc);
    if (!nb) { p->failed = 1; return; }
    p->buf = nb;
    p->cap = nc;
  }
}

void lu_pk_raw(lu_pickler *p, const void *b, size_t n) {
  grow(p, n);
  if (p->failed) return;
  memcpy(p->buf + p->n, b, n);
  p->n += n;
}

void lu_pk_op(lu_pickler *p, unsigned char op) { lu_pk_raw(p, &op, 1); }

static void pk_le(lu_pickler *p, uint64_t v, int k) {
  unsigned char b[8];
  for (int i = 0; i < k; i++) b[i] = (unsigned char)(v >> (8 * i));
  lu_pk_raw(p, b, (size_t)k);
}

lu_status lu_pickler_init(lu_pickler *p, int proto) {
  memset(p, 0, sizeof *p);
  if (proto < 2 || proto > 5) return lu_fail(LU_EARG, "pickle protocol %d: 2..5 can be written", proto);
  p->proto = proto;
  lu_pk_op(p, 0x80);
  lu_pk_op(p, (unsigned char)proto);
  return p->failed ? lu_fail(LU_ENOMEM, "no memory") : LU_OK;
}

void lu_pickler_free(lu_pickler *p) { free(p->buf); memset(p, 0, sizeof *p); }

lu_status lu_pickler_done(lu_pickler *p) {
  lu_pk_op(p, '.');
  return p->failed ? lu_fail(LU_ENOMEM, "no memory while pickling") : LU_OK;
}

void lu_pk_none(lu_pickler *p) { lu_pk_op(p, 'N'); }
void lu_pk_bool(lu_pickler *p, int v) { lu_pk_op(p, v ? 0x88 : 0x89); }

void lu_pk_int(lu_pickler *p, int64_t v) {
  if (v >= 0 && v < 256) { lu_pk_op(p, 'K'); pk_le(p, (uint64_t)v, 1); }
  else if (v >= 0 && v < 65536) { lu_pk_op(p, 'M'); pk_le(p, (uint64_t)v, 2); }
  else if (v >= INT32_MIN && v <= INT32_MAX) { lu_pk_op(p, 'J'); pk_le(p, (uint64_t)(uint32_t)(int32_t)v, 4); }
  else {
    /* LONG1 with the fewest two's-complement bytes, as pickle.py's encode_long */
    uint64_t r = (uint64_t)v;
    int k = 8;
    while (k > 1) {
      int64_t s = (int64_t)(r << (64 - 8 * (k - 1))) >> (64 - 8 * (k - 1));
      if (s != v) break;
      k--;
    }
    lu_pk_op(p, 0x8a);
    pk_le(p, (uint64_t)k, 1);
    pk_le(p, r, k);
  }
}

void lu_pk_float(lu_pickler *p, double v) {
  uint64_t r;
  memcpy(&r, &v, 8);
  unsigned char b[9];
  b[0] = 'G';
  for (int i = 0; i < 8; i++) b[1 + i] = (unsigned char)(r >> (56 - 8 * i));
  lu_pk_raw(p, b, 9);
}

void lu_pk_str(lu_pickler *p, const char *s, size_t n) {
  if (p->proto >= 4 && n < 256) { lu_pk_op(p, 0x8c); pk_le(p, n, 1); }
  else if (n <= 0xFFFFFFFFu) { lu_pk_op(p, 'X'); pk_le(p, n, 4); }
  else { lu_pk_op(p, 0x8d); pk_le(p, n, 8); }
  lu_pk_raw(p, s, n);
}

void lu_pk_global(lu_pickler *p, const char *module, const char *name) {
  if (p->proto >= 4) {
    lu_pk_str(p, module, strlen(module));
    lu_pk_str(p, name, strlen(name));
    lu_pk_op(p, 0x93);
  } else {
    lu_pk_op(p, 'c');
    lu_pk_raw(p, module, strlen(module));
    lu_pk_op(p, '\n');
    lu_pk_raw(p, name, strlen(name));
    lu_pk_op(p, '\n');
  }
}

void lu_pk_bytes(lu_pickler *p, const void *s, size_t n) {
  if (p->proto >= 3) {
    if (n < 256) { lu_pk_op(p, 'C'); pk_le(p, n, 1); }
    else if (n <= 0xFFFFFFFFu) { lu_pk_op(p, 'B'); pk_le(p, n, 4); }
    else { lu_pk_op(p, 0x8e); pk_le(p, n, 8); }
    lu_pk_raw(p, s, n);
    return;
  }
  /* protocol 2, as pickle.py writes bytes there */
  if (n == 0) {
    lu_pk_global(p, "__builtin__", "bytes");
    lu_pk_op(p, ')');
    lu_pk_op(p, 'R');
    return;
  }
  lu_pk_global(p, "_codecs", "encode");
  size_t k = 0;
  const unsigned char *b = s;
  for (size_t i = 0; i < n; i++) k += b[i] < 0x80 ? 1 : 2;
  lu_pk_op(p, 'X');
  pk_le(p, k, 4);
  for (size_t i = 0; i < n; i++) {
    if (b[i] < 0x80) lu_pk_op(p, b[i]);
    else { lu_pk_op(p, (unsigned char)(0xC0 | b[i] >> 6)); lu_pk_op(p, (unsigned char)(0x80 | (b[i] & 0x3F))); }
  }
  lu_pk_str(p, "latin1", 6);
  lu_pk_op(p, 0x86);
  lu_pk_op(p, 'R');
}

uint32_t lu_pk_put(lu_pickler *p) {
  uint32_t idx = p->memo++;
  if (p->proto >= 4) lu_pk_op(p, 0x94);
  else if (idx < 256) { lu_pk_op(p, 'q'); pk_le(p, idx, 1); }
  else { lu_pk_op(p, 'r'); pk_le(p, idx, 4); }
  return idx;
}

void lu_pk_get(lu_pickler *p, uint32_t idx) {
  if (idx < 256) { lu_pk_op(p, 'h'); pk_le(p, idx, 1); }
  else { lu_pk_op(p, 'j'); pk_le(p, idx, 4); }
}
