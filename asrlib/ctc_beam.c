/* The paper's beam search for CTC, compiled (optional): what asrlib.ctc_decode.beam_search does,
 * frame by frame, without Python in the loop.
 *
 * asrlib.native compiles this file at first use; asrlib.ctc_decode.beam_search calls it on float64
 * numpy arrays, and tests/test_ctc_decode.py checks it against the numpy search it replaces.
 *
 * Label sequences are nodes of a prefix tree (parent, last label), one node per sequence: the
 * child of node p by label k is looked up in a hash table before it is made, so a sequence that
 * leaves the beam and comes back is the same node, and "the extension of y by k is already in
 * the beam" is a lookup. Per frame, as in the numpy search:
 *   1. every sequence y in the beam stays: a blank after any path (pb' = Pr(y) Pr(blank)), or its
 *      last label repeated after a path ending in it (pn' = pn Pr(last));
 *   2. every y grows by every label k: from any path, or only from pb when k repeats y's last
 *      label (B merges a repeat without a blank between);
 *   3. a growth landing on a sequence already in the beam is added to that sequence's pn;
 *   4. of the other growths only the W most probable can survive (each has one parent), so only
 *      they are made; stays and growths together are sorted by Pr = pb + pn, the W best kept.
 * Scores are natural logs in double precision.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline double logadd(double a, double b)
{
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    return (a > b ? a : b) + log1p(exp(-fabs(a - b)));
}

typedef struct {           /* the prefix tree, with a hash table (open addressing) from (parent, label) */
    int32_t *parent, *label, *vals, n;
    int64_t *keys;
    uint64_t mask;
    int V;
} Tree;

static int32_t child(Tree *tr, int32_t p, int32_t k)
{
    int64_t key = (int64_t)p * tr->V + k;
    uint64_t h = ((uint64_t)key * 0x9E3779B97F4A7C15ull >> 17) & tr->mask;
    while (tr->keys[h] != -1) {
        if (tr->keys[h] == key) return tr->vals[h];
        h = (h + 1) & tr->mask;
    }
    tr->keys[h] = key;
    tr->vals[h] = tr->n;
    tr->parent[tr->n] = p;
    tr->label[tr->n] = k;
    return tr->n++;
}

typedef struct {
    double score, pb, pn;  /* ln Pr(y) = logadd(pb, pn): paths ending in a blank, in y's last label */
    int32_t node, order;   /* order: stays first in beam order, then growths; ties keep it */
} Hyp;

static int by_score(const void *x, const void *y)
{
    const Hyp *a = x, *b = y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->order - b->order;
}

/* min-heap of the best growths seen so far, by score: (score, flat index j * V + k) */
static void sift_down(double *s, int32_t *ix, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && s[l] < s[m]) m = l;
        if (r < n && s[r] < s[m]) m = r;
        if (m == i) return;
        double ts = s[i]; s[i] = s[m]; s[m] = ts;
        int32_t ti = ix[i]; ix[i] = ix[m]; ix[m] = ti;
        i = m;
    }
}

static void heap_offer(double *s, int32_t *ix, int *n, int cap, double score, int32_t index)
{
    if (*n < cap) {                   /* sift up */
        int i = (*n)++;
        s[i] = score; ix[i] = index;
        while (i > 0 && s[(i - 1) / 2] > s[i]) {
            int p = (i - 1) / 2;
            double ts = s[i]; s[i] = s[p]; s[p] = ts;
            int32_t ti = ix[i]; ix[i] = ix[p]; ix[p] = ti;
            i = p;
        }
    } else if (score > s[0]) {
        s[0] = score; ix[0] = index;
        sift_down(s, ix, *n, 0);
    }
}

/* Decode one utterance lp (T, V) with beam width W. Writes up to W hypotheses, best first: their
 * labels in out_labels (W, T) (row h holds out_lengths[h] labels) and scores in out_scores.
 * Returns their number, or -1 if memory ran out. */
int ctc_beam_search(int T, int V, int blank, int W, const double *lp,
                    int32_t *out_labels, int32_t *out_lengths, double *out_scores)
{
    long cap = 1 + (long)T * W;               /* the root, and at most W new sequences a frame */
    uint64_t slots = 1;
    while (slots < 2 * (uint64_t)cap) slots <<= 1;
    Tree tr = {malloc(cap * sizeof(int32_t)), malloc(cap * sizeof(int32_t)), malloc(slots * sizeof(int32_t)), 0,
               malloc(slots * sizeof(int64_t)), slots - 1, V};
    Hyp *beam = malloc(W * sizeof(Hyp)), *cand = malloc(2 * (size_t)W * sizeof(Hyp));
    double *ext = malloc((size_t)W * V * sizeof(double)), *heap_s = malloc(W * sizeof(double));
    int32_t *heap_i = malloc(W * sizeof(int32_t)), *in_beam = malloc(cap * sizeof(int32_t));
    int n = -1;
    if (!tr.parent || !tr.label || !tr.vals || !tr.keys || !beam || !cand || !ext || !heap_s || !heap_i || !in_beam)
        goto done;
    memset(tr.keys, 0xff, slots * sizeof(int64_t));    /* -1: an empty slot */
    for (long i = 0; i < cap; i++) in_beam[i] = -1;
    tr.parent[0] = -1; tr.label[0] = -1; tr.n = 1;       /* the root: the empty sequence */
    n = 1;
    beam[0] = (Hyp){0.0, 0.0, -INFINITY, 0, 0};

    for (int t = 0; t < T; t++) {
        const double *row = lp + (long)t * V;
        for (int i = 0; i < n; i++) in_beam[beam[i].node] = i;
        /* 1. stays, and 2. every growth's score */
        for (int i = 0; i < n; i++) {
            Hyp *y = &beam[i];
            int last = tr.label[y->node];
            double total = logadd(y->pb, y->pn);
            cand[i] = (Hyp){0, total + row[blank], last >= 0 ? y->pn + row[last] : -INFINITY, y->node, i};
            double *e = ext + (long)i * V;
            for (int k = 0; k < V; k++) e[k] = (k == last ? y->pb : total) + row[k];
            e[blank] = -INFINITY;
        }
        /* 3. growths that land on a sequence already in the beam */
        for (int i = 0; i < n; i++) {
            int32_t p = tr.parent[beam[i].node];
            if (p >= 0 && in_beam[p] >= 0) {
                double *e = ext + (long)in_beam[p] * V + tr.label[beam[i].node];
                cand[i].pn = logadd(cand[i].pn, *e);
                *e = -INFINITY;
            }
        }
        /* 4. the W best other growths, made; then the W best of everything */
        int m = 0;
        for (long f = 0; f < (long)n * V; f++)
            if (ext[f] > -INFINITY) heap_offer(heap_s, heap_i, &m, W, ext[f], (int32_t)f);
        for (int h = 0; h < m; h++) {
            int j = heap_i[h] / V, k = heap_i[h] % V;
            cand[n + h] = (Hyp){0, -INFINITY, heap_s[h], child(&tr, beam[j].node, k), n + heap_i[h]};
        }
        for (int i = 0; i < n; i++) in_beam[beam[i].node] = -1;
        int c = n + m;
        for (int i = 0; i < c; i++) cand[i].score = logadd(cand[i].pb, cand[i].pn);
        qsort(cand, c, sizeof(Hyp), by_score);
        n = c < W ? c : W;
        for (int i = 0; i < n; i++) {
            beam[i] = cand[i];
            beam[i].order = i;
        }
    }
    for (int h = 0; h < n; h++) {              /* the labels of each hypothesis, read back to the root */
        int len = 0;
        for (int32_t v = beam[h].node; v > 0; v = tr.parent[v]) len++;
        out_lengths[h] = len;
        out_scores[h] = logadd(beam[h].pb, beam[h].pn);
        int pos = len;
        for (int32_t v = beam[h].node; v > 0; v = tr.parent[v]) out_labels[(long)h * T + --pos] = tr.label[v];
    }
done:
    free(tr.parent); free(tr.label); free(tr.vals); free(tr.keys);
    free(beam); free(cand); free(ext); free(heap_s); free(heap_i); free(in_beam);
    return n;
}
