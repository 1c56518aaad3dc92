/* Bucketed gradient averaging for data-parallel training, overlapped with the backward pass (PyTorch DDP's
 * gradient buckets). The network's flat gradient buffer (nn/unet.h) is cut into buckets of a fixed number of
 * floats counted from its end: parameters are laid out in forward order and the backward finishes the last ones
 * first (decoder, then the encoder from the deepest stage up), so the buckets fill in order. The backward's
 * gradient hook (lu_unet_set_grad_hook) enqueues a non-blocking device -> host read of each bucket as soon as
 * every parameter that overlaps it is final (a bucket may cut through a tensor); lu_gradsync_finish starts an
 * MPI_Iallreduce on each bucket as soon as its read completes, while the device still computes the rest of the
 * backward, then waits for all, divides by the number of ranks on the host and writes the buffer back once.
 *
 * The result is the one lu_dist_allreduce_mean_f32 gives on the whole buffer, bit for bit with 2 ranks (a + b
 * in either order); with more ranks MPI may sum in another order per message size (rounding differences). Host
 * staging is the gradient's size. Only data-parallel runs attach it: a one-rank run keeps the hook-less backward. */
#ifndef LU_GRADSYNC_H
#define LU_GRADSYNC_H

#include <stddef.h>

#include "core/status.h"
#include "nn/unet.h"

typedef struct lu_gradsync lu_gradsync;

/* Attaches bucketed averaging to the network (the network owns it); bucket_floats 0 detaches (the caller then
 * averages the whole buffer after the backward). Replaces an earlier attachment. */
lu_status lu_gradsync_attach(lu_unet *n, size_t bucket_floats);
/* The attached instance, or NULL. */
lu_gradsync *lu_gradsync_of(lu_unet *n);
int lu_gradsync_buckets(const lu_gradsync *g);
/* Buckets of the last backward whose read was enqueued before the last bucket's parameters were final: the ones
 * whose reduction can overlap the rest of the backward. */
int lu_gradsync_early(const lu_gradsync *g);
/* Seconds of the last finish from the first bucket's MPI_Iallreduce start to the last bucket's read completing:
 * how long the reduction ran beside the backward (0 with one bucket). */
double lu_gradsync_window(const lu_gradsync *g);
/* Completes the averaging of the last backward's gradients (see above). Idempotent until the next backward: a
 * second call returns at once with the same seconds. exposed_secs (may be NULL): the time from the completion of
 * the last bucket's read (the backward's end) to the averaged gradient being on the device, the reduction's cost
 * that the backward did not hide. LU_ESTATE when no backward ran since the attachment. */
lu_status lu_gradsync_finish(lu_gradsync *g, double *exposed_secs);

#endif
