/* huffman.c - table-driven canonical Huffman decoder (see huffman.h).
 *
 * Bits are read LSB-first through a 64-bit bit buffer. While at least 8 input
 * bytes remain, a refill loads 8 bytes at once and keeps 56..63 valid bits;
 * near the end bytes are added one at a time and zero bytes are appended
 * virtually (counted, so running past the end is detected). Between refills
 * floor(56 / max_len) symbols are decoded without further checks, each by one
 * lookup in a 2^SQZ_HUFF_FAST_BITS table when its code is short enough.
 */
#include "huffman.h"

#include <stdlib.h>
#include <string.h>

#define FAST_MASK ((1u << SQZ_HUFF_FAST_BITS) - 1)

int sqz_huff_build(sqz_huff_dec *d, const uint8_t *lens, unsigned n_syms) {
    if (n_syms > SQZ_HUFF_MAX_SYMS) return -1;
    memset(d->count, 0, sizeof d->count);
    for (unsigned s = 0; s < n_syms; s++) {
        if (lens[s] > SQZ_HUFF_MAX_LEN) return -1;
        d->count[lens[s]]++;
    }
    d->count[0] = 0;
    /* Kraft: the codes of each length must fit in what the shorter ones left */
    int32_t left = 1;
    for (int l = 1; l <= SQZ_HUFF_MAX_LEN; l++) {
        left = 2 * left - d->count[l];
        if (left < 0) return -1;
    }
    unsigned offs[SQZ_HUFF_MAX_LEN + 2];
    offs[1] = 0;
    d->max_len = 1;
    for (int l = 1; l <= SQZ_HUFF_MAX_LEN; l++) {
        offs[l + 1] = offs[l] + d->count[l];
        if (d->count[l]) d->max_len = l;
    }
    for (unsigned s = 0; s < n_syms; s++)
        if (lens[s]) d->sorted[offs[lens[s]]++] = (uint8_t)s;
    memset(d->fast, 0, sizeof d->fast);
    /* canonical codes in order; each short code fills every table slot whose
     * low len bits are its bit-reversed code */
    uint32_t code = 0;
    unsigned idx = 0;
    for (int l = 1; l <= SQZ_HUFF_FAST_BITS; l++) {
        for (unsigned k = 0; k < d->count[l]; k++, code++) {
            uint32_t rev = 0;
            for (int b = 0; b < l; b++) rev |= ((code >> b) & 1u) << (l - 1 - b);
            uint16_t e = (uint16_t)((unsigned)l << 8 | d->sorted[idx++]);
            for (uint32_t j = rev; j <= FAST_MASK; j += 1u << l) d->fast[j] = e;
        }
        code <<= 1;
    }
    /* pairs: a short code followed by another that fits in the same lookup */
    for (uint32_t j = 0; j <= FAST_MASK; j++) {
        unsigned e = d->fast[j];
        if (!e) {
            d->fast2[j] = 0;
            continue;
        }
        unsigned l1 = e >> 8, e2 = d->fast[j >> l1];
        if (e2 && l1 + (e2 >> 8) <= SQZ_HUFF_FAST_BITS)
            d->fast2[j] = (l1 + (e2 >> 8)) | 2u << 5 | (e & 0xffu) << 8 | (e2 & 0xffu) << 16;
        else
            d->fast2[j] = l1 | 1u << 5 | (e & 0xffu) << 8;
    }
    return 0;
}

static inline uint64_t load_le64(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
#endif
}

/* Bit-serial canonical decode of a code longer than the fast table (or of a
 * code an incomplete length set lacks). buf holds >= max_len valid bits.
 * Returns the symbol and sets *len, or -1. */
static int decode_slow(const sqz_huff_dec *d, uint64_t buf, unsigned *len) {
    int32_t code = 0, first = 0, index = 0;
    for (int l = 1; l <= d->max_len; l++) {
        code |= (int32_t)((buf >> (l - 1)) & 1u);
        int32_t c = d->count[l];
        if (code - first < c) {
            *len = (unsigned)l;
            return d->sorted[index + code - first];
        }
        index += c;
        first = (first + c) << 1;
        code <<= 1;
    }
    return -1;
}

int sqz_huff_decode(const sqz_huff_dec *d, const uint8_t *src, size_t len, uint8_t *out, size_t n) {
    const uint8_t *p = src, *end = src + len;
    const uint16_t *fast = d->fast;
    uint64_t buf = 0;
    unsigned bits = 0;
    size_t pad = 0; /* virtual zero bytes read past the end */
    const size_t per = (size_t)(56 / d->max_len);
    const size_t per2 =
        (size_t)(56 / (d->max_len > SQZ_HUFF_FAST_BITS ? d->max_len : SQZ_HUFF_FAST_BITS));
    const uint32_t *fast2 = d->fast2;
    size_t i = 0;
    while (i < n) {
        if (end - p >= 8) {
            buf |= load_le64(p) << bits;
            p += (63 - bits) >> 3;
            bits |= 56;
        } else {
            while (bits <= 56) {
                uint64_t b = 0;
                if (p < end)
                    b = *p++;
                else
                    pad++;
                buf |= b << bits;
                bits += 8;
            }
            if (pad > 8) return -1; /* a whole virtual byte consumed: ran past the end */
        }
        if (n - i >= 2 * per2) {
            /* one lookup yields one or two symbols and uses <= max(FAST_BITS, max_len) bits */
            for (size_t k = 0; k < per2; k++) {
                uint32_t e = fast2[buf & FAST_MASK];
                unsigned l;
                if (e) {
                    l = e & 31u;
                    out[i] = (uint8_t)(e >> 8);
                    out[i + 1] = (uint8_t)(e >> 16); /* overwritten next when n_syms == 1 */
                    i += (e >> 5) & 3u;
                } else {
                    int s = decode_slow(d, buf, &l);
                    if (s < 0) return -1;
                    out[i++] = (uint8_t)s;
                }
                buf >>= l;
                bits -= l;
            }
            continue;
        }
        size_t stop = n - i < per ? n : i + per;
        while (i < stop) {
            unsigned e = fast[buf & FAST_MASK], l;
            if (e) {
                l = e >> 8;
                out[i] = (uint8_t)e;
            } else {
                int s = decode_slow(d, buf, &l);
                if (s < 0) return -1;
                out[i] = (uint8_t)s;
            }
            buf >>= l;
            bits -= l;
            i++;
        }
    }
    uint64_t used = ((uint64_t)(p - src) + pad) * 8 - bits;
    if (used > (uint64_t)len * 8 || (used + 7) / 8 != len) return -1;
    if (used % 8 && (src[len - 1] >> (used % 8)) != 0) return -1; /* padding bits must be 0 */
    return 0;
}

int sqz_huff_stream_decode(const uint8_t *src, size_t len, unsigned alphabet_bits, uint8_t *out,
                           size_t n, const char **msg) {
    const char *dummy;
    if (!msg) msg = &dummy;
    if (alphabet_bits < 1 || alphabet_bits > 8) {
        *msg = "Huffman alphabet size invalid";
        return -1;
    }
    if (len < 2) {
        *msg = "Huffman stream truncated";
        return -1;
    }
    unsigned n_lens = (unsigned)src[0] | (unsigned)src[1] << 8;
    if (n_lens == 0 || n_lens > (1u << alphabet_bits)) {
        *msg = "Huffman code length count invalid";
        return -1;
    }
    size_t lb = (n_lens + 1) / 2;
    if (len - 2 < lb) {
        *msg = "Huffman stream truncated";
        return -1;
    }
    uint8_t lens[SQZ_HUFF_MAX_SYMS];
    for (unsigned s = 0; s < n_lens; s++) lens[s] = (src[2 + s / 2] >> (4 * (s & 1))) & 15u;
    if ((n_lens & 1) && (src[2 + lb - 1] >> 4) != 0) {
        *msg = "Huffman code length padding not zero";
        return -1;
    }
    sqz_huff_dec *d = malloc(sizeof *d);
    if (!d) {
        *msg = "out of memory";
        return -1;
    }
    int rc = -1;
    if (sqz_huff_build(d, lens, n_lens) != 0)
        *msg = "Huffman code lengths over-subscribed";
    else if (sqz_huff_decode(d, src + 2 + lb, len - 2 - lb, out, n) != 0)
        *msg = "Huffman bit stream corrupt (bad code, early end or trailing bytes)";
    else
        rc = 0;
    free(d);
    return rc;
}
