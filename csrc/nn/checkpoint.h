/* Lunet checkpoints (docs/formats.md, "Checkpoints"): a versioned binary file holding the network's
 * architecture string, a JSON header written by the caller (plans, dataset.json, configuration,
 * epoch, learning-rate and RNG state) and the raw float32 parameters and momentum in parameter order.
 *
 *   offset  size  content
 *   0       8     magic "LUNETCKP"
 *   8       4     format version, u32 little endian (1)
 *   12      4     number of parameter tensors, u32
 *   16      8     total parameter floats (sum of numel), u64
 *   24      4     architecture string length A, u32; then A bytes (lu_unet_arch_string)
 *   28+A    8     JSON header length J, u64; then J bytes of UTF-8 JSON
 *   ...           per parameter, in order: name length u32, name, ndim u32, ndim x i64 shape
 *   ...           parameters: every tensor's floats, concatenated (float32 LE)
 *   ...           momentum buffers: same layout
 * Written atomically (core/atomic_file.h), so an interrupted save leaves the previous file. */
#ifndef LU_CHECKPOINT_H
#define LU_CHECKPOINT_H

#include "nn/unet.h"

#define LU_CKPT_VERSION 1

lu_status lu_ckpt_save(lu_unet *n, const char *path, const char *json, size_t json_len);
/* Reads only the JSON header (malloc'd, NUL-terminated) and the architecture string. */
lu_status lu_ckpt_read_header(const char *path, char **json, char **arch);
/* Loads parameters and, with with_momentum, the momentum into n (prediction passes 0, so the network
 * never makes its momentum buffer); refuses a file from another architecture, naming both. */
lu_status lu_ckpt_load(lu_unet *n, const char *path, int with_momentum);

#endif
