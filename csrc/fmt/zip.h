/* ZIP archives: a reader (stored and deflate entries, ZIP64 directories and extra fields, every read
 * bounds-checked against the file size and CRC-32 verified) and a writer (stored entries whose data
 * start on a 64-byte boundary, as torch.save's PyTorchStreamWriter places them, or deflate; ZIP64
 * records when a size or offset needs them; written to a temporary file and renamed into place).
 * The C core only: lunet.core.zip (csrc/lua/l_zip.c) is its Lua face; npz and torch files use it. */
#ifndef LU_FMT_ZIP_H
#define LU_FMT_ZIP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

typedef struct lu_zip_entry {
  char *name;
  uint64_t csize, usize; /* compressed and uncompressed sizes */
  uint64_t local_off;    /* offset of the local header */
  uint32_t crc;
  unsigned method;       /* 0 stored, 8 deflate */
} lu_zip_entry;

typedef struct lu_zip {
  char *path;
  FILE *fp;
  uint64_t fsize;
  int n;
  lu_zip_entry *e; /* archive (central directory) order */
} lu_zip;

lu_status lu_zip_open(const char *path, lu_zip **out);
void lu_zip_close(lu_zip *z);
/* Index of the entry called name, or -1. */
int lu_zip_find(const lu_zip *z, const char *name);
/* The whole entry, malloc'd (one spare nul byte after it), CRC checked. Entries larger than
 * max_bytes (0: no limit) are refused before anything is allocated. */
lu_status lu_zip_read(lu_zip *z, int i, size_t max_bytes, void **data, size_t *n);
/* Streams the entry into dest atomically (core/atomic_file.h), CRC checked before the rename. */
lu_status lu_zip_extract(lu_zip *z, int i, const char *dest);

/* Sequential reading of one entry (the npz reader parses its header from the first bytes). */
typedef struct lu_zip_stream lu_zip_stream;
lu_status lu_zip_stream_open(lu_zip *z, int i, lu_zip_stream **out);
/* Reads exactly n bytes or fails ("entry shorter than ..."). */
lu_status lu_zip_stream_read(lu_zip_stream *s, void *dst, size_t n);
uint64_t lu_zip_stream_left(const lu_zip_stream *s);
/* Reads whatever is left and checks the CRC; fails when leftover bytes remain and allow_rest is 0. */
lu_status lu_zip_stream_finish(lu_zip_stream *s, int allow_rest);
void lu_zip_stream_close(lu_zip_stream *s);

/* ---------- writing ---------- */
typedef struct lu_zip_writer lu_zip_writer;
lu_status lu_zip_writer_open(const char *path, lu_zip_writer **out);
/* level 0: stored, data aligned to `align` bytes (0 or 1: no alignment); 1..9: deflate. */
lu_status lu_zip_writer_add(lu_zip_writer *w, const char *name, const void *data, size_t n, int level, unsigned align);
/* The same, streaming the content of the file src. */
lu_status lu_zip_writer_add_file(lu_zip_writer *w, const char *name, const char *src, int level, unsigned align);
/* Streaming entry: begin (size_hint: an upper bound of the uncompressed size, for the ZIP64 decision),
 * write any number of times, end. */
lu_status lu_zip_writer_begin(lu_zip_writer *w, const char *name, uint64_t size_hint, int level, unsigned align);
lu_status lu_zip_writer_write(lu_zip_writer *w, const void *data, size_t n);
lu_status lu_zip_writer_end(lu_zip_writer *w);
/* Writes the central directory and renames the file into place; frees w in every case. */
lu_status lu_zip_writer_finish(lu_zip_writer *w);
/* Removes the temporary file and frees w. */
void lu_zip_writer_abort(lu_zip_writer *w);

#endif
