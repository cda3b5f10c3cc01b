/* One time step of the peephole LSTM's elementwise work, eq. (3)-(7).
 *
 * asrlib.native compiles this file at first use. asrlib.fused_lstm.PeepholeLSTMFunction runs a
 * whole sequence here where MKL is at hand (peephole_forward_sequence, peephole_backward_sequence:
 * MKL's packed product and the cells, step after step, no Python in the loop), and otherwise
 * calls the step functions once per step between torch's matrix products (oneDNN). The cells
 * do exactly what the PyTorch path of that function does with about ten tensor operations a
 * step, in one pass over the step's numbers; tests/test_native.py checks the paths against
 * each other.
 *
 * Layout (float32, contiguous, every pointer at step t):
 *   gates  (B, 4H)  [i f g o]: the input part of the pre-activations in, the activations out
 *   rec    (B, 4H)  the recurrent product h_{t-1} W_hh^T
 *   c_prev, c, h, tanh_c  (B, H)
 *   w_ci, w_cf, w_co      (H)  the diagonal peephole weights
 * Backward: grad_h (B, H) is dL/dh_t from above and rec (B, H) dL/dh_t from step t + 1; dgates
 * (B, 4H) receives dL/d(pre-activation); dc (B, H) carries dL/dc_t from later steps in and
 * dL/dc_{t-1} through step t out.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* e^x without a library call, so that a cell's five inline and vectorise together (with glibc's
 * vector expf each was a call, and the kernel took about 23 us a step for 16 x 250 cells here).
 * Cody-Waite reduction x = n ln 2 + r, |r| <= ln 2 / 2, with ln 2 split in two so that n ln 2 is
 * exact; e^r by a degree-6 polynomial fitted for this file (numpy, least squares weighted towards
 * the smallest largest relative error on that interval); 2^n written into the exponent bits.
 * Measured over [-87, 87] in float32: relative error below 1.1e-7 (tests/test_native.py checks
 * 2e-7 against exp in float64). x is clamped to [-87, 87] first: e^87 ~ 6e37 keeps 1 + e^x finite, so
 * the divisions below never meet inf (no NaN, with or without fast reciprocals), and
 * sigmoid(-87) ~ 1.6e-38 stands for 0. */
static inline float exp_clamped(float x)
{
    x = x < -87.0f ? -87.0f : (x > 87.0f ? 87.0f : x);
    float n = __builtin_rintf(x * 1.44269504f);
    float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.38368458e-3f;
    p = p * r + 8.37481581e-3f;
    p = p * r + 4.16682251e-2f;
    p = p * r + 1.66664198e-1f;
    p = p * r + 4.99999911e-1f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { int32_t i; float f; } two_n = { .i = ((int32_t)n + 127) << 23 };
    return p * two_n.f;
}

float peephole_exp(float x) { return exp_clamped(x); }  /* for the test of the error bound */

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_clamped(-x)); }
static inline float tanh_by_exp(float x) { return 2.0f / (1.0f + exp_clamped(-2.0f * x)) - 1.0f; }

/* One batch row's cells. with_rec: add the recurrent product rec (the per-step path); without,
 * the gates already hold it (the sequence path's product adds into them). */
static inline void forward_cells(
    int H, int with_rec, float *restrict ai, float *restrict af, float *restrict ag, float *restrict ao,
    const float *restrict ri, const float *restrict rf, const float *restrict rg, const float *restrict ro,
    const float *restrict c_prev, float *restrict c, float *restrict h, float *restrict tanh_c,
    const float *restrict w_ci, const float *restrict w_cf, const float *restrict w_co)
{
    for (int j = 0; j < H; j++) {
        float pi = ai[j], pf = af[j], pg = ag[j], po = ao[j];
        if (with_rec) { pi += ri[j]; pf += rf[j]; pg += rg[j]; po += ro[j]; }
        float i = sigmoid(pi + w_ci[j] * c_prev[j]);                   /* eq. (3) */
        float f = sigmoid(pf + w_cf[j] * c_prev[j]);                   /* eq. (4) */
        float g = tanh_by_exp(pg);
        float cj = f * c_prev[j] + i * g;                              /* eq. (5) */
        float o = sigmoid(po + w_co[j] * cj);                          /* eq. (6), with c_t */
        float t = tanh_by_exp(cj);
        ai[j] = i; af[j] = f; ag[j] = g; ao[j] = o;
        c[j] = cj; tanh_c[j] = t; h[j] = o * t;                        /* eq. (7) */
    }
}

static void forward_rows(
    int B, int H, int with_rec, float *gates, const float *rec, const float *c_prev, float *c, float *h,
    float *tanh_c, const float *w_ci, const float *w_cf, const float *w_co)
{
    for (long b = 0; b < B; b++) {
        float *a = gates + b * 4 * H;
        long s = b * H;
        if (with_rec) {
            const float *r = rec + b * 4 * H;
            forward_cells(H, 1, a, a + H, a + 2 * H, a + 3 * H, r, r + H, r + 2 * H, r + 3 * H,
                          c_prev + s, c + s, h + s, tanh_c + s, w_ci, w_cf, w_co);
        } else {  /* the gates hold the recurrent part already; forward_cells reads no rec */
            forward_cells(H, 0, a, a + H, a + 2 * H, a + 3 * H, NULL, NULL, NULL, NULL,
                          c_prev + s, c + s, h + s, tanh_c + s, w_ci, w_cf, w_co);
        }
    }
}

void peephole_forward_step(
    int B, int H, float *gates, const float *rec, const float *c_prev, float *c, float *h, float *tanh_c,
    const float *w_ci, const float *w_cf, const float *w_co)
{
    forward_rows(B, H, 1, gates, rec, c_prev, c, h, tanh_c, w_ci, w_cf, w_co);
}

/* MKL's packed product, C = A B_packed + beta C, row-major, with LP64 ints (cblas_sgemm_compute),
 * and MKL's thread count for the calling thread (MKL_Set_Num_Threads_Local). torch's CPU library
 * carries MKL and exports both; asrlib.native finds them there. */
typedef void (*sgemm_compute_fn)(int layout, int transa, int transb, int m, int n, int k, const float *a,
                                 int lda, const float *b, int ldb, float beta, float *c, int ldc);
typedef int (*set_threads_fn)(int threads);
enum { ROW_MAJOR = 101, NO_TRANS = 111, PACKED = 151 };

/* A whole forward sequence in one call: per step, MKL adds the recurrent product h_{t-1} W_hh^T
 * into the step's gates (which hold the input part and the bias), then the cells as above.
 * gates (T, B, 4H); hs, cs (T + 1, B, H) with hs[0], cs[0] the initial states; tanh_c (T, B, H);
 * w_hh_packed is W_hh^T packed by cblas_sgemm_pack for B rows. threads > 0: MKL's products use
 * that many threads in this call (the directions of a layer run side by side, one each). */
void peephole_forward_sequence(
    int T, int B, int H, float *gates, float *hs, float *cs, float *tanh_c, const float *w_hh_packed,
    sgemm_compute_fn compute, set_threads_fn set_threads, int threads,
    const float *w_ci, const float *w_cf, const float *w_co)
{
    if (T <= 0 || B <= 0 || H <= 0)
        return;
    int before = threads > 0 ? set_threads(threads) : 0;
    long step_g = (long)B * 4 * H, step_h = (long)B * H;
    for (long t = 0; t < T; t++) {
        float *g = gates + t * step_g;
        compute(ROW_MAJOR, NO_TRANS, PACKED, B, 4 * H, H, hs + t * step_h, H, w_hh_packed, 4 * H, 1.0f, g, 4 * H);
        forward_rows(B, H, 0, g, NULL, cs + t * step_h, cs + (t + 1) * step_h, hs + (t + 1) * step_h,
                     tanh_c + t * step_h, w_ci, w_cf, w_co);
    }
    if (threads > 0)
        set_threads(before);
}

static void backward_row(
    int H, const float *restrict ai, const float *restrict af, const float *restrict ag, const float *restrict ao,
    float *restrict di, float *restrict df, float *restrict dg, float *restrict d_o,
    const float *restrict grad_h, const float *restrict rec, float *restrict dc,
    const float *restrict c_prev, const float *restrict tanh_c,
    const float *restrict w_ci, const float *restrict w_cf, const float *restrict w_co)
{
    for (int j = 0; j < H; j++) {
        float i = ai[j], f = af[j], g = ag[j], o = ao[j], t = tanh_c[j];
        float dh = grad_h[j] + rec[j];                                 /* from above and from step t + 1 */
        float go = dh * t * o * (1.0f - o);                            /* through eq. (7), (6) */
        float dct = dc[j] + dh * o * (1.0f - t * t) + go * w_co[j];    /* eq. (7) and (6)'s peephole */
        float gi = dct * g * i * (1.0f - i);                           /* eq. (5), (3) */
        float gf = dct * c_prev[j] * f * (1.0f - f);                   /* eq. (5), (4) */
        di[j] = gi; df[j] = gf; dg[j] = dct * i * (1.0f - g * g); d_o[j] = go;
        dc[j] = dct * f + gi * w_ci[j] + gf * w_cf[j];                 /* to c_{t-1}: eq. (5), (3), (4) */
    }
}

void peephole_backward_step(
    int B, int H, const float *gates, float *dgates, const float *grad_h, const float *rec, float *dc,
    const float *c_prev, const float *tanh_c, const float *w_ci, const float *w_cf, const float *w_co)
{
    for (long b = 0; b < B; b++) {
        const float *a = gates + b * 4 * H;
        float *da = dgates + b * 4 * H;
        long s = b * H;
        backward_row(H, a, a + H, a + 2 * H, a + 3 * H, da, da + H, da + 2 * H, da + 3 * H,
                     grad_h + s, rec + s, dc + s, c_prev + s, tanh_c + s, w_ci, w_cf, w_co);
    }
}

/* The whole backward sequence in one call, from the last step to the first: per step the cells'
 * backward (peephole_backward_step), then MKL's product dL/dh_{t-1} = dgates_t W_hh for the step
 * before. grad_h (T, B, H) from above; grad_c (T, B, H) or NULL; dc (B, H) holds dL/dc at the last
 * step on entry and dL/dc_0 on return; rec (B, H) receives dL/dh_0; w_hh_packed is W_hh packed by
 * cblas_sgemm_pack (as the right operand, B rows). */
void peephole_backward_sequence(
    int T, int B, int H, const float *gates, float *dgates, const float *grad_h, const float *grad_c, float *rec,
    float *dc, const float *cs, const float *tanh_c, const float *w_hh_packed, sgemm_compute_fn compute,
    const float *w_ci, const float *w_cf, const float *w_co)
{
    long step_g = (long)B * 4 * H, step_h = (long)B * H;
    for (long i = 0; i < step_h; i++)
        rec[i] = 0.0f;                    /* nothing comes back from after the last step */
    for (long t = T - 1; t >= 0; t--) {
        peephole_backward_step(B, H, gates + t * step_g, dgates + t * step_g, grad_h + t * step_h, rec, dc,
                               cs + t * step_h, tanh_c + t * step_h, w_ci, w_cf, w_co);
        compute(ROW_MAJOR, NO_TRANS, PACKED, B, H, 4 * H, dgates + t * step_g, 4 * H, w_hh_packed, H, 0.0f, rec, H);
        if (t > 0 && grad_c != NULL)
            for (long i = 0; i < step_h; i++)
                dc[i] += grad_c[(t - 1) * step_h + i];
    }
}
