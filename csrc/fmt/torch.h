/* PyTorch's zip checkpoint format (torch.save since 1.6): <archive>/data.pkl, a protocol-2 pickle
 * whose tensors name their storages by persistent id ('storage', torch.FloatStorage, key, location,
 * numel), and the storages' raw little-endian bytes in <archive>/data/<key>, plus small records
 * (version, byteorder, .format_version, .storage_alignment, .data/serialization_id). The legacy
 * pre-1.6 format (a bare pickle stream) is refused with a message that says so. */
#ifndef LU_FMT_TORCH_H
#define LU_FMT_TORCH_H

#include <stddef.h>

#include "fmt/pickle.h"

/* Unpickles <archive>/data.pkl of path and reads every storage it names (eagerly, CRC checked).
 * symbolic: as lu_pickle_opts.symbolic (may be NULL). *root lives until lu_unpickler_free(*u). */
lu_status lu_torch_load(const char *path, const char *const *symbolic, lu_unpickler **u, lu_pv **root);

typedef struct lu_torch_storage { const void *data; size_t nbytes; } lu_torch_storage;
/* Writes a torch.save-compatible zip: pkl (a protocol-2 pickle whose persistent ids use the keys
 * "0".."n-1") and the n storages; the archive folder is the file name without its extension, as
 * torch.save names it. The serialization id is derived from the content, so equal input gives equal
 * bytes. Atomic (temporary file, then rename). */
lu_status lu_torch_save(const char *path, const void *pkl, size_t pkl_len, size_t n, const lu_torch_storage *st);

#endif
