/* Advisory folder locks: a run that writes a shared folder (a training's fold folder, a prediction's
 * output folder, a preprocessed configuration folder) holds flock(LOCK_EX) on <dir>/.lunet.lock for its
 * whole length, so a second run on the same folder fails at once instead of interleaving its files with
 * the first's. The file holds the holder's pid, host and command line, for the message. */
#ifndef LU_LOCK_H
#define LU_LOCK_H

#include "core/status.h"

#define LU_LOCK_FILE ".lunet.lock"

typedef struct lu_lock lu_lock;

/* Takes the lock on dir (which must exist); `what` names the folder in messages ("fold folder").
 * When another open description holds it (another process, or another acquire in this one) fails
 * with LU_ESTATE: "<what> <dir> is in use by pid N (command ...) on HOST; ...". */
lu_status lu_lock_acquire(const char *dir, const char *what, lu_lock **out);
/* The same with another lock file name in dir (a share of a folder: one part of a split prediction). */
lu_status lu_lock_acquire_named(const char *dir, const char *file, const char *what, lu_lock **out);
/* Removes the lock file and releases the lock; NULL is a no-op. */
void lu_lock_release(lu_lock *lk);
const char *lu_lock_path(const lu_lock *lk);

#endif
