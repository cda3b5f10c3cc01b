/* CTC's forward-backward recursions for a CPU, one utterance at a time (optional).
 *
 * asrlib.native compiles this file at first use and asrlib.ctc calls it on a CPU in place of its
 * tensor loop over the frames, which spends most of its time launching small kernels (four a
 * frame, each on a (2B, S) slice). Here a frame of one utterance is one pass over its states, the
 * three-way log-sum vectorised (libmvec's expf and logf where glibc has them). ctc_trellis.h
 * holds the body, instantiated below for float32 and float64; tests/test_ctc.py checks both
 * against the tensor path, on impossible and empty targets too.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* glibc's vector exp and log (libmvec), declared to the compiler as peephole_lstm.c declares expf */
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern float logf(float);
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern double log(double);

#define REAL float
#define EXP expf
#define LOG logf
#define NAME(f) f##_f32
#include "ctc_trellis.h"
#undef REAL
#undef EXP
#undef LOG
#undef NAME

#define REAL double
#define EXP exp
#define LOG log
#define NAME(f) f##_f64
#include "ctc_trellis.h"
