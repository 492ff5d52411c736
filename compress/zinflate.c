/* zinflate.c - one-call zlib stream inflater for small PNG images
 * (sqzc/zinflate.h). Written from RFC 1950 / RFC 1951: canonical Huffman
 * codes (RFC 1951 sec. 3.2.2) read LSB first, an 8-bit lookup table per
 * code for the short codes and the canonical count / first walk for the
 * longer ones; the length / distance base and extra-bit tables are RFC 1951
 * sec. 3.2.5's. */
#include "sqzc/zinflate.h"

#include <string.h>
#include <zlib.h> /* adler32 */

#define FASTB 10 /* lookup table bits (most literal codes of an image fit) */
#define MAXB 15  /* longest DEFLATE code */
#define NLIT 288 /* literal / length symbols (286, 287 invalid) */

typedef struct zhuff {
    unsigned mask;             /* the table's index bits: 2^min(FASTB, longest code) - 1 */
    uint16_t fast[1 << FASTB]; /* next bits -> sym << 4 | len; 0: a longer code */
    uint16_t count[MAXB + 1];  /* codes of each length */
    uint16_t first[MAXB + 1];  /* the first (canonical) code of each length */
    uint16_t index[MAXB + 1];  /* and its symbol's place in sym */
    uint16_t sym[2 * NLIT];    /* symbols in canonical order (length, then value); unused
                                * symbols past NLIT (zbuild's stores without a branch) */
} zhuff;

/* the low 16 bits of x reversed */
static inline unsigned rev16(unsigned x) {
    x = ((x >> 1) & 0x5555u) | ((x & 0x5555u) << 1);
    x = ((x >> 2) & 0x3333u) | ((x & 0x3333u) << 2);
    x = ((x >> 4) & 0x0f0fu) | ((x & 0x0f0fu) << 4);
    return ((x >> 8) & 0x00ffu) | ((x & 0x00ffu) << 8);
}

typedef struct zbits {
    const uint8_t *in;
    size_t n, pos; /* deflate data in[0..n); bytes taken into buf */
    uint64_t buf;  /* bits read ahead, next bit lowest */
    unsigned cnt;  /* valid bits in buf */
} zbits;

/* at least 56 bits in buf, or every byte left */
static inline void refill(zbits *b) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (b->n - b->pos >= 8) {
        /* whole bytes up to 56..63 bits; the bits above cnt hold the next
         * bytes' own values (a later refill ORs the same bits again) */
        uint64_t v;
        memcpy(&v, b->in + b->pos, 8);
        b->buf |= v << b->cnt;
        b->pos += (63 - b->cnt) >> 3;
        b->cnt |= 56;
        return;
    }
#endif
    while (b->cnt <= 56 && b->pos < b->n) {
        b->buf |= (uint64_t)b->in[b->pos++] << b->cnt;
        b->cnt += 8;
    }
}

/* k <= 32 bits into *v; -1 past the end */
static inline int getbits(zbits *b, unsigned k, unsigned *v) {
    if (b->cnt < k) {
        refill(b);
        if (b->cnt < k) return -1;
    }
    *v = (unsigned)(b->buf & ((1ull << k) - 1));
    b->buf >>= k;
    b->cnt -= k;
    return 0;
}

/* the code of lens[0..n) (0 = unused, n <= NLIT); -1 over-subscribed or
 * incomplete. Counting and placing run over four quarters of the symbols
 * at once, each with its own counters: equal lengths in a row otherwise
 * chain on one counter's store and load (~5 cycles a symbol, most of a
 * small image's inflate). */
static int zbuild(zhuff *h, const uint8_t *lens, int n) {
    uint16_t cnt[4][MAXB + 1];
    memset(cnt, 0, sizeof cnt);
    /* quarter r: symbols [r q, r q + m[r]) */
    const int q = (n + 3) / 4;
    int m[4];
    for (int r = 0; r < 4; r++) m[r] = n - r * q < 0 ? 0 : n - r * q > q ? q : n - r * q;
    for (int i = 0; i < q; i++) {
        cnt[0][lens[i]]++;
        if (i < m[1]) cnt[1][lens[q + i]]++;
        if (i < m[2]) cnt[2][lens[2 * q + i]]++;
        if (i < m[3]) cnt[3][lens[3 * q + i]]++;
    }
    for (int l = 0; l <= MAXB; l++)
        h->count[l] = (uint16_t)(cnt[0][l] + cnt[1][l] + cnt[2][l] + cnt[3][l]);
    int left = 1;
    for (int l = 1; l <= MAXB; l++) {
        left = 2 * left - h->count[l];
        if (left < 0) return -1;
    }
    if (left > 0) return -1; /* incomplete: left to zlib */
    unsigned code = 0, idx = 0;
    for (int l = 1; l <= MAXB; l++) {
        h->first[l] = (uint16_t)code;
        h->index[l] = (uint16_t)idx;
        code = (code + h->count[l]) << 1;
        idx += h->count[l];
    }
    /* quarter r's first place of each length (unused symbols: past NLIT) */
    uint16_t offs[4][MAXB + 1];
    for (int l = 0; l <= MAXB; l++) {
        offs[0][l] = l ? h->index[l] : NLIT;
        for (int r = 1; r < 4; r++) offs[r][l] = (uint16_t)(offs[r - 1][l] + cnt[r - 1][l]);
    }
    for (int i = 0; i < q; i++) {
        h->sym[offs[0][lens[i]]++] = (uint16_t)i;
        if (i < m[1]) h->sym[offs[1][lens[q + i]]++] = (uint16_t)(q + i);
        if (i < m[2]) h->sym[offs[2][lens[2 * q + i]]++] = (uint16_t)(2 * q + i);
        if (i < m[3]) h->sym[offs[3][lens[3 * q + i]]++] = (uint16_t)(3 * q + i);
    }
    /* the table grows by doubling, a length at a time (a short code's
     * entries differ only in the bits past it: the copy replicates them),
     * to the longest code or FASTB: ~2^bits stores, not one per entry per
     * code of a 10-bit table for a 7-bit code set */
    unsigned size = 1, longest = 0;
    for (unsigned l = 1; l <= MAXB; l++)
        if (h->count[l]) longest = l;
    const unsigned tb = longest < FASTB ? longest : FASTB;
    h->fast[0] = 0;
    for (unsigned l = 1; l <= tb; l++, size *= 2) {
        memcpy(h->fast + size, h->fast, size * sizeof h->fast[0]);
        for (unsigned k = 0; k < h->count[l]; k++) /* the code's bits in stream order */
            h->fast[rev16(h->first[l] + k) >> (16 - l)] =
                (uint16_t)(h->sym[h->index[l] + k] << 4 | l);
    }
    h->mask = size - 1;
    return 0;
}

/* a code longer than h's table (its first bits' entry is 0): the canonical
 * codes of a length are consecutive from first[l]; the stream holds a code's
 * MSB first. -1 past the end. */
static int zdecode_long(zbits *b, const zhuff *h) {
    const unsigned c16 = rev16((unsigned)(b->buf & 0xffffu));
    for (unsigned l = FASTB + 1; l <= MAXB; l++) {
        const unsigned c = (c16 >> (16 - l)) - h->first[l];
        if (c < h->count[l]) {
            if (l > b->cnt) return -1;
            b->buf >>= l;
            b->cnt -= l;
            return h->sym[h->index[l] + c];
        }
    }
    return -1;
}

/* the next symbol of h when buf holds >= MAXB bits */
static inline int zdecode_fast(zbits *b, const zhuff *h) {
    const unsigned e = h->fast[b->buf & h->mask];
    if (!e) return zdecode_long(b, h);
    b->buf >>= e & 15;
    b->cnt -= e & 15;
    return (int)(e >> 4);
}

/* the next symbol of h; -1 past the end */
static inline int zdecode(zbits *b, const zhuff *h) {
    if (b->cnt < MAXB) refill(b);
    const unsigned e = h->fast[b->buf & h->mask];
    if (!e) return zdecode_long(b, h);
    const unsigned l = e & 15;
    if (l > b->cnt) return -1;
    b->buf >>= l;
    b->cnt -= l;
    return (int)(e >> 4);
}

static const uint16_t lbase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dbase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                   33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                   1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dext[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* one block's codes into out (o bytes so far) up to end-of-block */
static int zcodes(zbits *bp, const zhuff *lit, const zhuff *dist, uint8_t *out, size_t cap,
                  size_t *po) {
    /* the reader in a local: the output's byte stores could alias *bp, which
     * would keep its fields in memory */
    zbits rd = *bp, *const b = &rd;
    size_t o = *po;
    for (;;) {
        int s;
        if (b->n - b->pos >= 8) {
            /* >= 56 bits after the refill: two literal / length codes (<= 30
             * bits) without a check; a length's rest after another refill */
            refill(b);
            s = zdecode_fast(b, lit);
            if (s >= 0 && s < 256) {
                if (o >= cap) return -1;
                out[o++] = (uint8_t)s;
                s = zdecode_fast(b, lit);
                if (s >= 0 && s < 256) {
                    if (o >= cap) return -1;
                    out[o++] = (uint8_t)s;
                    continue;
                }
            }
            refill(b);
        } else {
            s = zdecode(b, lit);
        }
        if (s < 0) return -1;
        if (s < 256) {
            if (o >= cap) return -1;
            out[o++] = (uint8_t)s;
            continue;
        }
        if (s == 256) break;
        s -= 257;
        if (s >= 29) return -1; /* 286, 287 */
        unsigned x, y;
        if (getbits(b, lext[s], &x) != 0) return -1;
        const size_t len = lbase[s] + x;
        const int d = zdecode(b, dist);
        if (d < 0 || d >= 30 || getbits(b, dext[d], &y) != 0) return -1;
        const size_t dd = dbase[d] + y;
        if (dd > o || len > cap - o) return -1; /* before the start, past the end */
        uint8_t *p = out + o;
        const uint8_t *q = p - dd;
        for (size_t k = 0; k < len; k++) p[k] = q[k]; /* overlapping: byte by byte */
        o += len;
    }
    *bp = rd;
    *po = o;
    return 0;
}

/* the bit reader to its next byte boundary, read-ahead bytes given back */
static void zalign(zbits *b) {
    b->pos -= b->cnt >> 3;
    b->buf = 0;
    b->cnt = 0;
}

int sqzc_zinflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len) {
    /* header: deflate, window <= 32 KB, check bits, no preset dictionary */
    if (n < 2 + 4 || (in[0] & 15) != 8 || in[0] >> 4 > 7 || ((unsigned)in[0] << 8 | in[1]) % 31 ||
        (in[1] & 0x20))
        return -1;
    zbits b = {in, n - 4, 2, 0, 0}; /* the Adler-32 is not deflate data */
    size_t o = 0;
    unsigned last = 0, type;
    do {
        if (getbits(&b, 1, &last) != 0 || getbits(&b, 2, &type) != 0) return -1;
        if (type == 0) { /* stored */
            zalign(&b);
            if (b.n - b.pos < 4) return -1;
            const unsigned len = in[b.pos] | (unsigned)in[b.pos + 1] << 8;
            const unsigned nlen = in[b.pos + 2] | (unsigned)in[b.pos + 3] << 8;
            if (len != (~nlen & 0xffffu)) return -1;
            b.pos += 4;
            if (len > b.n - b.pos || len > cap - o) return -1;
            memcpy(out + o, in + b.pos, len);
            o += len;
            b.pos += len;
        } else if (type == 1) { /* fixed codes (RFC 1951 sec. 3.2.6) */
            uint8_t lens[NLIT + 32];
            memset(lens, 8, 144);
            memset(lens + 144, 9, 112);
            memset(lens + 256, 7, 24);
            memset(lens + 280, 8, 8);
            memset(lens + NLIT, 5, 32); /* 30, 31: in the code, invalid when met */
            zhuff lit, dist;
            if (zbuild(&lit, lens, NLIT) || zbuild(&dist, lens + NLIT, 32) ||
                zcodes(&b, &lit, &dist, out, cap, &o))
                return -1;
        } else if (type == 2) { /* dynamic codes (RFC 1951 sec. 3.2.7) */
            static const uint8_t ord[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                            11, 4,  12, 3, 13, 2, 14, 1, 15};
            unsigned nlen, ndist, ncode, v;
            if (getbits(&b, 5, &nlen) || getbits(&b, 5, &ndist) || getbits(&b, 4, &ncode))
                return -1;
            nlen += 257;
            ndist += 1;
            ncode += 4;
            if (nlen > 286 || ndist > 30) return -1;
            uint8_t lens[NLIT + 32];
            memset(lens, 0, sizeof lens);
            for (unsigned i = 0; i < ncode; i++) {
                if (getbits(&b, 3, &v)) return -1;
                lens[ord[i]] = (uint8_t)v;
            }
            zhuff cl;
            if (zbuild(&cl, lens, 19)) return -1;
            for (unsigned i = 0; i < nlen + ndist;) {
                const int s = zdecode(&b, &cl);
                if (s < 0) return -1;
                if (s < 16) {
                    lens[i++] = (uint8_t)s;
                    continue;
                }
                unsigned rep, val = 0;
                if (s == 16) {
                    if (i == 0 || getbits(&b, 2, &rep)) return -1;
                    val = lens[i - 1];
                    rep += 3;
                } else if (s == 17) {
                    if (getbits(&b, 3, &rep)) return -1;
                    rep += 3;
                } else {
                    if (getbits(&b, 7, &rep)) return -1;
                    rep += 11;
                }
                if (rep > nlen + ndist - i) return -1;
                while (rep--) lens[i++] = (uint8_t)val;
            }
            if (lens[256] == 0) return -1; /* no end-of-block code */
            zhuff lit, dist;
            if (zbuild(&lit, lens, (int)nlen) || zbuild(&dist, lens + nlen, (int)ndist) ||
                zcodes(&b, &lit, &dist, out, cap, &o))
                return -1;
        } else {
            return -1;
        }
    } while (!last);
    /* the Adler-32 (big-endian) right after the last block's byte */
    b.buf >>= b.cnt & 7;
    b.cnt -= b.cnt & 7;
    zalign(&b);
    if (b.pos != n - 4) return -1;
    const uint32_t want = (uint32_t)in[n - 4] << 24 | (uint32_t)in[n - 3] << 16 |
                          (uint32_t)in[n - 2] << 8 | in[n - 1];
    uLong a = adler32(0L, Z_NULL, 0);
    for (size_t i = 0; i < o;) { /* zlib's length is a uInt */
        const size_t k = o - i > (1u << 30) ? (1u << 30) : o - i;
        a = adler32(a, out + i, (uInt)k);
        i += k;
    }
    if ((uint32_t)a != want) return -1;
    *out_len = o;
    return 0;
}
