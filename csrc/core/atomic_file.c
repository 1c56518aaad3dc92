/* Atomic file replacement (see atomic_file.h). */
#include "core/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

lu_status lu_atomic_open(const char *path, char *tmp, size_t ntmp, int *fd) {
  int n = snprintf(tmp, ntmp, "%s.tmp-XXXXXX", path);
  if (n < 0 || (size_t)n >= ntmp) return lu_fail(LU_EARG, "%s: path too long", path);
  *fd = mkstemp(tmp);
  if (*fd < 0) return lu_fail(LU_EIO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
  if (fchmod(*fd, 0644) != 0) {
    int e = errno;
    close(*fd);
    unlink(tmp);
    return lu_fail(LU_EIO, "%s: chmod of temporary file failed: %s", path, strerror(e));
  }
  return LU_OK;
}

lu_status lu_atomic_fopen(const char *path, char *tmp, size_t ntmp, FILE **f) {
  int fd;
  LU_TRY(lu_atomic_open(path, tmp, ntmp, &fd));
  *f = fdopen(fd, "wb");
  if (!*f) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return lu_fail(LU_EIO, "%s: cannot open temporary file for writing: %s", path, strerror(e));
  }
  return LU_OK;
}

/* fsync reports EINVAL on file systems that cannot sync (some FUSE or special mounts): nothing to wait for. */
static int sync_failed(int rc) { return rc != 0 && errno != EINVAL; }

static lu_status rename_into_place(const char *tmp, const char *path) {
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return lu_fail(LU_EIO, "%s: cannot rename temporary file into place: %s", path, strerror(e));
  }
  return LU_OK;
}

lu_status lu_atomic_commit(const char *tmp, const char *path) {
  /* the writer's descriptor is closed; a fresh one syncs the same file */
  int fd = open(tmp, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || sync_failed(fsync(fd))) {
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    return lu_fail(LU_EIO, "%s: cannot sync temporary file: %s", path, strerror(e));
  }
  close(fd);
  return rename_into_place(tmp, path);
}

lu_status lu_atomic_fclose(FILE *f, const char *tmp, const char *path, lu_status st) {
  if (st == LU_OK && (fflush(f) != 0 || sync_failed(fsync(fileno(f)))))
    st = lu_fail(LU_EIO, "%s: write failed: %s", path, strerror(errno));
  if (fclose(f) != 0 && st == LU_OK) st = lu_fail(LU_EIO, "%s: write failed: %s", path, strerror(errno));
  if (st != LU_OK) {
    unlink(tmp);
    return st;
  }
  return rename_into_place(tmp, path);
}

void lu_atomic_abort(const char *tmp) { unlink(tmp); }

lu_status lu_mkdirs(const char *dir) {
  char tmp[LU_ATOMIC_TMP_MAX];
  if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return lu_fail(LU_EARG, "folder name too long: %s", dir);
  for (char *p = tmp + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char c = *p;
    *p = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return lu_fail(LU_EIO, "cannot create folder %s: %s", tmp, strerror(errno));
    *p = c;
    if (c == '\0') return LU_OK;
  }
}

lu_status lu_mkdirs_for(const char *path) {
  char dir[LU_ATOMIC_TMP_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return LU_OK;
  *slash = '\0';
  return lu_mkdirs(dir);
}
