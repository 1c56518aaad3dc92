/* The process environment: the one place Lunet reads it. Settings (LUNET_DEVICE, LUNET_CACHE_DIR,
 * LUNET_KERNELS, LUNET_PROFILE, ...) and the explicit per-run overrides of kernel tunables
 * (cl/tunables.h) all come through here, so that a reader can find every knob in one grep. */
#ifndef LU_ENV_H
#define LU_ENV_H

#include <stddef.h>

/* $name when set and not empty, else NULL. */
const char *lu_env(const char *name);
/* Lunet's cache folder: $LUNET_CACHE_DIR as it is, else $XDG_CACHE_HOME/lunet/SUB, else
 * ~/.cache/lunet/SUB (SUB "" for the folder itself). */
void lu_cache_dir(char *buf, size_t n, const char *sub);
/* A per-device file in the cache folder: <cache>/<prefix><device name, non-alphanumerics as _><ext>. */
void lu_cache_file(char *buf, size_t n, const char *prefix, const char *device_name, const char *ext);

#endif
