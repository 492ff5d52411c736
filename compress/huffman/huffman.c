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

static int cmp_freq_asc(const void *a, const void *b, const uint64_t *freq) {
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    if (freq[x] != freq[y]) return freq[x] < freq[y] ? -1 : 1;
    return x < y ? -1 : (x > y);
}

/* insertion sort by (freq, symbol): n <= 256, no qsort context needed */
static void sort_by_freq(unsigned *s, unsigned n, const uint64_t *freq) {
    for (unsigned i = 1; i < n; i++) {
        unsigned v = s[i], j = i;
        while (j > 0 && cmp_freq_asc(&s[j - 1], &v, freq) > 0) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = v;
    }
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

int sqzc_huff_code_build(sqzc_huff_code *c, const uint8_t *syms, size_t n, unsigned alphabet_bits) {
    if (alphabet_bits < 1 || alphabet_bits > 8) return -1;
    unsigned ns = 1u << alphabet_bits;
    uint64_t freq[SQZC_HUFF_MAX_SYMS] = {0};
    for (size_t i = 0; i < n; i++) {
        if (syms[i] >= ns) return -1;
        freq[syms[i]]++;
    }
    uint8_t lens[SQZC_HUFF_MAX_SYMS];
    if (sqzc_huff_lengths(freq, ns, SQZC_HUFF_MAX_LEN, lens) != 0) return -1;
    unsigned n_lens = 1;
    for (unsigned s = 0; s < ns; s++)
        if (lens[s]) n_lens = s + 1;
    if (sqzc_huff_code_from_lengths(c, lens, n_lens, alphabet_bits) != 0) return -1;
    uint64_t bits = 0;
    for (unsigned s = 0; s < n_lens; s++) bits += freq[s] * lens[s];
    c->payload_bits = bits;
    c->stream_bytes += (bits + 7) / 8;
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
    uint8_t *o = dst + 2 + tab, *end = dst + dst_len;
    /* code length per byte value, 0 for symbols without a code */
    uint8_t len[256] = {0};
    for (unsigned s = 0; s < c->n_lens && s < 256; s++) len[s] = c->lens[s];
    uint64_t acc = 0;
    unsigned nb = 0;
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* while 8 bytes of room are left: acc (< 8 + 15 bits) stored whole each
     * symbol and its full bytes stepped over (no branch on the bit count,
     * which a Huffman stream makes unpredictable); the same bytes as below */
    while (i < n && end - o >= 8) {
        const unsigned s = syms[i++];
        if (!len[s]) return -1;
        acc |= (uint64_t)c->rev[s] << nb;
        nb += len[s];
        memcpy(o, &acc, 8);
        o += nb >> 3;
        acc >>= nb & ~7u;
        nb &= 7;
    }
#endif
    for (; i < n; i++) {
        unsigned s = syms[i];
        if (!len[s]) return -1;
        acc |= (uint64_t)c->rev[s] << nb;
        nb += len[s];
        if (nb >= 32) { /* 4 bytes at once (codes <= 15 bits: acc holds < 47) */
            if (end - o < 4) return -1;
            o[0] = (uint8_t)acc;
            o[1] = (uint8_t)(acc >> 8);
            o[2] = (uint8_t)(acc >> 16);
            o[3] = (uint8_t)(acc >> 24);
            o += 4;
            acc >>= 32;
            nb -= 32;
        }
    }
    while (nb >= 8) {
        if (o == end) return -1;
        *o++ = (uint8_t)acc;
        acc >>= 8;
        nb -= 8;
    }
    if (nb) {
        if (o == end) return -1;
        *o++ = (uint8_t)acc;
    }
    return o == end ? 0 : -1;
}
