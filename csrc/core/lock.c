/* Folder locks with flock. flock locks belong to the open file description and vanish when the last
 * descriptor of it closes, so a holder that died (even by SIGKILL) holds nothing: its stale lock file is
 * simply taken over by the next acquire, no pid liveness check is needed. The descriptor is O_CLOEXEC
 * (exec'd tools do not inherit the lock); forked children (prediction's export workers) share it, which
 * is right: they still write the folder. */
#include "core/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct lu_lock {
  int fd;
  char path[4096];
};

/* This process's command line, arguments joined by spaces (empty where /proc is missing). */
static void own_command(char *buf, size_t n) {
  buf[0] = '\0';
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t r = read(fd, buf, n - 1);
  close(fd);
  if (r <= 0) { buf[0] = '\0'; return; }
  while (r > 0 && buf[r - 1] == '\0') r--;
  for (ssize_t i = 0; i < r; i++)
    if (buf[i] == '\0' || buf[i] == '\n') buf[i] = ' ';
  buf[r] = '\0';
}

/* Reads the holder's record; the holder writes it just after locking, so an empty file is retried briefly. */
static void read_holder(int fd, char *buf, size_t n) {
  buf[0] = '\0';
  for (int tries = 0; tries < 20; tries++) {
    ssize_t r = pread(fd, buf, n - 1, 0);
    if (r > 0) {
      buf[r] = '\0';
      return;
    }
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

static lu_status busy(int fd, const char *what, const char *dir, const char *path) {
  char rec[1024];
  read_holder(fd, rec, sizeof rec);
  long pid = 0;
  char host[256] = "";
  const char *cmd = "";
  /* record: "pid <N>\nhost <H>\ncommand <C>\n" */
  char *line = rec;
  while (line && *line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (strncmp(line, "pid ", 4) == 0) pid = strtol(line + 4, NULL, 10);
    else if (strncmp(line, "host ", 5) == 0) snprintf(host, sizeof host, "%s", line + 5);
    else if (strncmp(line, "command ", 8) == 0) cmd = line + 8;
    line = nl ? nl + 1 : NULL;
  }
  close(fd);
  char shown[200]; /* a long command line is cut: the pid is what identifies the holder */
  if (strlen(cmd) >= sizeof shown) snprintf(shown, sizeof shown, "%.*s...", (int)sizeof shown - 4, cmd);
  else snprintf(shown, sizeof shown, "%s", *cmd ? cmd : "command unknown");
  if (pid <= 0)
    return lu_fail(LU_ESTATE, "%s %s is in use by another process (lock file %s); wait for it to end or stop it",
                   what, dir, path);
  return lu_fail(LU_ESTATE, "%s %s is in use by pid %ld (%s) on %s; wait for it to end or stop it (lock file %s)",
                 what, dir, pid, shown, *host ? host : "this host", path);
}

lu_status lu_lock_acquire(const char *dir, const char *what, lu_lock **out) {
  return lu_lock_acquire_named(dir, LU_LOCK_FILE, what, out);
}

lu_status lu_lock_acquire_named(const char *dir, const char *file, const char *what, lu_lock **out) {
  *out = NULL;
  lu_lock *lk = calloc(1, sizeof *lk);
  if (!lk) return lu_fail(LU_ENOMEM, "lock %s: out of memory", dir);
  int n = snprintf(lk->path, sizeof lk->path, "%s/%s", dir, file);
  if (n < 0 || (size_t)n >= sizeof lk->path) {
    free(lk);
    return lu_fail(LU_EARG, "lock %s: path too long", dir);
  }
  /* release unlinks the file while holding the lock; a racer that opened the old file before the unlink
   * may then lock that orphan, so a lock only counts when the locked file is still the one at path */
  for (int attempt = 0; attempt < 100; attempt++) {
    int fd = open(lk->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      int e = errno;
      free(lk);
      return lu_fail(LU_EIO, "cannot lock %s %s: %s: %s", what, dir, file, strerror(e));
    }
    int r;
    do r = flock(fd, LOCK_EX | LOCK_NB);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      int e = errno;
      if (e == EWOULDBLOCK) {
        lu_status st = busy(fd, what, dir, lk->path);
        free(lk);
        return st;
      }
      close(fd);
      free(lk);
      return lu_fail(LU_EIO, "cannot lock %s %s: flock: %s", what, dir, strerror(e));
    }
    struct stat a, b;
    if (fstat(fd, &a) != 0 || stat(lk->path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
      close(fd);
      continue;
    }
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    char cmd[512];
    own_command(cmd, sizeof cmd);
    char rec[1024];
    int len = snprintf(rec, sizeof rec, "pid %ld\nhost %s\ncommand %s\n", (long)getpid(), host, cmd);
    if (len >= (int)sizeof rec) len = (int)sizeof rec - 1;
    /* the record only feeds the message of a second run: failing to write it does not fail the lock */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, rec, (size_t)len, 0) < 0) { /* ignored */ }
    lk->fd = fd;
    *out = lk;
    return LU_OK;
  }
  free(lk);
  return lu_fail(LU_EIO, "cannot lock %s %s: the lock file keeps being replaced", what, dir);
}

void lu_lock_release(lu_lock *lk) {
  if (!lk) return;
  /* unlink before unlocking, so no one can lock the file we are about to drop (see acquire) */
  unlink(lk->path);
  close(lk->fd);
  free(lk);
}

const char *lu_lock_path(const lu_lock *lk) { return lk ? lk->path : NULL; }
