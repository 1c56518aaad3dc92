#include "cl/tunables.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "core/env.h"

#define UNSET INT_MIN
#define NLAYERS (LU_TUNE_FROM_SET + 1)

typedef struct {
  const char *name, *values, *doc;
  int dflt[2]; /* per class */
} tune_desc;

static const tune_desc descs[LU_TUNE_COUNT] = {
#define LU_TUNE_DESC_(id, name, cpu, gpu, values, doc) {name, values, doc, {cpu, gpu}},
  LU_TUNABLES(LU_TUNE_DESC_)
#undef LU_TUNE_DESC_
};

/* Built-in per-device entries, matched against the device's vendor or name. The GPU class defaults
 * were measured on an H200 (bench/ops.lua quick 3d: forward 8 x 8 ran 4x faster than 16 x 16 there,
 * the weight gradient 4 lanes x 8 channels 3.4x faster than 16 x 8); a measured device gets its own
 * entries here, or a tunables file from `lunet tune --kernels`. */
static const struct { const char *match, *name; int value; } builtin[] = {
  {"NVIDIA", "conv.vx", 8},
  {"NVIDIA", "conv.cob", 8},
  {"NVIDIA", "conv.wgrad_vx", 4},
  {"NVIDIA", "conv.cobw", 8},
};

/* Keyed values ("name@key") of the file and run-time layers; a fixed table (a tuned network has a few
 * dozen GEMM shapes). */
#define MAX_KEYED 512
typedef struct {
  lu_tune_id id;
  int value;
  char key[LU_TUNE_KEY_MAX];
} keyed_value;
typedef struct {
  int n;
  keyed_value v[MAX_KEYED];
} keyed_table;

struct lu_tunables {
  int layer[NLAYERS][LU_TUNE_COUNT]; /* UNSET where a layer says nothing */
  keyed_table keyed_file, keyed_set;
  int value[LU_TUNE_COUNT];          /* resolved */
  lu_tune_layer from[LU_TUNE_COUNT];
  int klass;
};

/* The class of the device's own type (anything but a CPU chooses as a GPU). */
static int native_class(const lu_device *dev) { return dev->is_cpu ? LU_CLASS_CPU : LU_CLASS_GPU; }

static void resolve(lu_device *dev) {
  struct lu_tunables *t = dev->tune;
  int klass = native_class(dev);
  for (int l = NLAYERS - 1; l > 0; l--)
    if (t->layer[l][LU_TUNE_DEVICE_CLASS] != UNSET && t->layer[l][LU_TUNE_DEVICE_CLASS] != LU_TUNE_AUTO) {
      klass = t->layer[l][LU_TUNE_DEVICE_CLASS];
      break;
    }
  t->klass = klass;
  for (int i = 0; i < LU_TUNE_COUNT; i++) {
    t->value[i] = descs[i].dflt[klass];
    t->from[i] = LU_TUNE_FROM_CLASS;
    for (int l = NLAYERS - 1; l > 0; l--)
      if (t->layer[l][i] != UNSET) {
        t->value[i] = t->layer[l][i];
        t->from[i] = (lu_tune_layer)l;
        break;
      }
  }
  t->value[LU_TUNE_DEVICE_CLASS] = klass;
}

int lu_tune(const lu_device *dev, lu_tune_id id) {
  if (!dev->tune) return descs[id].dflt[native_class(dev)];
  return dev->tune->value[id];
}

int lu_tune_or(const lu_device *dev, lu_tune_id id, int rule) {
  int v = lu_tune(dev, id);
  return v == LU_TUNE_AUTO ? rule : v;
}

int lu_tune_class(const lu_device *dev) {
  return dev->tune ? dev->tune->klass : native_class(dev);
}

lu_status lu_tune_find(const char *name, lu_tune_id *id) {
  for (int i = 0; i < LU_TUNE_COUNT; i++)
    if (strcmp(descs[i].name, name) == 0) {
      *id = (lu_tune_id)i;
      return LU_OK;
    }
  return lu_fail(LU_EARG, "no kernel tunable '%s' (lunet tune --list names them)", name);
}

lu_status lu_tune_find_keyed(const char *name, lu_tune_id *id, char *keybuf, size_t n, const char **key) {
  const char *at = strchr(name, '@');
  *key = NULL;
  if (!at) return lu_tune_find(name, id);
  char base[128];
  size_t blen = (size_t)(at - name), klen = strlen(at + 1);
  if (blen >= sizeof base) return lu_fail(LU_EARG, "no kernel tunable '%s'", name);
  if (klen == 0 || klen >= LU_TUNE_KEY_MAX || klen >= n)
    return lu_fail(LU_EARG, "tunable '%s': a key of 1 to %d characters after '@'", name, LU_TUNE_KEY_MAX - 1);
  for (const char *p = at + 1; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
      return lu_fail(LU_EARG, "tunable '%s': its key may hold letters, digits, '.', '_' and '-' only", name);
  memcpy(base, name, blen);
  base[blen] = 0;
  LU_TRY(lu_tune_find(base, id));
  memcpy(keybuf, at + 1, klen + 1);
  *key = keybuf;
  return LU_OK;
}

static keyed_value *keyed_find(const keyed_table *t, lu_tune_id id, const char *key) {
  for (int i = 0; i < t->n; i++)
    if (t->v[i].id == id && strcmp(t->v[i].key, key) == 0) return (keyed_value *)&t->v[i];
  return NULL;
}

/* Sets (or with unset removes) one keyed value of a table. */
static lu_status keyed_put(keyed_table *t, lu_tune_id id, const char *key, int value, int unset) {
  keyed_value *e = keyed_find(t, id, key);
  if (unset) {
    if (e) *e = t->v[--t->n];
    return LU_OK;
  }
  if (!e) {
    if (t->n == MAX_KEYED) return lu_fail(LU_EUNSUPPORTED, "tunable %s@%s: more than %d keyed values", descs[id].name, key, MAX_KEYED);
    if (strlen(key) >= LU_TUNE_KEY_MAX) return lu_fail(LU_EARG, "tunable %s: key '%s' too long", descs[id].name, key);
    e = &t->v[t->n++];
    e->id = id;
    snprintf(e->key, sizeof e->key, "%s", key);
  }
  e->value = value;
  return LU_OK;
}

int lu_tune_keyed(const lu_device *dev, lu_tune_id id, const char *key) {
  const struct lu_tunables *t = dev->tune;
  if (!t || !key || t->from[id] == LU_TUNE_FROM_SET) return lu_tune(dev, id);
  const keyed_value *e = keyed_find(&t->keyed_set, id, key);
  if (e) return e->value;
  if (t->from[id] == LU_TUNE_FROM_ENV) return t->value[id];
  e = keyed_find(&t->keyed_file, id, key);
  return e ? e->value : t->value[id];
}

lu_status lu_tune_set_keyed(lu_device *dev, lu_tune_id id, const char *key, int value, int unset) {
  LU_TRY(lu_tune_init(dev));
  if (!unset && value < LU_TUNE_AUTO)
    return lu_fail(LU_EARG, "tunable %s@%s: %d is not auto (-1) or a number >= 0", descs[id].name, key, value);
  return keyed_put(&dev->tune->keyed_set, id, key, value, unset);
}

int lu_tune_keyed_entry(const lu_device *dev, int i, lu_tune_id *id, const char **key, int *value,
                        lu_tune_layer *from) {
  const struct lu_tunables *t = dev->tune;
  if (!t || i < 0) return 0;
  if (i < t->keyed_set.n) {
    const keyed_value *e = &t->keyed_set.v[i];
    *id = e->id; *key = e->key; *value = e->value; *from = LU_TUNE_FROM_SET;
    return 1;
  }
  /* then the file's entries that no run-time one covers */
  int k = i - t->keyed_set.n;
  for (int j = 0; j < t->keyed_file.n; j++) {
    const keyed_value *e = &t->keyed_file.v[j];
    if (keyed_find(&t->keyed_set, e->id, e->key)) continue;
    if (k-- == 0) {
      *id = e->id; *key = e->key; *value = e->value; *from = LU_TUNE_FROM_FILE;
      return 1;
    }
  }
  return 0;
}

const char *lu_tune_name(lu_tune_id id) { return descs[id].name; }
const char *lu_tune_doc(lu_tune_id id) { return descs[id].doc; }
const char *lu_tune_values(lu_tune_id id) { return descs[id].values; }

static const char *layer_names[NLAYERS] = {"class default", "built-in", "file", "environment", "set"};
const char *lu_tune_layer_name(lu_tune_layer l) { return layer_names[l]; }
lu_tune_layer lu_tune_source(const lu_device *dev, lu_tune_id id) {
  return dev->tune ? dev->tune->from[id] : LU_TUNE_FROM_CLASS;
}

lu_status lu_tune_parse(lu_tune_id id, const char *text, int *value) {
  if (strcmp(text, "auto") == 0) { *value = LU_TUNE_AUTO; return LU_OK; }
  const char *names = descs[id].values;
  if (names) {
    size_t len = strlen(text);
    int k = 0;
    for (const char *p = names; *p; k++) {
      const char *bar = strchr(p, '|');
      size_t n = bar ? (size_t)(bar - p) : strlen(p);
      if (n == len && strncmp(p, text, n) == 0) { *value = k; return LU_OK; }
      p += n + (bar != NULL);
    }
  }
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (end != text && *end == 0 && errno == 0 && v >= 0 && v <= INT_MAX) { *value = (int)v; return LU_OK; }
  return lu_fail(LU_EARG, "tunable %s: '%s' is not auto%s%s or a number >= 0", descs[id].name, text,
                 names ? ", " : "", names ? names : "");
}

void lu_tune_format(lu_tune_id id, int value, char *buf, size_t n) {
  if (value == LU_TUNE_AUTO) { snprintf(buf, n, "auto"); return; }
  const char *p = descs[id].values;
  for (int k = 0; p && *p; k++) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (k == value) { snprintf(buf, n, "%.*s", (int)len, p); return; }
    p += len + (bar != NULL);
  }
  snprintf(buf, n, "%d", value);
}

void lu_tune_path(const lu_device *dev, char *buf, size_t n) {
  const char *file = lu_env("LUNET_TUNABLES"); /* one file for a run (specs, a tuning experiment) */
  if (file) { snprintf(buf, n, "%s", file); return; }
  lu_cache_file(buf, n, "tunables-", dev->name, ".txt");
}

/* Reads "name value" lines ('#' starts a comment) into the file layer; a missing file is no error. */
static lu_status read_file(lu_device *dev) {
  int *layer = dev->tune->layer[LU_TUNE_FROM_FILE];
  for (int i = 0; i < LU_TUNE_COUNT; i++) layer[i] = UNSET;
  dev->tune->keyed_file.n = 0;
  char path[4096], line[512];
  lu_tune_path(dev, path, sizeof path);
  FILE *f = fopen(path, "r");
  if (!f) return LU_OK;
  lu_status st = LU_OK;
  for (int ln = 1; st == LU_OK && fgets(line, sizeof line, f); ln++) {
    char key[128], val[128];
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    int got = sscanf(line, "%127s %127s", key, val);
    if (got <= 0) continue;
    lu_tune_id id;
    char keybuf[LU_TUNE_KEY_MAX];
    const char *k = NULL;
    int v;
    if (got != 2) st = lu_fail(LU_EFORMAT, "%s:%d: expected 'name value'", path, ln);
    else if ((st = lu_tune_find_keyed(key, &id, keybuf, sizeof keybuf, &k)) == LU_OK &&
             (st = lu_tune_parse(id, val, &v)) == LU_OK) {
      if (k) st = keyed_put(&dev->tune->keyed_file, id, k, v, 0);
      else layer[id] = v;
    }
    if (st != LU_OK) st = lu_fail_context(st, "tunables file %s line %d", path, ln);
  }
  fclose(f);
  return st;
}

/* LUNET_<NAME>: explicit overrides for tuning runs, read once. */
static lu_status read_env(lu_device *dev) {
  int *layer = dev->tune->layer[LU_TUNE_FROM_ENV];
  for (int i = 0; i < LU_TUNE_COUNT; i++) {
    layer[i] = UNSET;
    char var[128] = "LUNET_";
    size_t j = 6;
    for (const char *p = descs[i].name; *p && j + 1 < sizeof var; p++)
      var[j++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    var[j] = 0;
    const char *v = lu_env(var);
    if (!v) continue;
    lu_status st = lu_tune_parse((lu_tune_id)i, v, &layer[i]);
    if (st != LU_OK) return lu_fail_context(st, "$%s", var);
  }
  return LU_OK;
}

lu_status lu_tune_init(lu_device *dev) {
  if (dev->tune) return LU_OK;
  struct lu_tunables *t = calloc(1, sizeof *t);
  if (!t) return lu_fail(LU_ENOMEM, "kernel tunables of %s", dev->name);
  for (int l = 0; l < NLAYERS; l++)
    for (int i = 0; i < LU_TUNE_COUNT; i++) t->layer[l][i] = UNSET;
  for (size_t e = 0; e < sizeof builtin / sizeof builtin[0]; e++) {
    lu_tune_id id;
    if ((strstr(dev->vendor, builtin[e].match) || strstr(dev->name, builtin[e].match)) &&
        lu_tune_find(builtin[e].name, &id) == LU_OK)
      t->layer[LU_TUNE_FROM_BUILTIN][id] = builtin[e].value;
  }
  dev->tune = t;
  lu_status st = lu_tune_reload(dev);
  if (st != LU_OK) { /* the device stays unusable, naming the bad file or variable, until it is fixed */
    dev->tune = NULL;
    free(t);
  }
  return st;
}

lu_status lu_tune_reload(lu_device *dev) {
  if (!dev->tune) return lu_tune_init(dev);
  lu_status st = read_file(dev);
  if (st == LU_OK) st = read_env(dev);
  resolve(dev);
  return st;
}

lu_status lu_tune_set(lu_device *dev, lu_tune_id id, int value, int unset) {
  LU_TRY(lu_tune_init(dev));
  if (!unset && value < LU_TUNE_AUTO)
    return lu_fail(LU_EARG, "tunable %s: %d is not auto (-1) or a number >= 0", descs[id].name, value);
  dev->tune->layer[LU_TUNE_FROM_SET][id] = unset ? UNSET : value;
  resolve(dev);
  return LU_OK;
}

void lu_tune_reset(lu_device *dev) {
  if (!dev->tune) return;
  for (int i = 0; i < LU_TUNE_COUNT; i++) dev->tune->layer[LU_TUNE_FROM_SET][i] = UNSET;
  dev->tune->keyed_set.n = 0;
  resolve(dev);
}

lu_status lu_tune_save(lu_device *dev) {
  LU_TRY(lu_tune_init(dev));
  struct lu_tunables *t = dev->tune;
  char path[4096], tmp[LU_ATOMIC_TMP_MAX];
  lu_tune_path(dev, path, sizeof path);
  LU_TRY(lu_mkdirs_for(path)); /* the cache folder may not exist yet */
  FILE *f;
  LU_TRY(lu_atomic_fopen(path, tmp, sizeof tmp, &f));
  fprintf(f, "# Lunet kernel tunables for %s (%s), written by lunet tune.\n"
             "# name value (name@key: the value for one key)\n", dev->name,
          dev->vendor);
  for (int i = 0; i < LU_TUNE_COUNT; i++) {
    int v = t->layer[LU_TUNE_FROM_SET][i] != UNSET ? t->layer[LU_TUNE_FROM_SET][i] : t->layer[LU_TUNE_FROM_FILE][i];
    if (v == UNSET || i == LU_TUNE_DEVICE_CLASS) continue;
    char buf[64];
    lu_tune_format((lu_tune_id)i, v, buf, sizeof buf);
    fprintf(f, "%s %s\n", descs[i].name, buf);
  }
  lu_tune_id id;
  const char *key;
  int v;
  lu_tune_layer from;
  for (int i = 0; lu_tune_keyed_entry(dev, i, &id, &key, &v, &from); i++) {
    char buf[64];
    lu_tune_format(id, v, buf, sizeof buf);
    fprintf(f, "%s@%s %s\n", descs[id].name, key, buf);
  }
  LU_TRY(lu_atomic_fclose(f, tmp, path, ferror(f) ? lu_fail(LU_EIO, "writing the tunables file %s", path) : LU_OK));
  LU_TRY(read_file(dev));
  resolve(dev);
  return LU_OK;
}
