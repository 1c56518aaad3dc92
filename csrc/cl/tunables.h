/* Kernel tunables: per-device parameters kept as data, as CLBlast keeps its kernels' parameters.
 *
 * Every device has one table of named integer parameters (work per work-item, chunk sizes, and the
 * switches that pick a kernel strategy). A value is resolved from the highest layer that sets it:
 *   1. set at run time (tune.set from Lua, a spec or `lunet tune` trying candidates);
 *   2. the environment, read once when the table is built: LUNET_<NAME> with dots as underscores
 *      (conv.wino_cich -> LUNET_CONV_WINO_CICH), for tuning runs only;
 *   3. the device's tunables file, written by `lunet tune --kernels` (lu_tune_path);
 *   4. the built-in per-device table (entries matched by vendor or name substring);
 *   5. the default of the device's class (cpu or gpu).
 * A tunable may also be set for one key, "name@key" (the implicit GEMM's tile per GEMM shape): such a
 * value sits just below the plain name's run-time setting (so a forced value still wins), above the
 * environment and everything else (lu_tune_keyed).
 * LU_TUNE_AUTO means "the kernel's own rule decides" (for a switch: by geometry); 0 turns a switch
 * off, 1 forces it wherever the geometry allows.
 *
 * The class (device.class) is itself a tunable: forcing "gpu" on a PoCL CPU device makes every op
 * choose the kernels a GPU would run, so that CI checks them against the float64 references. */
#ifndef LU_TUNABLES_H
#define LU_TUNABLES_H

#include <stddef.h>

#include "cl/device.h"

#define LU_TUNE_AUTO (-1)

enum { LU_CLASS_CPU = 0, LU_CLASS_GPU = 1 };

/* X(ID, name, cpu default, gpu default, value names or NULL, what it sets) */
#define LU_TUNABLES(X)                                                                                          \
  X(DEVICE_CLASS, "device.class", LU_TUNE_AUTO, LU_TUNE_AUTO, "cpu|gpu", "kernel selection class (auto: the device's type)") \
  X(CONV_ALGO, "conv.algo", LU_TUNE_AUTO, LU_TUNE_AUTO, "direct|gemm", "convolutions on the direct kernels or as im2col + GEMM") \
  X(CONV_WORKSPACE_KB, "conv.workspace_kb", 65536, 65536, NULL, "scratch budget of one convolution (column buffers, partial sums)") \
  X(CONV_VX, "conv.vx", 16, 8, NULL, "widest x vector per work-item, direct forward / backward data") \
  X(CONV_COB, "conv.cob", 16, 8, NULL, "output channels per work-item, direct forward / backward data") \
  X(CONV_WGRAD_VX, "conv.wgrad_vx", 16, 4, NULL, "widest x vector per work-item, direct weight gradient") \
  X(CONV_COBW, "conv.cobw", 8, 8, NULL, "output channels per work-item, direct weight gradient") \
  X(CONV_CVEC, "conv.cvec", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "channel-vector kernels (conv_cvec, dgrad_cvec, convT_cvec, wgrad_cvec); 0: never") \
  X(CONV_PB, "conv.pb", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "conv_cvec: positions per work-item along x") \
  X(CONV_RB, "conv.rb", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "conv_cvec: rows per work-item") \
  X(CONV_CVEC_ORDER, "conv.cvec_order", 1, 1, NULL, "conv_cvec: channel blocks as the slowest work-item index") \
  X(CONV_ROWS, "conv.rows", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "stride-1 3-tap rows on conv_rows") \
  X(CONV_ROWS_COB, "conv.rows_cob", 8, 8, NULL, "conv_rows: output channels per work-item") \
  X(CONV_WDIRECT, "conv.wdirect", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "conv_rows: weights read in place (1) or packed (0)") \
  X(CONV_DRB, "conv.drb", 2, 2, NULL, "conv_rows: output rows per work-item") \
  X(CONV_RGRP, "conv.rgrp", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "conv_rows: row blocks per work-item") \
  X(CONV_CICH, "conv.cich", 64, 64, NULL, "conv_rows: input channels per sweep over the channel blocks") \
  X(CONVT_ORDER, "convT.order", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "convT_cvec: channel blocks as the slowest index") \
  X(CONVT_TROWS, "convT.trows", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "convT_cvec: output rows per work-item") \
  X(CONV_DGRAD_ROWS, "conv.dgrad_rows", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "strided backward data on dgrad_rows") \
  X(CONV_PHASES, "conv.phases", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "strided backward data by output phases; 0: never") \
  X(CONV_PHASE_ORDER, "conv.phase_order", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "phases: channel blocks as the slowest index") \
  X(CONV_S2X, "conv.s2x", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "strided backward data split by x phase (dgrad_s2x); 0: never") \
  X(CONV_WINO, "conv.wino", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "3x3(x3) stride-1 rows by Winograd F(2,3) (conv_wino)") \
  X(CONV_WINO_COB, "conv.wino_cob", 4, 4, NULL, "conv_wino: output channels per work-item") \
  X(CONV_WINO_RG, "conv.wino_rg", 2, 2, NULL, "conv_wino: rows per work-item") \
  X(CONV_WINO_CICH, "conv.wino_cich", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "conv_wino: input channels per transform") \
  X(CONV_WINO_TILE, "conv.wino_tile", LU_TUNE_AUTO, LU_TUNE_AUTO, "rows|2d|3d|4x4", "conv_wino: Winograd F(2,3) along x only (rows), over (y, x) or (z, y, x) tiles, or F(4x4,3x3) tiles") \
  X(CONV_WINO_TILE_COB, "conv.wino_tile_cob", 4, 4, NULL, "conv_wino_tile: output channels per work-item") \
  X(CONV_WINO_TILE_CICH, "conv.wino_tile_cich", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "conv_wino_tile: input channels per transform") \
  X(CONV_WINO_T4_RB, "conv.wino_t4_rb", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "conv_wino_t4 / conv_wino_tile: blocks of 4 / 2 rows per work-item (auto: up to 8 / 16 where the weights are large)") \
  X(CONV_WINO_T4_CBG, "conv.wino_t4_cbg", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "conv_wino_t4 / conv_wino_tile: work-items splitting a row range's channel blocks") \
  X(CONV_S2ROWS, "conv.s2rows", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "stride-2 forwards on conv_s2rows") \
  X(CONV_S2_RG, "conv.s2_rg", 2, 2, NULL, "conv_s2rows: output rows per work-item") \
  X(CONV_S2_CICH, "conv.s2_cich", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "conv_s2rows: input channels per de-interleave") \
  X(CONV_WGRAD_TAPS, "conv.wgrad_taps", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "wgrad_cvec: every tap of a position at once") \
  X(CONV_WGRAD_CHUNK, "conv.wgrad_chunk", 4096, 4096, NULL, "weight gradient: output positions per partial sum") \
  X(CONV_WGRAD_COV, "conv.wgrad_cov", 2, 2, NULL, "wgrad_cvec: vectors of output channels per work-item") \
  X(CONV_CIB, "conv.cib", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "wgrad_cvec: input channels per work-item") \
  X(CONVT_ROWS, "convT.rows", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "transposed conv forward on convT_rows") \
  X(CONVT_DGRAD, "convT.dgrad", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "transposed conv backward data on convT_dgrad") \
  X(CONVT_DGRAD_COB, "convT.dgrad_cob", 4, 4, NULL, "convT_dgrad: channels per work-item") \
  X(CONVT_DGRAD_DRB, "convT.dgrad_drb", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "convT_dgrad: rows per work-item") \
  X(CONV_IGEMM, "conv.igemm", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "implicit-GEMM convolutions (auto: where an activation is float16)") \
  X(CONV_IGEMM_FIXED, "conv.igemm_fixed", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "implicit GEMM: geometry as build options (auto: on GPUs)") \
  X(CONV_MMA, "conv.mma", LU_TUNE_AUTO, LU_TUNE_AUTO, "fma|emulate|ptx", "implicit GEMM micro-kernel (auto: ptx where the device probe passed)") \
  X(CONV_IGEMM_TILE, "conv.igemm_tile", LU_TUNE_AUTO, LU_TUNE_AUTO, "64x64|128x64|64x128|128x128|32x128|32x64|64x64k32|128x128k32|64x64l|128x64l|64x128l|128x128l|32x128l|32x64l|64x64k32l|128x128k32l", "implicit GEMM: work-group tile M x N (x K slice; l: f16 fragments by ldmatrix); per GEMM shape as conv.igemm_tile@<pass>.<kernel>.<M>x<N>x<K> (lunet tune --igemm)") \
  X(LOSS_WG, "loss.wg", 64, 256, NULL, "loss kernels' work-group size") \
  X(LOSS_VW, "loss.vw", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "loss and softmax: voxels per work-item (1 or 8)") \
  X(INSTNORM, "instnorm", LU_TUNE_AUTO, LU_TUNE_AUTO, "rows|groups", "instance norm: a row per work-item or a work-group per row") \
  X(TRAIN_CAT_IN_PLACE, "train.cat_in_place", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "training: the decoder's first conv reads the upsampled map and the skip in place where the implicit GEMM runs (auto); 0: a concatenated copy") \
  X(TRAIN_RECOMPUTE, "train.recompute", LU_TUNE_AUTO, LU_TUNE_AUTO, NULL, "training: norm outputs recomputed in the backward from the kept conv outputs instead of kept (auto: on); 0: kept")

typedef enum {
#define LU_TUNE_ENUM_(id, name, cpu, gpu, values, doc) LU_TUNE_##id,
  LU_TUNABLES(LU_TUNE_ENUM_)
#undef LU_TUNE_ENUM_
  LU_TUNE_COUNT
} lu_tune_id;

/* Where a value came from (lu_tune_source). */
typedef enum { LU_TUNE_FROM_CLASS, LU_TUNE_FROM_BUILTIN, LU_TUNE_FROM_FILE, LU_TUNE_FROM_ENV, LU_TUNE_FROM_SET } lu_tune_layer;

/* The value of id on dev (LU_TUNE_AUTO where the kernel's rule decides). Cheap: an array read. */
int lu_tune(const lu_device *dev, lu_tune_id id);
/* The value of id, or `rule` where it is LU_TUNE_AUTO. */
int lu_tune_or(const lu_device *dev, lu_tune_id id, int rule);
/* The class kernels are chosen for: LU_CLASS_CPU or LU_CLASS_GPU. */
int lu_tune_class(const lu_device *dev);
static inline int lu_tune_cpu(const lu_device *dev) { return lu_tune_class(dev) == LU_CLASS_CPU; }

/* Builds dev's table (class defaults, built-in entries, file, environment); called at device set-up. */
lu_status lu_tune_init(lu_device *dev);
/* Id of a tunable by name; LU_EARG naming the unknown name otherwise. */
lu_status lu_tune_find(const char *name, lu_tune_id *id);
const char *lu_tune_name(lu_tune_id id);
const char *lu_tune_doc(lu_tune_id id);
/* Value names ("cpu|gpu") of an enumerated tunable, or NULL for a number. */
const char *lu_tune_values(lu_tune_id id);
/* Parses "auto", a number or one of the value names into *value. */
lu_status lu_tune_parse(lu_tune_id id, const char *text, int *value);
/* Writes the value as text ("auto", a value name or a number) into buf. */
void lu_tune_format(lu_tune_id id, int value, char *buf, size_t n);
lu_tune_layer lu_tune_source(const lu_device *dev, lu_tune_id id);
const char *lu_tune_layer_name(lu_tune_layer l);

/* The value of id for one key: the plain run-time setting, else the key's run-time setting, else the
 * environment, else the key's file entry, else lu_tune(dev, id). */
int lu_tune_keyed(const lu_device *dev, lu_tune_id id, const char *key);
/* Sets id for one key at run time (unset = 1 removes it). Keys: at most LU_TUNE_KEY_MAX - 1 characters of
 * [A-Za-z0-9._x-]. */
#define LU_TUNE_KEY_MAX 64
lu_status lu_tune_set_keyed(lu_device *dev, lu_tune_id id, const char *key, int value, int unset);
/* The i-th keyed entry now in effect (run-time over file), for listing: 0 past the end. */
int lu_tune_keyed_entry(const lu_device *dev, int i, lu_tune_id *id, const char **key, int *value,
                        lu_tune_layer *from);
/* Splits "name@key" (or a plain name: *key = NULL) into a tunable id and its key, copied into keybuf. */
lu_status lu_tune_find_keyed(const char *name, lu_tune_id *id, char *keybuf, size_t n, const char **key);

/* Sets id at run time (the top layer); unset = 1 removes that setting again. */
lu_status lu_tune_set(lu_device *dev, lu_tune_id id, int value, int unset);
/* Clears every run-time setting of dev. */
void lu_tune_reset(lu_device *dev);
/* The tunables file of dev: $LUNET_TUNABLES, else <cache>/tunables-<device name>.txt. */
void lu_tune_path(const lu_device *dev, char *buf, size_t n);
/* Re-reads the file and environment layers (after `lunet tune` wrote the file). */
lu_status lu_tune_reload(lu_device *dev);
/* Writes the values now set at run time, over those of the file, into the device's file (atomically). */
lu_status lu_tune_save(lu_device *dev);

#endif
