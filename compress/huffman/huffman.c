/* huffman.c - length-limited canonical Huffman encoder (sqzc/huffman.h).
 *
 * Lengths: the classic two-queue Huffman construction over the used symbols
 * sorted by frequency; if the longest code exceeds the limit, long codes are
 * clamped and the Kraft sum is repaired by lengthening the least frequent
 * codes that are still shorter than the limit, then any slack is spent on
 * shortening the most frequent codes. Codes are assigned canonically (as in
 * DEFLATE, RFC 1951 sec. 3.2.2) so that only the lengths need storing.
 */
#include "sqzc/huffman.h"

#include <stdlib.h>
#include <string.h>

/* s[0..n) sorted by (freq, symbol), ascending. Keys freq << 8 | symbol
 * (one compare; when every freq < 2^56) in a bottom-up merge sort: n log n
 * (the insertion sort this replaces took ~30 us on 256 symbols, per stream) */
static void sort_by_freq(unsigned *s, unsigned n, const uint64_t *freq) {
    uint64_t a[SQZC_HUFF_MAX_SYMS], b[SQZC_HUFF_MAX_SYMS];
    for (unsigned i = 0; i < n; i++) {
        if (freq[s[i]] >> 56) { /* huge counts: insertion sort on the pairs */
            for (unsigned j = 1; j < n; j++) {
                const unsigned v = s[j];
                unsigned k = j;
                for (; k > 0 &&
                       (freq[s[k - 1]] > freq[v] || (freq[s[k - 1]] == freq[v] && s[k - 1] > v));
                     k--)
                    s[k] = s[k - 1];
                s[k] = v;
            }
            return;
        }
        a[i] = freq[s[i]] << 8 | s[i];
    }
    uint64_t *src = a, *dst = b;
    for (unsigned w = 1; w < n; w *= 2) {
        for (unsigned lo = 0; lo < n; lo += 2 * w) {
            const unsigned mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            unsigned i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = src[j] < src[i] ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    for (unsigned i = 0; i < n; i++) s[i] = (unsigned)(src[i] & 255);
}

int sqzc_huff_lengths(const uint64_t *freq, unsigned n_syms, unsigned max_len, uint8_t *lens) {
    if (n_syms > SQZC_HUFF_MAX_SYMS || max_len < 1 || max_len > SQZC_HUFF_MAX_LEN) return -1;
    unsigned sym[SQZC_HUFF_MAX_SYMS], n = 0;
    for (unsigned s = 0; s < n_syms; s++) {
        lens[s] = 0;
        if (freq[s]) sym[n++] = s;
    }
    if (n == 0) return 0;
    if (n == 1) {
        lens[sym[0]] = 1;
        return 0;
    }
    if (n > (1u << max_len)) return -1;
    sort_by_freq(sym, n, freq);
    /* two-queue Huffman: leaves 0..n-1 (ascending), internal nodes n..2n-2 in
     * creation order (their weights never decrease) */
    uint64_t w[2 * SQZC_HUFF_MAX_SYMS];
    int parent[2 * SQZC_HUFF_MAX_SYMS];
    for (unsigned i = 0; i < n; i++) w[i] = freq[sym[i]];
    unsigned leaf = 0, in_head = n, in_tail = n;
    for (unsigned k = 0; k < n - 1; k++) {
        unsigned pick[2];
        for (int j = 0; j < 2; j++) {
            if (leaf < n && (in_head == in_tail || w[leaf] <= w[in_head]))
                pick[j] = leaf++;
            else
                pick[j] = in_head++;
        }
        w[in_tail] = w[pick[0]] + w[pick[1]];
        parent[pick[0]] = parent[pick[1]] = (int)in_tail;
        in_tail++;
    }
    unsigned root = in_tail - 1, depth[2 * SQZC_HUFF_MAX_SYMS];
    depth[root] = 0;
    for (unsigned i = root; i-- > 0;) depth[i] = depth[parent[i]] + 1;
    unsigned len[SQZC_HUFF_MAX_SYMS], longest = 0;
    for (unsigned i = 0; i < n; i++) {
        len[i] = depth[i];
        if (len[i] > longest) longest = len[i];
    }
    if (longest > max_len) {
        /* Kraft sum in units of 2^-max_len; must not exceed 2^max_len */
        uint64_t cap = 1ull << max_len, k = 0;
        for (unsigned i = 0; i < n; i++) {
            if (len[i] > max_len) len[i] = max_len;
            k += 1ull << (max_len - len[i]);
        }
        while (k > cap) {
            /* lengthen the least frequent code among the longest ones < max_len */
            unsigned best = n;
            for (unsigned i = 0; i < n; i++)
                if (len[i] < max_len && (best == n || len[i] > len[best])) best = i;
            if (best == n) return -1; /* cannot happen when n <= 2^max_len */
            k -= 1ull << (max_len - len[best] - 1);
            len[best]++;
        }
        /* spend the slack on the most frequent codes */
        for (int changed = 1; changed;) {
            changed = 0;
            for (unsigned i = n; i-- > 0;)
                if (len[i] > 1 && k + (1ull << (max_len - len[i])) <= cap) {
                    k += 1ull << (max_len - len[i]);
                    len[i]--;
                    changed = 1;
                }
        }
    }
    for (unsigned i = 0; i < n; i++) lens[sym[i]] = (uint8_t)len[i];
    return 0;
}

int sqzc_huff_code_from_lengths(sqzc_huff_code *c, const uint8_t *lens, unsigned n_lens,
                                unsigned alphabet_bits) {
    if (alphabet_bits < 1 || alphabet_bits > 8 || n_lens < 1 || n_lens > (1u << alphabet_bits))
        return -1;
    memset(c, 0, sizeof *c);
    c->alphabet_bits = alphabet_bits;
    c->n_lens = n_lens;
    unsigned count[SQZC_HUFF_MAX_LEN + 2] = {0};
    for (unsigned s = 0; s < n_lens; s++) {
        if (lens[s] > SQZC_HUFF_MAX_LEN) return -1;
        c->lens[s] = lens[s];
        count[lens[s]]++;
    }
    count[0] = 0;
    uint32_t next[SQZC_HUFF_MAX_LEN + 2], code = 0;
    int64_t left = 1;
    for (unsigned l = 1; l <= SQZC_HUFF_MAX_LEN; l++) {
        left = 2 * left - count[l];
        if (left < 0) return -1;
        next[l] = code;
        code = (code + count[l]) << 1;
    }
    for (unsigned s = 0; s < n_lens; s++) {
        unsigned l = lens[s];
        if (!l) continue;
        uint32_t v = next[l]++, r = 0;
        for (unsigned b = 0; b < l; b++) r |= ((v >> b) & 1u) << (l - 1 - b);
        c->rev[s] = (uint16_t)r;
    }
    c->stream_bytes = 2 + (n_lens + 1) / 2;
    return 0;
}

/* freq[v] += occurrences of v in s[0..n): four 32-bit tables filled in
 * turn (a run of equal bytes would otherwise wait on its own increments,
 * store to load, ~5 cycles each), folded every 2^30 symbols (exact) */
static void histogram(const uint8_t *s, size_t n, uint64_t *freq) {
    uint32_t h[4][256];
    while (n > 0) {
        const size_t m = n < ((size_t)1 << 30) ? n : (size_t)1 << 30;
        memset(h, 0, sizeof h);
        size_t i = 0;
        for (; i + 4 <= m; i += 4) {
            h[0][s[i]]++;
            h[1][s[i + 1]]++;
            h[2][s[i + 2]]++;
            h[3][s[i + 3]]++;
        }
        for (; i < m; i++) h[0][s[i]]++;
        for (unsigned v = 0; v < 256; v++)
            freq[v] += (uint64_t)h[0][v] + h[1][v] + (uint64_t)h[2][v] + h[3][v];
        s += m;
        n -= m;
    }
}

int sqzc_huff_code_build(sqzc_huff_code *c, const uint8_t *syms, size_t n, unsigned alphabet_bits) {
    return sqzc_huff_code_build_mt(c, syms, n, alphabet_bits, 1);
}

int sqzc_huff_code_build_mt(sqzc_huff_code *c, const uint8_t *syms, size_t n,
                            unsigned alphabet_bits, int threads) {
    if (alphabet_bits < 1 || alphabet_bits > 8) return -1;
    const unsigned ns = 1u << alphabet_bits;
    /* parts of equal size (the last one takes the remainder) */
    size_t np = threads > 1 ? (size_t)threads : 1;
    if (np > SQZC_HUFF_MAX_PARTS) np = SQZC_HUFF_MAX_PARTS;
    if (np > n / SQZC_HUFF_PART_MIN) np = n / SQZC_HUFF_PART_MIN;
    if (np < 1) np = 1;
    uint64_t pf[SQZC_HUFF_MAX_PARTS][256];
    memset(pf, 0, sizeof pf[0] * np);
    const size_t step = n / np;
    const int npi = (int)np;
    if (npi == 1) {
        histogram(syms, n, pf[0]);
    } else {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(npi)
#endif
        for (int p = 0; p < npi; p++) {
            const size_t a = (size_t)p * step, b = p == npi - 1 ? n : a + step;
            histogram(syms + a, b - a, pf[p]);
        }
    }
    uint64_t freq[SQZC_HUFF_MAX_SYMS] = {0};
    for (size_t p = 0; p < np; p++)
        for (unsigned v = 0; v < 256; v++) freq[v] += pf[p][v];
    for (unsigned v = ns; v < 256; v++)
        if (freq[v]) return -1; /* a symbol too big */
    uint8_t lens[SQZC_HUFF_MAX_SYMS];
    if (sqzc_huff_lengths(freq, ns, SQZC_HUFF_MAX_LEN, lens) != 0) return -1;
    unsigned n_lens = 1;
    for (unsigned s = 0; s < ns; s++)
        if (lens[s]) n_lens = s + 1;
    if (sqzc_huff_code_from_lengths(c, lens, n_lens, alphabet_bits) != 0) return -1;
    uint64_t bits = 0;
    for (size_t p = 0; p < np; p++) {
        uint64_t pb = 0;
        for (unsigned s = 0; s < n_lens; s++) pb += pf[p][s] * lens[s];
        c->part_end[p] = p == np - 1 ? n : (p + 1) * step;
        c->part_bits[p] = pb;
        bits += pb;
    }
    c->n_parts = (unsigned)np;
    c->payload_bits = bits;
    c->stream_bytes += (bits + 7) / 8;
    return 0;
}

/* a symbol's code and length as one word: rev << 5 | len (< 2^20), 0 for a
 * symbol without a code (e - 1 then has bit 31 set: the miss test) */
#define CODE_LEN(e) ((e)&31u)
#define CODE_BITS(e) ((e) >> 5)

/* Codes of s[0..n) from bit `bit` of dst on (the bits below it in its byte
 * are left 0): whole bytes are stored into dst[bit / 8 .. lim), none at or
 * past lim; the last partial byte's bits (< 8, at their places) go to
 * *tail. Returns the bit after the last code, UINT64_MAX when a symbol has
 * no code or the codes run past lim. */
static uint64_t code_run(const uint32_t *tab, const uint8_t *s, size_t n, uint8_t *dst, size_t lim,
                         uint64_t bit, unsigned *tail) {
    uint8_t *o = dst + (bit >> 3), *const end = dst + lim;
    uint64_t acc = 0;
    unsigned nb = (unsigned)(bit & 7);
    uint32_t miss = 0;
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* while 8 bytes of room are left: three codes (<= 45 bits) joined off
     * the dependency chain, added to acc (< 8 bits) at once, acc stored
     * whole and its full bytes stepped over (no branch on the bit count,
     * which a Huffman stream makes unpredictable); the same bytes as the
     * loop below */
    if (end - o >= 8)
        for (; n - i >= 3 && end - o >= 8; i += 3) {
            const uint32_t e0 = tab[s[i]], e1 = tab[s[i + 1]], e2 = tab[s[i + 2]];
            miss |= (e0 - 1) | (e1 - 1) | (e2 - 1);
            const unsigned l0 = CODE_LEN(e0), l01 = l0 + CODE_LEN(e1);
            const uint64_t code =
                CODE_BITS(e0) | (uint64_t)CODE_BITS(e1) << l0 | (uint64_t)CODE_BITS(e2) << l01;
            acc |= code << nb;
            nb += l01 + CODE_LEN(e2);
            memcpy(o, &acc, 8);
            o += nb >> 3;
            acc >>= nb & ~7u;
            nb &= 7;
        }
#endif
    for (; i < n; i++) {
        const uint32_t e = tab[s[i]];
        miss |= e - 1;
        acc |= (uint64_t)CODE_BITS(e) << nb;
        nb += CODE_LEN(e);
        for (; nb >= 8; nb -= 8) {
            if (o == end) return UINT64_MAX;
            *o++ = (uint8_t)acc;
            acc >>= 8;
        }
    }
    if (miss >> 31) return UINT64_MAX;
    *tail = (unsigned)acc;
    return (uint64_t)(o - dst) * 8 + nb;
}

/* sqzc_huff_write's part p (symbols beg[p]..beg[p + 1], bits first[p]..
 * first[p + 1]); 0 ok, 1 on a symbol without a code or another bit count */
static int write_part(const uint32_t *code, const uint8_t *syms, const size_t *beg,
                      const uint64_t *first, int p, int last, uint8_t *dst, size_t dst_len,
                      unsigned *tails) {
    const size_t lim = last ? dst_len : (size_t)(first[p + 1] >> 3);
    if (first[p + 1] > 8 * (uint64_t)dst_len || lim < (first[p] >> 3)) return 1;
    const uint64_t e =
        code_run(code, syms + beg[p], beg[p + 1] - beg[p], dst, lim, first[p], &tails[p]);
    if (!last) return e != first[p + 1];
    /* the final partial byte, zero-padded: the stream's last */
    if (e == UINT64_MAX || (e + 7) / 8 != dst_len || e < first[p]) return 1;
    if (e & 7) dst[e >> 3] = (uint8_t)tails[p];
    return 0;
}

int sqzc_huff_write(const sqzc_huff_code *c, const uint8_t *syms, size_t n, uint8_t *dst,
                    size_t dst_len) {
    if (dst_len != c->stream_bytes) return -1;
    size_t tab = (c->n_lens + 1) / 2;
    dst[0] = (uint8_t)c->n_lens;
    dst[1] = (uint8_t)(c->n_lens >> 8);
    memset(dst + 2, 0, tab);
    for (unsigned s = 0; s < c->n_lens; s++)
        dst[2 + s / 2] |= (uint8_t)(c->lens[s] << (4 * (s & 1)));
    uint32_t code[256] = {0};
    for (unsigned s = 0; s < c->n_lens && s < 256; s++)
        if (c->lens[s]) code[s] = (uint32_t)c->rev[s] << 5 | c->lens[s];
    const uint64_t b0 = 8 * (uint64_t)(2 + tab);
    /* the parts of c when they cover these n symbols, else one */
    unsigned np = c->n_parts;
    if (np < 1 || np > SQZC_HUFF_MAX_PARTS || c->part_end[np - 1] != n) np = 1;
    size_t beg[SQZC_HUFF_MAX_PARTS + 1];
    uint64_t first[SQZC_HUFF_MAX_PARTS + 1]; /* each part's first bit, then the end */
    beg[0] = 0;
    first[0] = b0;
    for (unsigned p = 0; p < np; p++) {
        beg[p + 1] = np == 1 ? n : c->part_end[p];
        first[p + 1] = np == 1 ? 8 * (uint64_t)dst_len : first[p] + c->part_bits[p];
        if (beg[p + 1] < beg[p]) return -1;
    }
    /* part p stores the whole bytes below its end bit's byte (the last part:
     * below dst_len); that byte's low bits (its tail) are merged after */
    unsigned tails[SQZC_HUFF_MAX_PARTS];
    int bad = 0;
    const int npi = (int)np;
    if (npi == 1) {
        bad = write_part(code, syms, beg, first, 0, 1, dst, dst_len, tails);
    } else {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(npi) reduction(| : bad)
#endif
        for (int p = 0; p < npi; p++)
            bad |= write_part(code, syms, beg, first, p, p == npi - 1, dst, dst_len, tails);
    }
    if (bad) return -1;
    for (unsigned p = 0; p + 1 < np; p++)
        if (first[p + 1] & 7) dst[first[p + 1] >> 3] |= (uint8_t)tails[p];
    return 0;
}
