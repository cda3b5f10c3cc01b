/* One time step of the peephole LSTM's elementwise work, eq. (3)-(7).
 *
 * asrlib.native compiles this file at first use and asrlib.layers.PeepholeLSTMFunction calls
 * it once per step on a CPU, between the matrix products, which stay torch's (oneDNN). It does
 * exactly what the PyTorch path of that function does with about ten tensor operations a step,
 * in one pass over the step's numbers; tests/test_native.py checks the two against each other.
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

static void forward_row(
    int H, float *restrict ai, float *restrict af, float *restrict ag, float *restrict ao,
    const float *restrict ri, const float *restrict rf, const float *restrict rg, const float *restrict ro,
    const float *restrict c_prev, float *restrict c, float *restrict h, float *restrict tanh_c,
    const float *restrict w_ci, const float *restrict w_cf, const float *restrict w_co)
{
    for (int j = 0; j < H; j++) {
        float i = sigmoid(ai[j] + ri[j] + w_ci[j] * c_prev[j]);        /* eq. (3) */
        float f = sigmoid(af[j] + rf[j] + w_cf[j] * c_prev[j]);        /* eq. (4) */
        float g = tanh_by_exp(ag[j] + rg[j]);
        float cj = f * c_prev[j] + i * g;                              /* eq. (5) */
        float o = sigmoid(ao[j] + ro[j] + w_co[j] * cj);               /* eq. (6), with c_t */
        float t = tanh_by_exp(cj);
        ai[j] = i; af[j] = f; ag[j] = g; ao[j] = o;
        c[j] = cj; tanh_c[j] = t; h[j] = o * t;                        /* eq. (7) */
    }
}

void peephole_forward_step(
    int B, int H, float *gates, const float *rec, const float *c_prev, float *c, float *h, float *tanh_c,
    const float *w_ci, const float *w_cf, const float *w_co)
{
    for (long b = 0; b < B; b++) {
        float *a = gates + b * 4 * H;
        const float *r = rec + b * 4 * H;
        long s = b * H;
        forward_row(H, a, a + H, a + 2 * H, a + 3 * H, r, r + H, r + 2 * H, r + 3 * H,
                    c_prev + s, c + s, h + s, tanh_c + s, w_ci, w_cf, w_co);
    }
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
