/* lunet.core.pickle: Python pickles and PyTorch checkpoints as Lua values (docs/formats.md).
 * The value types and their constructors live in l_pickle_lua.h; this file converts between the C
 * core's value tree (fmt/pickle.h) and Lua, and drives the pickler over Lua values. */
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "fmt/pickle.h"
#include "fmt/torch.h"
#include "lua/l_common.h"
#include "lua/l_pickle_lua.h"

#define STORAGE_MT "lunet.pickle.Storage"
#define REG_P "lunet.pickle.P"
#define REG_I "lunet.pickle.I"
#define MAX_DEPTH 512

/* A torch storage held by Lua: raw little-endian elements. */
typedef struct {
  int dtype;       /* lu_pdtype */
  int64_t numel;
  size_t nbytes;
  unsigned char data[];
} storage_ud;

static storage_ud *new_storage(lua_State *L, int dtype, int64_t numel, const void *src, size_t nbytes) {
  storage_ud *s = lua_newuserdatauv(L, sizeof *s + (nbytes ? nbytes : 1), 0);
  s->dtype = dtype;
  s->numel = numel;
  s->nbytes = nbytes;
  if (src && nbytes) memcpy(s->data, src, nbytes);
  luaL_setmetatable(L, STORAGE_MT);
  return s;
}

/* Pushes P[name] / I[name]. */
static void getP(lua_State *L, const char *name) {
  lua_getfield(L, LUA_REGISTRYINDEX, REG_P);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}
static void getI(lua_State *L, const char *name) {
  lua_getfield(L, LUA_REGISTRYINDEX, REG_I);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}

/* Marks the table on top in the weak side table I[name]. */
static void mark(lua_State *L, const char *name) {
  getI(L, name);
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* ---------- C values -> Lua ---------- */

typedef struct {
  lua_State *L;
  int cache; /* stack index of lightuserdata(pv) -> Lua value */
  const char *where;
} conv;

static void push_pv(conv *c, lu_pv *v, int depth);

static void push_ints(lua_State *L, const int64_t *a, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, a[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int cached(conv *c, lu_pv *v) {
  lua_rawgetp(c->L, c->cache, v);
  if (!lua_isnil(c->L, -1)) return 1;
  lua_pop(c->L, 1);
  return 0;
}

static void remember(conv *c, lu_pv *v) {
  lua_pushvalue(c->L, -1);
  lua_rawsetp(c->L, c->cache, v);
}

static void push_key(conv *c, lu_pv *k, int depth) {
  lua_State *L = c->L;
  if (k->kind == LU_PV_FLOAT && k->f != k->f) luaL_error(L, "%s: a dict key is NaN, which Lua tables cannot hold", c->where);
  push_pv(c, k, depth);
}

static void push_pv(conv *c, lu_pv *v, int depth) {
  lua_State *L = c->L;
  if (depth > MAX_DEPTH) luaL_error(L, "%s: values nest deeper than %d", c->where, MAX_DEPTH);
  if (!lua_checkstack(L, 8)) luaL_error(L, "%s: out of Lua stack", c->where);
  switch (v->kind) {
  case LU_PV_NONE: getP(L, "None"); return;
  case LU_PV_BOOL: lua_pushboolean(L, v->flag); return;
  case LU_PV_INT: lua_pushinteger(L, (lua_Integer)v->i); return;
  case LU_PV_FLOAT: lua_pushnumber(L, v->f); return;
  case LU_PV_STR: lua_pushlstring(L, v->s, v->len); return;
  default: break;
  }
  if (cached(c, v)) return;
  switch (v->kind) {
  case LU_PV_BYTES:
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, v->s, v->len);
    lua_setfield(L, -2, "data");
    getP(L, "Bytes");
    lua_setmetatable(L, -2);
    remember(c, v);
    return;
  case LU_PV_LIST:
  case LU_PV_TUPLE:
  case LU_PV_SET: {
    lua_createtable(L, (int)(v->n < 1 << 24 ? v->n : 0), 1);
    getP(L, v->kind == LU_PV_LIST ? "List" : v->kind == LU_PV_TUPLE ? "Tuple" : "Set");
    lua_setmetatable(L, -2);
    if (v->kind == LU_PV_SET && v->flag) mark(L, "frozen");
    remember(c, v);
    for (size_t i = 0; i < v->n; i++) {
      push_pv(c, v->items[i], depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pushinteger(L, (lua_Integer)v->n);
    lua_setfield(L, -2, "n");
    return;
  }
  case LU_PV_DICT: {
    lua_createtable(L, 0, (int)(v->n / 2 < 1 << 24 ? v->n / 2 : 0));
    getP(L, "Dict");
    lua_setmetatable(L, -2);
    remember(c, v);
    int d = lua_gettop(L);
    lua_newtable(L); /* keys in order */
    int ks = lua_gettop(L);
    lua_Integer nk = 0;
    for (size_t i = 0; i < v->n; i += 2) {
      push_key(c, v->items[i], depth + 1);
      lua_pushvalue(L, -1);
      lua_rawget(L, d);
      int had = !lua_isnil(L, -1);
      lua_pop(L, 1);
      if (!had) {
        lua_pushvalue(L, -1);
        lua_rawseti(L, ks, ++nk);
      }
      push_pv(c, v->items[i + 1], depth + 1);
      lua_rawset(L, d);
    }
    getI(L, "adopt");
    lua_pushvalue(L, d);
    lua_pushvalue(L, ks);
    lua_pushboolean(L, v->flag);
    lua_call(L, 3, 0);
    lua_pop(L, 1); /* ks */
    return;
  }
  case LU_PV_STORAGE:
    new_storage(L, v->dtype, v->i, v->data, v->nbytes);
    remember(c, v);
    return;
  case LU_PV_TENSOR:
    lua_createtable(L, 0, 6);
    getP(L, "Tensor");
    lua_setmetatable(L, -2);
    remember(c, v);
    lua_pushstring(L, lu_pdtype_name((lu_pdtype)v->dtype));
    lua_setfield(L, -2, "dtype");
    push_ints(L, v->shape, v->ndim);
    lua_setfield(L, -2, "shape");
    push_ints(L, v->stride, v->ndim);
    lua_setfield(L, -2, "stride");
    lua_pushinteger(L, v->i);
    lua_setfield(L, -2, "offset");
    lua_pushboolean(L, v->flag);
    lua_setfield(L, -2, "requires_grad");
    getI(L, "tstore");
    lua_pushvalue(L, -2);
    push_pv(c, v->items[0], depth + 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return;
  case LU_PV_DEVICE:
    lua_createtable(L, 0, 2);
    lua_pushstring(L, v->s);
    lua_setfield(L, -2, "type");
    if (v->i >= 0) {
      lua_pushinteger(L, v->i);
      lua_setfield(L, -2, "index");
    }
    getP(L, "Device");
    lua_setmetatable(L, -2);
    remember(c, v);
    return;
  case LU_PV_GLOBAL: {
    lua_createtable(L, 0, 2);
    const char *nl = strchr(v->s, '\n');
    lua_pushlstring(L, v->s, (size_t)(nl - v->s));
    lua_setfield(L, -2, "module");
    lua_pushstring(L, nl + 1);
    lua_setfield(L, -2, "name");
    getP(L, "Global");
    lua_setmetatable(L, -2);
    remember(c, v);
    return;
  }
  case LU_PV_NDARRAY:
    if (v->dtype < 0) luaL_error(L, "%s: a numpy array was never given its data", c->where);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, lu_pdtype_name((lu_pdtype)v->dtype));
    lua_setfield(L, -2, "dtype");
    push_ints(L, v->shape, v->ndim);
    lua_setfield(L, -2, "shape");
    lua_pushlstring(L, v->data ? v->data : "", v->nbytes);
    lua_setfield(L, -2, "data");
    lua_pushboolean(L, v->flag);
    lua_setfield(L, -2, "fortran_order");
    getP(L, "Array");
    lua_setmetatable(L, -2);
    remember(c, v);
    return;
  case LU_PV_DTYPE:
    lua_pushstring(L, lu_pdtype_name((lu_pdtype)v->dtype));
    return;
  default:
    luaL_error(L, "%s: an internal value reached the result", c->where);
  }
}

/* Owner box for an unpickler so a Lua error during conversion still frees it. */
#define UNP_MT "lunet.pickle.Unpickler"
static int unp_gc(lua_State *L) {
  lu_unpickler **b = luaL_checkudata(L, 1, UNP_MT);
  lu_unpickler_free(*b);
  *b = NULL;
  return 0;
}

/* The symbolic_globals option as a NULL-terminated array in a userdata on the stack. */
static const char *const *opt_symbolic(lua_State *L, int opts, const char *what) {
  if (lua_isnoneornil(L, opts)) return NULL;
  luaL_checktype(L, opts, LUA_TTABLE);
  lua_getfield(L, opts, "symbolic_globals");
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
  if (!lua_istable(L, -1)) luaL_error(L, "%s: symbolic_globals must be a list of \"module.name\" strings", what);
  int t = lua_gettop(L);
  lua_Integer n = luaL_len(L, t);
  const char **arr = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, t, i);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: symbolic_globals[%d] is not a string", what, (int)i);
    arr[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by the table */
  }
  arr[n] = NULL;
  /* anchor: leave the table and the array on the stack (caller's frame) */
  return arr;
}

static int finish_load(lua_State *L, lu_unpickler *u, lu_pv *root, const char *where) {
  lu_unpickler **b = lua_newuserdatauv(L, sizeof *b, 0);
  *b = u;
  luaL_setmetatable(L, UNP_MT);
  conv c = {L, 0, where};
  lua_newtable(L);
  c.cache = lua_gettop(L);
  push_pv(&c, root, 0);
  lu_unpickler_free(*b);
  *b = NULL;
  return 1;
}

static int l_loads(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  const char *where = "pickle";
  if (lua_istable(L, 2)) where = lu_lua_field_string(L, 2, "name", "pickle");
  lu_pickle_opts o = {0};
  o.where = where;
  o.symbolic = opt_symbolic(L, 2, "pickle.loads");
  lu_unpickler *u;
  lu_pv *root;
  LU_LCHECK(L, lu_unpickle(s, n, &o, &u, &root), "pickle.loads");
  return finish_load(L, u, root, where);
}

static int l_load_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lu_pickle_opts o = {0};
  o.where = path;
  o.symbolic = opt_symbolic(L, 2, "pickle.load_file");
  FILE *f = fopen(path, "rb");
  if (!f) return luaL_error(L, "pickle.load_file: %s: cannot open", path);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t k;
  char tmp[65536];
  while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) luaL_addlstring(&b, tmp, k);
  int err = ferror(f);
  fclose(f);
  if (err) return luaL_error(L, "pickle.load_file: %s: read failed", path);
  luaL_pushresult(&b);
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  lu_unpickler *u;
  lu_pv *root;
  LU_LCHECK(L, lu_unpickle(s, n, &o, &u, &root), "pickle.load_file");
  return finish_load(L, u, root, path);
}

static int l_torch_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *const *sym = opt_symbolic(L, 2, "pickle.torch_load");
  lu_unpickler *u;
  lu_pv *root;
  LU_LCHECK(L, lu_torch_load(path, sym, &u, &root), "pickle.torch_load");
  return finish_load(L, u, root, path);
}

/* ---------- Lua -> pickle ---------- */

typedef struct {
  lua_State *L;
  lu_pickler pk;
  const char *where;
  int memo;      /* stack index: value -> memo index */
  int busy;      /* stack index: tuples being written (cycle check) */
  int torch;     /* writing for torch_save */
  int skeys;     /* stack index: storage identity -> key (integer, 0-based) */
  int anchors;   /* stack index: host copies of device tensors */
  lu_torch_storage *st;
  size_t nst, capst;
  int meta[9];   /* P.Dict .. P.Global, None at stack indices */
} writer;

enum { M_DICT, M_LIST, M_TUPLE, M_SET, M_TENSOR, M_DEVICE, M_BYTES, M_ARRAY, M_GLOBAL };
static const char *const k_mnames[] = {"Dict", "List", "Tuple", "Set", "Tensor", "Device", "Bytes", "Array", "Global"};

static void emit(writer *w, int idx, int depth);

static int memo_lookup(writer *w, int idx) {
  lua_State *L = w->L;
  lua_pushvalue(L, idx);
  lua_rawget(L, w->memo);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
  lu_pk_get(&w->pk, (uint32_t)lua_tointeger(L, -1));
  lua_pop(L, 1);
  return 1;
}

static void memo_store(writer *w, int idx) {
  lua_State *L = w->L;
  uint32_t m = lu_pk_put(&w->pk);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, m);
  lua_rawset(L, w->memo);
}

static int utf8_ok(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 && c >= 0xC2 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!k || i + k > n) return 0;
    for (size_t j = 1; j < k; j++)
      if ((s[i + j] & 0xC0) != 0x80) return 0;
    if (k == 3) {
      unsigned cp = (c & 0x0F) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3F);
      if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    }
    if (k == 4) {
      unsigned cp = (c & 0x07) << 18 | (s[i + 1] & 0x3Fu) << 12;
      if (cp < 0x10000 || cp > 0x10FFFF) return 0;
    }
    i += k;
  }
  return 1;
}

static int which_meta(writer *w, int idx) {
  lua_State *L = w->L;
  if (!lua_getmetatable(L, idx)) return -1;
  for (int i = 0; i < 9; i++)
    if (lua_rawequal(L, -1, w->meta[i])) { lua_pop(L, 1); return i; }
  lua_pop(L, 1);
  return -2;
}

static int is_marked(lua_State *L, const char *side, int idx) {
  getI(L, side);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  int r = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return r;
}

/* Items 1..n of the sequence at idx ("n" field when present). */
static lua_Integer seq_len(lua_State *L, int idx) {
  lua_getfield(L, idx, "n");
  lua_Integer n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (lua_Integer)lua_rawlen(L, idx);
  lua_pop(L, 1);
  return n;
}

static void emit_items(writer *w, int idx, lua_Integer n, unsigned char batch_op, int depth) {
  lua_State *L = w->L;
  for (lua_Integer i = 1; i <= n; i += 1000) {
    lu_pk_op(&w->pk, LU_PK_MARK);
    for (lua_Integer j = i; j <= n && j < i + 1000; j++) {
      lua_rawgeti(L, idx, j);
      emit(w, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    lu_pk_op(&w->pk, batch_op);
  }
}

/* Keys of the dict at idx in order: a P.Dict's insertion order, or a plain table's sorted keys. */
static void push_keys(writer *w, int idx, int is_pdict) {
  lua_State *L = w->L;
  if (is_pdict) {
    getP(L, "keys");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    return;
  }
  lua_newtable(L);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, ++n);
  }
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_remove(L, -2);
  lua_pushvalue(L, -2);
  getI(L, "keyorder");
  lua_call(L, 2, 0);
}

static void emit_dict(writer *w, int idx, int is_pdict, int depth) {
  lua_State *L = w->L;
  if (is_pdict && is_marked(L, "ordered", idx)) {
    lu_pk_global(&w->pk, "collections", "OrderedDict");
    lu_pk_op(&w->pk, LU_PK_EMPTY_TUPLE);
    lu_pk_op(&w->pk, LU_PK_REDUCE);
  } else lu_pk_op(&w->pk, LU_PK_EMPTY_DICT);
  memo_store(w, idx);
  push_keys(w, idx, is_pdict);
  int ks = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, ks);
  for (lua_Integer i = 1; i <= n; i += 1000) {
    lu_pk_op(&w->pk, LU_PK_MARK);
    for (lua_Integer j = i; j <= n && j < i + 1000; j++) {
      lua_rawgeti(L, ks, j);
      int k = lua_gettop(L);
      emit(w, k, depth + 1);
      lua_pushvalue(L, k);
      lua_rawget(L, idx);
      emit(w, lua_gettop(L), depth + 1);
      lua_pop(L, 2);
    }
    lu_pk_op(&w->pk, LU_PK_SETITEMS);
  }
  lua_pop(L, 1);
}

static const char *storage_name(int pd) {
  switch (pd) {
  case LU_PD_F32: return "FloatStorage";
  case LU_PD_F16: return "HalfStorage";
  case LU_PD_BF16: return "BFloat16Storage";
  case LU_PD_F64: return "DoubleStorage";
  case LU_PD_I64: return "LongStorage";
  case LU_PD_I32: return "IntStorage";
  case LU_PD_I16: return "ShortStorage";
  case LU_PD_I8: return "CharStorage";
  case LU_PD_U8: return "ByteStorage";
  case LU_PD_BOOL: return "BoolStorage";
  default: return NULL;
  }
}

static int pd_of_lu(lu_dtype dt) {
  switch (dt) {
  case LU_F32: return LU_PD_F32;
  case LU_F16: return LU_PD_F16;
  case LU_F64: return LU_PD_F64;
  case LU_I64: return LU_PD_I64;
  case LU_I32: return LU_PD_I32;
  case LU_I16: return LU_PD_I16;
  case LU_I8: return LU_PD_I8;
  case LU_U8: return LU_PD_U8;
  default: return -1;
  }
}

/* The storage key for the identity at idx (a lunet tensor or a storage userdata), registering it. */
static lua_Integer storage_key(writer *w, int idx, const void *data, size_t nbytes) {
  lua_State *L = w->L;
  lua_pushvalue(L, idx);
  lua_rawget(L, w->skeys);
  if (!lua_isnil(L, -1)) {
    lua_Integer k = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return k;
  }
  lua_pop(L, 1);
  if (w->nst == w->capst) {
    size_t nc = w->capst ? 2 * w->capst : 16;
    lu_torch_storage *ns = realloc(w->st, nc * sizeof *ns);
    if (!ns) luaL_error(L, "%s: no memory", w->where);
    w->st = ns;
    w->capst = nc;
  }
  w->st[w->nst].data = data;
  w->st[w->nst].nbytes = nbytes;
  lua_Integer k = (lua_Integer)w->nst++;
  lua_pushvalue(L, idx);
  lua_pushinteger(L, k);
  lua_rawset(L, w->skeys);
  return k;
}

static void emit_int_tuple(writer *w, const int64_t *a, int n) {
  if (n == 0) { lu_pk_op(&w->pk, LU_PK_EMPTY_TUPLE); return; }
  if (n > 3) lu_pk_op(&w->pk, LU_PK_MARK);
  for (int i = 0; i < n; i++) lu_pk_int(&w->pk, a[i]);
  lu_pk_op(&w->pk, n > 3 ? LU_PK_TUPLE : (unsigned char)(0x84 + n));
}

static void emit_tensor_call(writer *w, lua_Integer key, int pd, int64_t numel, int64_t offset, int ndim, const int64_t *shape,
                             const int64_t *stride, int requires_grad) {
  lu_pickler *p = &w->pk;
  lu_pk_global(p, "torch._utils", "_rebuild_tensor_v2");
  lu_pk_op(p, LU_PK_MARK);
  lu_pk_op(p, LU_PK_MARK);
  lu_pk_str(p, "storage", 7);
  lu_pk_global(p, "torch", storage_name(pd));
  char ks[32];
  int kl = snprintf(ks, sizeof ks, "%lld", (long long)key);
  lu_pk_str(p, ks, (size_t)kl);
  lu_pk_str(p, "cpu", 3);
  lu_pk_int(p, numel);
  lu_pk_op(p, LU_PK_TUPLE);
  lu_pk_op(p, LU_PK_BINPERSID);
  lu_pk_int(p, offset);
  emit_int_tuple(w, shape, ndim);
  emit_int_tuple(w, stride, ndim);
  lu_pk_bool(p, requires_grad);
  lu_pk_global(p, "collections", "OrderedDict");
  lu_pk_op(p, LU_PK_EMPTY_TUPLE);
  lu_pk_op(p, LU_PK_REDUCE);
  lu_pk_op(p, LU_PK_TUPLE);
  lu_pk_op(p, LU_PK_REDUCE);
}

static int get_int_array(lua_State *L, int idx, const char *field, int64_t *out, const char *where) {
  lua_getfield(L, idx, field);
  if (!lua_istable(L, -1)) luaL_error(L, "%s: tensor.%s is not a list of integers", where, field);
  int n = (int)lua_rawlen(L, -1);
  if (n > LU_PICKLE_MAX_DIMS) luaL_error(L, "%s: tensor.%s has more than %d entries", where, field, LU_PICKLE_MAX_DIMS);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, -1, i + 1);
    int ok;
    out[i] = (int64_t)lua_tointegerx(L, -1, &ok);
    if (!ok || out[i] < 0) luaL_error(L, "%s: tensor.%s[%d] is not a non-negative integer", where, field, i + 1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return n;
}

/* The storage userdata of the P.Tensor at idx, pushed; checks the view lies inside it. */
static storage_ud *tensor_storage(lua_State *L, int idx, int *ndim, int64_t *shape, int64_t *stride, int64_t *offset, const char *where) {
  getI(L, "tstore");
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  storage_ud *s = luaL_testudata(L, -1, STORAGE_MT);
  if (!s) luaL_error(L, "%s: this pickle.Tensor has no storage (make tensors with pickle.tensor{...})", where);
  int top = lua_gettop(L);
  *ndim = get_int_array(L, idx, "shape", shape, where);
  int ns = get_int_array(L, idx, "stride", stride, where);
  if (ns != *ndim) luaL_error(L, "%s: tensor shape and stride differ in length", where);
  lua_getfield(L, idx, "offset");
  *offset = lua_isnil(L, -1) ? 0 : (int64_t)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  const int64_t lim = (int64_t)1 << 48;
  int64_t last = *offset, empty = 0, numel = 1;
  if (*offset > lim) luaL_error(L, "%s: tensor offset out of range", where);
  for (int d = 0; d < *ndim; d++) {
    if (shape[d] > lim || stride[d] > lim) luaL_error(L, "%s: tensor size or stride out of range", where);
    if (shape[d] == 0) empty = 1;
    else {
      if (numel > lim / shape[d]) luaL_error(L, "%s: tensor of more than 2^48 elements", where);
      numel *= shape[d];
      if (stride[d] && shape[d] - 1 > (lim - last) / stride[d]) luaL_error(L, "%s: tensor view out of range", where);
      last += (shape[d] - 1) * stride[d];
    }
  }
  if (*offset < 0 || (!empty && last >= s->numel)) luaL_error(L, "%s: tensor view reaches past its storage", where);
  lua_settop(L, top);
  return s;
}

static void emit(writer *w, int idx, int depth) {
  lua_State *L = w->L;
  lu_pickler *p = &w->pk;
  if (depth > MAX_DEPTH) luaL_error(L, "%s: values nest deeper than %d (a cycle?)", w->where, MAX_DEPTH);
  if (!lua_checkstack(L, 12)) luaL_error(L, "%s: out of Lua stack", w->where);
  int t = lua_type(L, idx);
  switch (t) {
  case LUA_TNIL: lu_pk_none(p); return;
  case LUA_TBOOLEAN: lu_pk_bool(p, lua_toboolean(L, idx)); return;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) lu_pk_int(p, (int64_t)lua_tointeger(L, idx));
    else lu_pk_float(p, (double)lua_tonumber(L, idx));
    return;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (!utf8_ok((const unsigned char *)s, n)) luaL_error(L, "%s: a string is not valid UTF-8 (write bytes with pickle.bytes)", w->where);
    lu_pk_str(p, s, n);
    return;
  }
  case LUA_TUSERDATA: {
    lu_tensor *tt = lu_lua_test_tensor(L, idx);
    if (!tt) luaL_error(L, "%s: a userdata that is not a lunet tensor cannot be pickled", w->where);
    if (!w->torch) luaL_error(L, "%s: tensors are written by pickle.torch_save, not by dumps", w->where);
    if (memo_lookup(w, idx)) return;
    int pd = pd_of_lu(tt->dtype);
    if (pd < 0) luaL_error(L, "%s: a %s tensor has no torch dtype", w->where, lu_dtype_name(tt->dtype));
    const lu_tensor *h = tt;
    if (!tt->host) {
      lu_tensor *copy;
      LU_LCHECK(L, lu_tensor_to_host(tt, &copy), "pickle.torch_save");
      lu_lua_push_tensor(L, copy);
      lua_pushvalue(L, idx);
      lua_pushvalue(L, -2);
      lua_rawset(L, w->anchors);
      lua_pop(L, 1);
      h = copy;
    }
    int64_t numel = lu_tensor_numel(h);
    lua_Integer key = storage_key(w, idx, h->host, (size_t)numel * lu_dtype_size(h->dtype));
    int64_t stride[LU_MAX_DIMS];
    int64_t s = 1;
    for (int d = h->ndim - 1; d >= 0; d--) { stride[d] = s; s *= h->shape[d]; }
    emit_tensor_call(w, key, pd, numel, 0, h->ndim, h->shape, stride, 0);
    memo_store(w, idx);
    return;
  }
  case LUA_TTABLE: break;
  default: luaL_error(L, "%s: a Lua %s cannot be pickled", w->where, lua_typename(L, t));
  }
  getP(L, "None");
  int is_none = lua_rawequal(L, -1, idx);
  lua_pop(L, 1);
  if (is_none) { lu_pk_none(p); return; }
  if (memo_lookup(w, idx)) return;
  int m = which_meta(w, idx);
  switch (m) {
  case -1: { /* plain table */
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) { count++; lua_pop(L, 1); }
    if (n > 0 && count == n) {
      lu_pk_op(p, LU_PK_EMPTY_LIST);
      memo_store(w, idx);
      emit_items(w, idx, n, LU_PK_APPENDS, depth);
    } else emit_dict(w, idx, 0, depth);
    return;
  }
  case M_DICT: emit_dict(w, idx, 1, depth); return;
  case M_LIST:
    lu_pk_op(p, LU_PK_EMPTY_LIST);
    memo_store(w, idx);
    emit_items(w, idx, seq_len(L, idx), LU_PK_APPENDS, depth);
    return;
  case M_TUPLE: {
    lua_pushvalue(L, idx);
    lua_rawget(L, w->busy);
    if (!lua_isnil(L, -1)) luaL_error(L, "%s: a tuple contains itself", w->where);
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, w->busy);
    lua_Integer n = seq_len(L, idx);
    if (n == 0) lu_pk_op(p, LU_PK_EMPTY_TUPLE);
    else {
      if (n > 3) lu_pk_op(p, LU_PK_MARK);
      for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        emit(w, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
      }
      lu_pk_op(p, n > 3 ? LU_PK_TUPLE : (unsigned char)(0x84 + n));
    }
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, w->busy);
    memo_store(w, idx);
    return;
  }
  case M_SET: {
    int frozen = is_marked(L, "frozen", idx);
    lua_Integer n = seq_len(L, idx);
    if (p->proto >= 4) {
      if (frozen) {
        lu_pk_op(p, LU_PK_MARK);
        for (lua_Integer i = 1; i <= n; i++) {
          lua_rawgeti(L, idx, i);
          emit(w, lua_gettop(L), depth + 1);
          lua_pop(L, 1);
        }
        lu_pk_op(p, LU_PK_FROZENSET);
        memo_store(w, idx);
      } else {
        lu_pk_op(p, LU_PK_EMPTY_SET);
        memo_store(w, idx);
        emit_items(w, idx, n, LU_PK_ADDITEMS, depth);
      }
    } else {
      lu_pk_global(p, p->proto == 2 ? "__builtin__" : "builtins", frozen ? "frozenset" : "set");
      lu_pk_op(p, LU_PK_EMPTY_LIST);
      emit_items(w, idx, n, LU_PK_APPENDS, depth);
      lu_pk_op(p, 0x85);
      lu_pk_op(p, LU_PK_REDUCE);
      memo_store(w, idx);
    }
    return;
  }
  case M_BYTES: {
    lua_getfield(L, idx, "data");
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (!s) luaL_error(L, "%s: pickle.Bytes without a data string", w->where);
    lu_pk_bytes(p, s, n);
    lua_pop(L, 1);
    memo_store(w, idx);
    return;
  }
  case M_DEVICE: {
    lua_getfield(L, idx, "type");
    const char *ty = lua_tostring(L, -1);
    if (!ty) luaL_error(L, "%s: pickle.Device without a type", w->where);
    lua_getfield(L, idx, "index");
    lu_pk_global(p, "torch", "device");
    lu_pk_str(p, ty, strlen(ty));
    if (lua_isinteger(L, -1)) {
      lu_pk_int(p, (int64_t)lua_tointeger(L, -1));
      lu_pk_op(p, 0x86);
    } else lu_pk_op(p, 0x85);
    lu_pk_op(p, LU_PK_REDUCE);
    lua_pop(L, 2);
    memo_store(w, idx);
    return;
  }
  case M_GLOBAL: {
    lua_getfield(L, idx, "module");
    lua_getfield(L, idx, "name");
    const char *mod = lua_tostring(L, -2), *name = lua_tostring(L, -1);
    if (!mod || !name || strchr(mod, '\n') || strchr(name, '\n')) luaL_error(L, "%s: pickle.Global needs module and name strings", w->where);
    lu_pk_global(p, mod, name);
    lua_pop(L, 2);
    memo_store(w, idx);
    return;
  }
  case M_ARRAY: {
    lua_getfield(L, idx, "dtype");
    lu_pdtype pd;
    if (!lua_isstring(L, -1) || !lu_pdtype_parse(lua_tostring(L, -1), &pd) || pd == LU_PD_BF16) luaL_error(L, "%s: pickle.Array with an unknown dtype", w->where);
    lua_pop(L, 1);
    static const char *const codes[LU_PD_COUNT] = {
      [LU_PD_F32] = "f4", [LU_PD_F16] = "f2", [LU_PD_F64] = "f8", [LU_PD_I64] = "i8", [LU_PD_I32] = "i4", [LU_PD_I16] = "i2",
      [LU_PD_I8] = "i1", [LU_PD_U8] = "u1", [LU_PD_BOOL] = "b1", [LU_PD_U16] = "u2", [LU_PD_U32] = "u4", [LU_PD_U64] = "u8"};
    int64_t shape[LU_PICKLE_MAX_DIMS];
    int nd = get_int_array(L, idx, "shape", shape, w->where);
    lua_getfield(L, idx, "data");
    size_t n;
    const char *data = lua_tolstring(L, -1, &n);
    if (!data) luaL_error(L, "%s: pickle.Array without a data string", w->where);
    int64_t numel = 1;
    for (int d = 0; d < nd; d++) numel *= shape[d];
    if ((uint64_t)numel * lu_pdtype_size(pd) != n) luaL_error(L, "%s: pickle.Array data holds %zu bytes, its shape needs %lld", w->where, n, (long long)(numel * (int64_t)lu_pdtype_size(pd)));
    lua_getfield(L, idx, "fortran_order");
    int fortran = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lu_pk_global(p, "numpy.core.multiarray", "_reconstruct");
    lu_pk_global(p, "numpy", "ndarray");
    lu_pk_int(p, 0);
    lu_pk_op(p, 0x85);
    lu_pk_bytes(p, "b", 1);
    lu_pk_op(p, 0x87);
    lu_pk_op(p, LU_PK_REDUCE);
    lu_pk_op(p, LU_PK_MARK);
    lu_pk_int(p, 1);
    emit_int_tuple(w, shape, nd);
    lu_pk_global(p, "numpy", "dtype");
    lu_pk_str(p, codes[pd], 2);
    lu_pk_bool(p, 0);
    lu_pk_bool(p, 1);
    lu_pk_op(p, 0x87);
    lu_pk_op(p, LU_PK_REDUCE);
    lu_pk_op(p, LU_PK_MARK);
    lu_pk_int(p, 3);
    lu_pk_str(p, lu_pdtype_size(pd) == 1 ? "|" : "<", 1);
    lu_pk_none(p);
    lu_pk_none(p);
    lu_pk_none(p);
    lu_pk_int(p, -1);
    lu_pk_int(p, -1);
    lu_pk_int(p, 0);
    lu_pk_op(p, LU_PK_TUPLE);
    lu_pk_op(p, LU_PK_BUILD);
    lu_pk_bool(p, fortran);
    lu_pk_bytes(p, data, n);
    lu_pk_op(p, LU_PK_TUPLE);
    lu_pk_op(p, LU_PK_BUILD);
    lua_pop(L, 1);
    memo_store(w, idx);
    return;
  }
  case M_TENSOR: {
    if (!w->torch) luaL_error(L, "%s: tensors are written by pickle.torch_save, not by dumps", w->where);
    int nd;
    int64_t shape[LU_PICKLE_MAX_DIMS], stride[LU_PICKLE_MAX_DIMS], off;
    storage_ud *s = tensor_storage(L, idx, &nd, shape, stride, &off, w->where);
    if (!storage_name(s->dtype)) luaL_error(L, "%s: a %s tensor has no torch storage type", w->where, lu_pdtype_name((lu_pdtype)s->dtype));
    lua_getfield(L, idx, "requires_grad");
    int rg = lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* the storage userdata is the identity: tensors viewing one storage share it in the file */
    getI(L, "tstore");
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    lua_Integer key = storage_key(w, lua_gettop(L), s->data, s->nbytes);
    lua_pop(L, 2);
    emit_tensor_call(w, key, s->dtype, s->numel, off, nd, shape, stride, rg);
    memo_store(w, idx);
    return;
  }
  default:
    luaL_error(L, "%s: a table with a foreign metatable cannot be pickled", w->where);
  }
}

/* Sets up a writer over the value at vidx; leaves its helper tables on the stack. */
static void writer_run(lua_State *L, writer *w, int vidx, int proto, int torch, const char *where) {
  memset(w, 0, sizeof *w);
  w->L = L;
  w->where = where;
  w->torch = torch;
  for (int i = 0; i < 9; i++) {
    getP(L, k_mnames[i]);
    w->meta[i] = lua_gettop(L);
  }
  lua_newtable(L);
  w->memo = lua_gettop(L);
  lua_newtable(L);
  w->busy = lua_gettop(L);
  lua_newtable(L);
  w->skeys = lua_gettop(L);
  lua_newtable(L);
  w->anchors = lua_gettop(L);
  LU_LCHECK(L, lu_pickler_init(&w->pk, proto), where);
}

/* Frees the writer's C memory if a Lua error unwinds through it. */
#define WRITER_MT "lunet.pickle.Writer"
static int writer_gc(lua_State *L) {
  writer **b = luaL_checkudata(L, 1, WRITER_MT);
  if (*b) {
    lu_pickler_free(&(*b)->pk);
    free((*b)->st);
    free(*b);
    *b = NULL;
  }
  return 0;
}

static writer *new_writer(lua_State *L) {
  writer **b = lua_newuserdatauv(L, sizeof *b, 0);
  *b = NULL;
  luaL_setmetatable(L, WRITER_MT);
  *b = calloc(1, sizeof **b);
  if (!*b) luaL_error(L, "pickle: no memory");
  return *b;
}

static int check_proto(lua_State *L, int idx, int dflt) {
  lua_Integer pr = luaL_optinteger(L, idx, dflt);
  if (pr < 2 || pr > 5) luaL_argerror(L, idx, "pickle protocol must be 2..5");
  return (int)pr;
}

static int l_dumps(lua_State *L) {
  lua_settop(L, 2);
  int proto = check_proto(L, 2, 4);
  writer *w = new_writer(L);
  writer_run(L, w, 1, proto, 0, "pickle.dumps");
  emit(w, 1, 0);
  LU_LCHECK(L, lu_pickler_done(&w->pk), "pickle.dumps");
  lua_pushlstring(L, (const char *)w->pk.buf, w->pk.n);
  return 1;
}

static int l_save_file(lua_State *L) {
  lua_settop(L, 3);
  const char *path = luaL_checkstring(L, 1);
  int proto = check_proto(L, 3, 4);
  writer *w = new_writer(L);
  writer_run(L, w, 2, proto, 0, path);
  emit(w, 2, 0);
  LU_LCHECK(L, lu_pickler_done(&w->pk), "pickle.save_file");
  char tmp[LU_ATOMIC_TMP_MAX];
  FILE *f;
  LU_LCHECK(L, lu_atomic_fopen(path, tmp, sizeof tmp, &f), "pickle.save_file");
  lu_status st = fwrite(w->pk.buf, 1, w->pk.n, f) == w->pk.n ? LU_OK : lu_fail(LU_EIO, "%s: write failed", path);
  LU_LCHECK(L, lu_atomic_fclose(f, tmp, path, st), "pickle.save_file");
  return 0;
}

static int l_torch_save(lua_State *L) {
  lua_settop(L, 2);
  const char *path = luaL_checkstring(L, 1);
  writer *w = new_writer(L);
  writer_run(L, w, 2, 2, 1, path);
  emit(w, 2, 0);
  LU_LCHECK(L, lu_pickler_done(&w->pk), "pickle.torch_save");
  LU_LCHECK(L, lu_torch_save(path, w->pk.buf, w->pk.n, w->nst, w->st), "pickle.torch_save");
  return 0;
}

/* ---------- tensors ---------- */

static int check_ptensor(lua_State *L, int idx) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) luaL_argerror(L, idx, "expected a pickle.Tensor");
  getP(L, "Tensor");
  int ok = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!ok) luaL_argerror(L, idx, "expected a pickle.Tensor");
  return idx;
}

static double elem_get(const unsigned char *p, int pd) {
  switch (pd) {
  case LU_PD_F32: { float f; memcpy(&f, p, 4); return f; }
  case LU_PD_F16: { uint16_t h; memcpy(&h, p, 2); return lu_half_to_float(h); }
  case LU_PD_BF16: { uint16_t h; memcpy(&h, p, 2); uint32_t r = (uint32_t)h << 16; float f; memcpy(&f, &r, 4); return f; }
  case LU_PD_F64: { double d; memcpy(&d, p, 8); return d; }
  case LU_PD_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
  case LU_PD_I32: { int32_t v; memcpy(&v, p, 4); return v; }
  case LU_PD_I16: { int16_t v; memcpy(&v, p, 2); return v; }
  case LU_PD_I8: return (int8_t)p[0];
  case LU_PD_U8: return p[0];
  case LU_PD_BOOL: return p[0] != 0;
  case LU_PD_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
  case LU_PD_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
  case LU_PD_U64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
  default: return 0;
  }
}

/* Gathers the view into dst (contiguous, same dtype); returns numel. The trailing dimensions that are
 * contiguous in storage go as one memcpy per run (a whole C-ordered checkpoint tensor as one): element by
 * element, loading the 2d plan's 46M weights took 0.6 s. */
static int64_t gather(const storage_ud *s, int nd, const int64_t *shape, const int64_t *stride, int64_t off, unsigned char *dst) {
  size_t es = lu_pdtype_size((lu_pdtype)s->dtype);
  int64_t numel = 1;
  for (int d = 0; d < nd; d++) numel *= shape[d];
  if (numel == 0) return 0;
  int inner = nd; /* dims inner..nd-1 form one contiguous run */
  int64_t run = 1;
  while (inner > 0 && (shape[inner - 1] == 1 || stride[inner - 1] == run)) run *= shape[--inner];
  int64_t idx[LU_PICKLE_MAX_DIMS] = {0};
  for (int64_t i = 0; i < numel; i += run) {
    int64_t e = off;
    for (int d = 0; d < inner; d++) e += idx[d] * stride[d];
    memcpy(dst + (size_t)i * es, s->data + (size_t)e * es, (size_t)run * es);
    for (int d = inner - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return numel;
}

/* t:bytes() -> contiguous raw bytes in the tensor's dtype */
static int m_tensor_bytes(lua_State *L) {
  check_ptensor(L, 1);
  int nd;
  int64_t shape[LU_PICKLE_MAX_DIMS], stride[LU_PICKLE_MAX_DIMS], off;
  storage_ud *s = tensor_storage(L, 1, &nd, shape, stride, &off, "pickle.Tensor:bytes");
  int64_t numel = 1;
  for (int d = 0; d < nd; d++) numel *= shape[d];
  size_t n = (size_t)numel * lu_pdtype_size((lu_pdtype)s->dtype);
  luaL_Buffer b;
  unsigned char *dst = (unsigned char *)luaL_buffinitsize(L, &b, n);
  gather(s, nd, shape, stride, off, dst);
  luaL_pushresultsize(&b, n);
  return 1;
}

/* tensor_data(t [, "float32"]) -> lunet host tensor */
static int l_tensor_data(lua_State *L) {
  check_ptensor(L, 1);
  const char *want = luaL_optstring(L, 2, NULL);
  int nd;
  int64_t shape[LU_PICKLE_MAX_DIMS], stride[LU_PICKLE_MAX_DIMS], off;
  storage_ud *s = tensor_storage(L, 1, &nd, shape, stride, &off, "pickle.tensor_data");
  if (nd > LU_MAX_DIMS) return luaL_error(L, "pickle.tensor_data: a %d-dimensional tensor (lunet tensors have at most %d)", nd, LU_MAX_DIMS);
  lu_dtype dt;
  if (want) LU_LCHECK(L, lu_dtype_parse(want, &dt), "pickle.tensor_data");
  else switch (s->dtype) {
    case LU_PD_F32: case LU_PD_BF16: dt = LU_F32; break;
    case LU_PD_F16: dt = LU_F16; break;
    case LU_PD_F64: dt = LU_F64; break;
    case LU_PD_I64: dt = LU_I64; break;
    case LU_PD_I32: dt = LU_I32; break;
    case LU_PD_I16: dt = LU_I16; break;
    case LU_PD_I8: dt = LU_I8; break;
    default: dt = LU_U8; break;
    }
  lu_tensor *t;
  LU_LCHECK(L, lu_tensor_new_host(&t, dt, nd, shape), "pickle.tensor_data");
  lu_lua_push_tensor(L, t); /* owns t from here */
  size_t es = lu_pdtype_size((lu_pdtype)s->dtype);
  int64_t numel = lu_tensor_numel(t);
  int same = pd_of_lu(dt) == s->dtype || (dt == LU_U8 && s->dtype == LU_PD_BOOL);
  if (same) {
    gather(s, nd, shape, stride, off, t->host);
    return 1;
  }
  unsigned char *tmp = malloc((size_t)(numel ? numel : 1) * es);
  if (!tmp) return luaL_error(L, "pickle.tensor_data: no memory");
  gather(s, nd, shape, stride, off, tmp);
  if (dt == LU_F32) {
    float *o = t->host;
    for (int64_t i = 0; i < numel; i++) o[i] = (float)elem_get(tmp + (size_t)i * es, s->dtype);
  } else
    for (int64_t i = 0; i < numel; i++) lu_host_set(t, i, elem_get(tmp + (size_t)i * es, s->dtype));
  free(tmp);
  return 1;
}

/* tensor{dtype=, shape=, data=} -> pickle.Tensor (contiguous, its own storage) */
static int l_tensor(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *dts = lu_lua_field_string(L, 1, "dtype", "float32");
  lu_pdtype pd;
  if (!lu_pdtype_parse(dts, &pd) || !storage_name(pd)) return luaL_error(L, "pickle.tensor: dtype %s has no torch storage", dts);
  int64_t shape[LU_PICKLE_MAX_DIMS];
  int nd = get_int_array(L, 1, "shape", shape, "pickle.tensor");
  lua_getfield(L, 1, "data");
  size_t n;
  const char *data = lua_tolstring(L, -1, &n);
  if (!data) return luaL_error(L, "pickle.tensor: data must be a string of raw bytes");
  int64_t numel = 1;
  for (int d = 0; d < nd; d++) numel *= shape[d];
  if ((uint64_t)numel * lu_pdtype_size(pd) != n) return luaL_error(L, "pickle.tensor: %d bytes given, shape and dtype need %d", (int)n, (int)(numel * (int64_t)lu_pdtype_size(pd)));
  lua_createtable(L, 0, 6);
  int t = lua_gettop(L);
  getP(L, "Tensor");
  lua_setmetatable(L, t);
  lua_pushstring(L, dts);
  lua_setfield(L, t, "dtype");
  push_ints(L, shape, nd);
  lua_setfield(L, t, "shape");
  int64_t stride[LU_PICKLE_MAX_DIMS], s = 1;
  for (int d = nd - 1; d >= 0; d--) { stride[d] = s; s *= shape[d]; }
  push_ints(L, stride, nd);
  lua_setfield(L, t, "stride");
  lua_pushinteger(L, 0);
  lua_setfield(L, t, "offset");
  lua_getfield(L, 1, "requires_grad");
  lua_pushboolean(L, lua_toboolean(L, -1));
  lua_setfield(L, t, "requires_grad");
  lua_pop(L, 1);
  getI(L, "tstore");
  lua_pushvalue(L, t);
  new_storage(L, pd, numel, data, n);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return 1;
}

int lu_open_pickle(lua_State *L) {
  if (luaL_newmetatable(L, STORAGE_MT)) {
    lua_pushstring(L, "pickle.Storage");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, UNP_MT)) {
    lua_pushcfunction(L, unp_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, WRITER_MT)) {
    lua_pushcfunction(L, writer_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, k_pickle_lua, sizeof k_pickle_lua - 1, "=lunet.core.pickle") != LUA_OK) return lua_error(L);
  lua_call(L, 0, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, REG_I);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, REG_P);
  static const luaL_Reg fns[] = {
    {"loads", l_loads}, {"dumps", l_dumps}, {"load_file", l_load_file}, {"save_file", l_save_file},
    {"torch_load", l_torch_load}, {"torch_save", l_torch_save}, {"tensor_data", l_tensor_data}, {"tensor", l_tensor},
    {NULL, NULL},
  };
  lu_lua_setfuncs(L, fns);
  /* pickle.Tensor methods */
  lua_getfield(L, -1, "Tensor");
  lua_newtable(L);
  lua_pushcfunction(L, m_tensor_bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushcfunction(L, l_tensor_data);
  lua_setfield(L, -2, "data");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  return 1;
}
