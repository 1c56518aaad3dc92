/* Python pickles, restricted: an unpickler for protocols 2..5 that builds a tree of plain values
 * (None, bool, int64, float, str, bytes, list, tuple, dict/OrderedDict, set/frozenset) plus the few
 * objects a PyTorch checkpoint or an nnU-Net pickle holds (tensors, storages, torch.device, numpy
 * arrays and scalars). Globals come from an allow-list; any other is refused by name, or returned as
 * a symbolic global when the caller lists it, so loading never runs code. And a pickler: primitives
 * that append opcodes to a growing buffer (the Lua binding walks the value and calls them).
 * The C core only: lunet.core.pickle (csrc/lua/l_pickle.c) is its Lua face; fmt/torch.h adds the zip. */
#ifndef LU_FMT_PICKLE_H
#define LU_FMT_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum lu_pv_kind {
  LU_PV_NONE, LU_PV_BOOL, LU_PV_INT, LU_PV_FLOAT, LU_PV_STR, LU_PV_BYTES,
  LU_PV_LIST, LU_PV_TUPLE, LU_PV_DICT, LU_PV_SET,
  LU_PV_GLOBAL,  /* a symbolic global (or an allow-listed callable before it is called) */
  LU_PV_STORAGE, /* a torch storage, from a persistent id */
  LU_PV_TENSOR,  /* items[0]: its storage */
  LU_PV_DEVICE,
  LU_PV_NDARRAY,
  LU_PV_DTYPE,   /* numpy.dtype, an intermediate value */
  LU_PV_MARK     /* internal */
} lu_pv_kind;

/* torch/numpy element types, named as torch names them ("float32" ...). */
typedef enum lu_pdtype {
  LU_PD_F32, LU_PD_F16, LU_PD_BF16, LU_PD_F64, LU_PD_I64, LU_PD_I32, LU_PD_I16, LU_PD_I8, LU_PD_U8, LU_PD_BOOL,
  LU_PD_U16, LU_PD_U32, LU_PD_U64, /* numpy only */
  LU_PD_COUNT
} lu_pdtype;
const char *lu_pdtype_name(lu_pdtype d);
size_t lu_pdtype_size(lu_pdtype d);
int lu_pdtype_parse(const char *name, lu_pdtype *out); /* 0 when unknown */

#define LU_PICKLE_MAX_DIMS 32

typedef struct lu_pv lu_pv;
struct lu_pv {
  lu_pv_kind kind;
  int flag;          /* BOOL value; DICT: ordered; SET: frozen; TENSOR: requires_grad; NDARRAY: fortran order */
  int64_t i;         /* INT; DEVICE index (-1: none); TENSOR storage offset; STORAGE numel */
  double f;
  char *s;           /* STR/BYTES data (nul-terminated), GLOBAL "module\nname", DEVICE type, STORAGE key */
  size_t len;        /* STR/BYTES length */
  lu_pv **items;     /* LIST/TUPLE/SET items; DICT keys and values interleaved; TENSOR: [storage] */
  size_t n, cap;     /* items used (DICT: 2 * entries) */
  int dtype;         /* lu_pdtype: STORAGE, TENSOR, NDARRAY, DTYPE */
  int ndim;          /* TENSOR, NDARRAY */
  int64_t *shape, *stride;
  int gid;           /* GLOBAL: which allow-listed callable (0: symbolic) */
  void *data;        /* STORAGE: bytes (owned by the torch loader); NDARRAY: owned bytes */
  size_t nbytes;
  lu_pv *next;       /* arena chain */
};

typedef struct lu_unpickler lu_unpickler;
/* Resolves a persistent id (BINPERSID) into a value, or fails with a message. */
typedef lu_status (*lu_pickle_persid_fn)(void *ud, lu_pv *pid, lu_pv **out, lu_unpickler *u);

typedef struct lu_pickle_opts {
  const char *where;             /* names the input in messages (a file name) */
  const char *const *symbolic;   /* "module.name" globals returned as LU_PV_GLOBAL values; NULL-terminated */
  lu_pickle_persid_fn persid;    /* NULL: persistent ids are refused */
  void *persid_ud;
  size_t max_depth;              /* nesting of values and of the stack (0: 1000) */
  size_t max_items;              /* values created in all (0: 50 million) */
} lu_pickle_opts;

/* Unpickles buf. *root is valid until lu_unpickler_free(*u). */
lu_status lu_unpickle(const void *buf, size_t n, const lu_pickle_opts *opts, lu_unpickler **u, lu_pv **root);
void lu_unpickler_free(lu_unpickler *u);
/* A new value owned by u's arena (for persistent id resolvers). */
lu_pv *lu_pv_new(lu_unpickler *u, lu_pv_kind kind);

/* ---------- pickler ---------- */
typedef struct lu_pickler {
  unsigned char *buf;
  size_t n, cap;
  int proto;
  int failed;     /* set on allocation failure; lu_pickler_done reports it */
  uint32_t memo;  /* next memo index */
} lu_pickler;

lu_status lu_pickler_init(lu_pickler *p, int proto); /* writes PROTO */
void lu_pickler_free(lu_pickler *p);
/* Appends STOP; returns LU_ENOMEM when any append failed. */
lu_status lu_pickler_done(lu_pickler *p);
void lu_pk_raw(lu_pickler *p, const void *b, size_t n);
void lu_pk_op(lu_pickler *p, unsigned char op);
void lu_pk_none(lu_pickler *p);
void lu_pk_bool(lu_pickler *p, int v);
void lu_pk_int(lu_pickler *p, int64_t v);
void lu_pk_float(lu_pickler *p, double v);
void lu_pk_str(lu_pickler *p, const char *s, size_t n);
void lu_pk_bytes(lu_pickler *p, const void *s, size_t n); /* protocol 2: _codecs.encode(str, 'latin1') */
void lu_pk_global(lu_pickler *p, const char *module, const char *name);
/* Stores the top of the stack in the memo and returns its index. */
uint32_t lu_pk_put(lu_pickler *p);
void lu_pk_get(lu_pickler *p, uint32_t idx);

/* opcodes used by writers */
#define LU_PK_MARK '('
#define LU_PK_EMPTY_LIST ']'
#define LU_PK_EMPTY_DICT '}'
#define LU_PK_EMPTY_TUPLE ')'
#define LU_PK_APPENDS 'e'
#define LU_PK_SETITEMS 'u'
#define LU_PK_TUPLE 't'
#define LU_PK_REDUCE 'R'
#define LU_PK_BUILD 'b'
#define LU_PK_BINPERSID 'Q'
#define LU_PK_EMPTY_SET '\x8f'
#define LU_PK_ADDITEMS '\x90'
#define LU_PK_FROZENSET '\x91'

#endif
