/* Dataset fingerprint (nnunetv2/experiment_planning/dataset_fingerprint/fingerprint_extractor.py:
 * DatasetFingerprintExtractor): per training case the crop to
 * the nonzero bounding box, shape after crop, spacing (array order), relative size after cropping and random
 * foreground intensity samples per channel; then global intensity statistics per channel over all samples. */
#ifndef LU_FINGERPRINT_H
#define LU_FINGERPRINT_H

#include <stdint.h>

#include "core/status.h"

/* One training case: its channel image files (each may hold several channels, e.g. RGB png) and its label file. */
typedef struct lu_fp_case_in {
  const char **images;
  int nimages;
  const char *label;
  const char *id;            /* case identifier for error messages (nullable) */
} lu_fp_case_in;

typedef struct lu_fp_case {
  int64_t shape_before[3];   /* (Z, Y, X) */
  int64_t shape_after[3];    /* after the crop to the nonzero bbox */
  int64_t bbox[3][2];        /* [start, end) per axis */
  double spacing[3];         /* array order (z, y, x); 999 on axis 0 for 2-D files */
  double relative_size;      /* prod(shape_after) / prod(shape_before) */
  int64_t num_foreground;    /* voxels with label > 0 inside the bbox */
  int nchannels;
} lu_fp_case;

typedef struct lu_fp_stats {
  double mean, median, std, min, max, percentile_99_5, percentile_00_5;
  int64_t n;                 /* number of samples the statistics come from (0: all NaN) */
} lu_fp_stats;

typedef struct lu_fp_options {
  int threads;               /* worker threads over cases (>= 1) */
  int64_t samples_per_case;  /* foreground samples per case and channel, drawn with replacement */
  uint64_t seed;             /* same seed for every case (nnU-Net: 1234) */
  int progress;              /* nonzero: progress bar on stderr */
  /* every image voxel must be finite and every label one of labels[0..nlabels) (nlabels < 0: any integer); the
   * first case that breaks this fails the fingerprint, naming the case, the file and the value */
  const int64_t *labels;
  int nlabels;
} lu_fp_options;

/* Analyses one case. samples (nullable) receives, per channel c, samples_per_case values at
 * samples[c * samples_per_case ...] (only when num_foreground > 0); fg_min/fg_max (nullable, nchannels_max entries)
 * get the exact foreground range per channel. */
lu_status lu_fingerprint_case(const lu_fp_case_in *in, int64_t samples_per_case, uint64_t seed, int nchannels_max,
                              lu_fp_case *out, float *samples, double *fg_min, double *fg_max);
/* Same, with the value checks of lu_fp_options.labels / nlabels (labels NULL and nlabels < 0: finite images and
 * integer labels only). */
lu_status lu_fingerprint_case_checked(const lu_fp_case_in *in, int64_t samples_per_case, uint64_t seed,
                                      int nchannels_max, const int64_t *labels, int nlabels, lu_fp_case *out,
                                      float *samples, double *fg_min, double *fg_max);

/* Whole dataset: cases analysed on opt->threads threads (memory: one case per thread plus all samples, i.e.
 * 4 * nchannels * ncases * samples_per_case bytes; nnU-Net's 1e8 // ncases makes that 400 MB per channel).
 * out_cases: ncases entries; stats: nchannels entries (nchannels = channels of every case, checked). */
lu_status lu_fingerprint_dataset(const lu_fp_case_in *cases, int ncases, int nchannels, const lu_fp_options *opt,
                                 lu_fp_case *out_cases, lu_fp_stats *stats);

/* Statistics of n float samples exactly as numpy computes them on the sample array (pairwise sums, population
 * std, linear-interpolation percentiles, min/max of the samples): in float32, or with f64 nonzero in float64 (the
 * dtype numpy promotes to when a case had no foreground). Reorders v. */
void lu_fp_compute_stats_dtype(float *v, int64_t n, int f64, lu_fp_stats *out);
void lu_fp_compute_stats(float *v, int64_t n, lu_fp_stats *out);  /* float32 */

#endif
