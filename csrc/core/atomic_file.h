/* Atomic file replacement, the one way library code writes an output file: a unique temporary file
 * next to the target is written, synced and renamed over the target, so a reader or a crash sees the
 * old file or the complete new one, never a torn one; on failure the temporary file is removed and the
 * message names the target. */
#ifndef LU_ATOMIC_FILE_H
#define LU_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "core/status.h"

#define LU_ATOMIC_TMP_MAX 4096 /* size for the tmp name buffers below */

/* Creates "<path>.tmp-XXXXXX" (unique, mode 0644: outputs are shared files, mkstemp alone gives 0600)
 * and returns its descriptor; tmp (ntmp bytes) receives the name. */
lu_status lu_atomic_open(const char *path, char *tmp, size_t ntmp, int *fd);
/* The same as a stdio stream opened for binary writing. */
lu_status lu_atomic_fopen(const char *path, char *tmp, size_t ntmp, FILE **f);

/* For writers that closed the temporary file themselves (a zlib stream owns the descriptor): syncs it
 * to disk and renames it over path. */
lu_status lu_atomic_commit(const char *tmp, const char *path);
/* For stdio writers: flushes, syncs and closes f, then renames when st is LU_OK; otherwise, or when any
 * step fails, removes the temporary file. Returns st or the first failure. */
lu_status lu_atomic_fclose(FILE *f, const char *tmp, const char *path, lu_status st);
/* Creates the folder dir and its missing parents (mkdir -p). */
lu_status lu_mkdirs(const char *dir);
/* Creates the folder that will hold the file path, and its missing parents. */
lu_status lu_mkdirs_for(const char *path);
/* Removes the temporary file after a failed write (the descriptor or stream already closed). */
void lu_atomic_abort(const char *tmp);

#endif
