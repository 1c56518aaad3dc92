/* File identity: what a stored result records about the files it was made from, to tell later whether they
 * changed. XXH64 (xxHash's 64-bit hash, Yann Collet's specification, seed 0) of bytes or of a whole file, and a
 * file's size and modification time in nanoseconds. The hash is the reference algorithm written out here (about
 * 100 lines) instead of a dependency: Debian's libxxhash-dev is not in every image the specs run on, and only the
 * one-shot and file forms are needed. Plain C, no Lua. */
#ifndef LU_FILEID_H
#define LU_FILEID_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* XXH64 of n bytes, seed 0 (XXH64("", 0) = 0xEF46DB3751D8E999). */
uint64_t lu_xxh64(const void *p, size_t n);

/* XXH64 of a whole file, read in 1 MiB blocks. */
lu_status lu_xxh64_file(const char *path, uint64_t *out);

/* Size in bytes and modification time in nanoseconds since the epoch (st_mtim). */
lu_status lu_file_stat(const char *path, int64_t *size, int64_t *mtime_ns);

/* Sets dst's modification time (and access time) to src's, so that a copy can later be matched to its source by
 * size and time before any hashing (as rsync -t and cp -p do). */
lu_status lu_file_copy_mtime(const char *src, const char *dst);

#endif
