/* The process's address space under RLIMIT_AS (`ulimit -v`). PoCL's CPU driver, its LLVM compiler and
 * the host allocator all draw from it, and PoCL aborts on an assertion instead of failing when its own
 * allocations find it exhausted; so before a large allocation Lunet checks that it leaves a reserve
 * free, and fails first with LU_ENOMEM and a message naming the bytes, what they were for and where. */
#ifndef LU_ADDRSPACE_H
#define LU_ADDRSPACE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* Room left for the drivers' own allocations after one of ours (bytes). */
#define LU_ADDRSPACE_RESERVE ((uint64_t)64 << 20)

/* 1 with the limit and the address space mapped now (bytes) when a finite RLIMIT_AS is set; else 0. */
int lu_addrspace(uint64_t *limit, uint64_t *used);
/* LU_OK when no limit is set or `mapped` more bytes leave LU_ADDRSPACE_RESERVE free; else LU_ENOMEM with
 * "out of memory: <bytes> bytes for <what> on <where> (...)" (`bytes`: what the caller asked for,
 * `mapped`: what will be mapped for it, e.g. rounded up by a pool). */
lu_status lu_addrspace_check(size_t bytes, size_t mapped, const char *what, const char *where);
/* Appends " (address-space limit ..., ... in use)" to buf when a limit is set, else writes "". */
void lu_addrspace_note(char *buf, size_t n);

#endif
