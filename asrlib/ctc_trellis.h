/* The body of ctc.c's kernels, written once for a floating type: ctc.c includes this file twice,
 * with REAL float (and the float maths functions) and with REAL double.
 *
 * One call runs utterances b0..b1-1 of a batch, each on its own: alpha, beta, ln Pr(z|x) and,
 * if gamma is not NULL, the occupation of every label at every frame (asrlib.ctc's docstring
 * gives the maths; asrlib.ctc.alpha_beta and occupation compute the same with tensor operations).
 *
 * Layout (contiguous): log_probs (T, B, V); states (B, S) the extended sequences z' (int64,
 * blank first); input_lengths, target_lengths (B) int64; alpha, beta (T, B, S), filled with -inf
 * by the caller, written only inside each utterance's frames and states; log_p (B); gamma (T, B, V),
 * zeros from the caller.
 */

/* ln(e^a + e^b + e^c) without a branch: where all three are -inf the shift is 0 and the sum
 * log(0) = -inf; otherwise the largest term contributes exp(0) = 1 and nothing overflows. */
static inline REAL NAME(logsum3)(REAL a, REAL b, REAL c)
{
    REAL m = a > b ? a : b;
    m = m > c ? m : c;
    REAL shift = m == -INFINITY ? (REAL)0 : m;
    return shift + LOG(EXP(a - shift) + EXP(b - shift) + EXP(c - shift));
}

void NAME(ctc_trellis)(
    int T, int B, int V, int S, int b0, int b1, const REAL *log_probs, const int64_t *states,
    const int64_t *input_lengths, const int64_t *target_lengths,
    REAL *alpha, REAL *beta, REAL *log_p, REAL *gamma)
{
    const long tb_v = (long)B * V, tb_s = (long)B * S;
    REAL *skip = malloc(sizeof(REAL) * (S + 2));      /* 0 where s may be entered from s - 2, else -inf */
    REAL *emit = malloc(sizeof(REAL) * (S + 2));      /* ln Pr(z'_s | t) at one frame */
    for (long b = b0; b < b1; b++) {
        const long L = input_lengths[b], Sb = 2 * target_lengths[b] + 1;
        const int64_t *z = states + b * S;
        const REAL *lp = log_probs + b * V;
        REAL *a = alpha + b * S, *be = beta + b * S;
        if (L == 0) {                                 /* no frames: only the empty target is possible */
            log_p[b] = Sb == 1 ? (REAL)0 : -INFINITY;
            continue;
        }
        for (long s = 0; s < Sb + 2; s++)
            skip[s] = (s >= 2 && s < Sb && z[s] != z[0] && z[s] != z[s - 2]) ? (REAL)0 : -INFINITY;

        /* alpha: a path starts in the first blank or the first label; state s is reached from s, s - 1
         * and, where skip allows, s - 2 */
        a[0] = lp[z[0]];
        if (Sb > 1) a[1] = lp[z[1]];
        for (long t = 1; t < L; t++) {
            const REAL *prev = a + (t - 1) * tb_s, *e = lp + t * tb_v;
            REAL *cur = a + t * tb_s;
            for (long s = 0; s < Sb; s++) emit[s] = e[z[s]];
            cur[0] = prev[0] + emit[0];
            if (Sb > 1) cur[1] = NAME(logsum3)(prev[1], prev[0], -INFINITY) + emit[1];
            #pragma omp simd
            for (long s = 2; s < Sb; s++)
                cur[s] = NAME(logsum3)(prev[s], prev[s - 1], prev[s - 2] + skip[s]) + emit[s];
        }
        const REAL *last = a + (L - 1) * tb_s;
        log_p[b] = Sb > 1 ? NAME(logsum3)(last[Sb - 1], last[Sb - 2], -INFINITY) : last[0];

        /* beta: a path ends in the final blank or the final label; state s goes on to s, s + 1 and,
         * where skip allows, s + 2 */
        REAL *end = be + (L - 1) * tb_s;
        const REAL *e_end = lp + (L - 1) * tb_v;
        end[Sb - 1] = e_end[z[Sb - 1]];
        if (Sb > 1) end[Sb - 2] = e_end[z[Sb - 2]];
        for (long t = L - 2; t >= 0; t--) {
            const REAL *next = be + (t + 1) * tb_s, *e = lp + t * tb_v;
            REAL *cur = be + t * tb_s;
            for (long s = 0; s < Sb; s++) emit[s] = e[z[s]];
            cur[Sb - 1] = next[Sb - 1] + emit[Sb - 1];
            if (Sb > 1) cur[Sb - 2] = NAME(logsum3)(next[Sb - 2], next[Sb - 1], -INFINITY) + emit[Sb - 2];
            #pragma omp simd
            for (long s = 0; s < Sb - 2; s++)
                cur[s] = NAME(logsum3)(next[s], next[s + 1], next[s + 2] + skip[s + 2]) + emit[s];
        }

        /* the occupation: every state's posterior added to its label's; nothing where Pr(z|x) = 0 */
        if (gamma == NULL || !isfinite(log_p[b])) continue;
        for (long t = 0; t < L; t++) {
            const REAL *at = a + t * tb_s, *bt = be + t * tb_s, *e = lp + t * tb_v;
            REAL *g = gamma + t * tb_v + b * V;
            for (long s = 0; s < Sb; s++)
                if (at[s] != -INFINITY && bt[s] != -INFINITY)
                    g[z[s]] += EXP(at[s] + bt[s] - e[z[s]] - log_p[b]);
        }
    }
    free(skip);
    free(emit);
}
