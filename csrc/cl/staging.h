/* Double-buffered batch uploads on a second queue (issue #24). The host copies a batch into pinned memory
 * (CL_MEM_ALLOC_HOST_PTR, mapped once) and a transfer queue moves it into one of two device slots while the
 * compute queue still runs the previous step; the step's first command waits for that transfer on the device
 * (a barrier on the compute queue), never on the host. A slot is overwritten only after the compute queue has
 * passed the step that used it (a marker event the next transfer waits for).
 * Use from two threads as the trainer does: put() on the thread preparing batch k+1 while acquire()/release()
 * run with step k's commands on the step's thread; put() touches only the transfer queue and the slot's own
 * buffers. */
#ifndef LU_CL_STAGING_H
#define LU_CL_STAGING_H

#include "cl/device.h"
#include "tensor.h"

#define LU_STAGE_SLOTS 2
#define LU_STAGE_MAX_TENSORS 4

typedef struct lu_stager lu_stager;

lu_status lu_stager_new(lu_device *dev, lu_stager **out);
/* Waits for outstanding transfers, then frees. NULL is ignored. */
void lu_stager_free(lu_stager *s);
/* Copies the n host tensors into the next slot's pinned memory and queues their transfer; *slot names it. The
 * only host wait: a slot's previous transfer out of its pinned memory, two batches ago (normally long done). */
lu_status lu_stager_put(lu_stager *s, int n, const lu_tensor *const *host, int *slot);
/* The slot's device tensors (n of them, owned by the stager), with the compute queue made to wait for the
 * slot's transfer. Valid until the slot is put again. */
lu_status lu_stager_acquire(lu_stager *s, int slot, int n, lu_tensor **out);
/* Marks the end of the commands that read the slot (queued on the compute queue after them). */
lu_status lu_stager_release(lu_stager *s, int slot);

#endif
