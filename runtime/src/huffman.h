/* huffman.h - canonical Huffman decoder of the runtime (internal).
 *
 * Decodes the Huffman streams of encoded tensor payloads (layout in
 * sqz/format.h, "Huffman stream"). Symbols are bytes (alphabets of up to 256
 * symbols), code lengths 1..SQZ_HUFF_MAX_LEN. Codes are canonical (DEFLATE's
 * assignment: shorter codes first, then by symbol value) and stored LSB-first
 * with the code's first (most significant) bit in the lowest unused bit, so a
 * table indexed by the next SQZ_HUFF_FAST_BITS stream bits decodes every code
 * of up to that length in one lookup; longer codes take a bit-serial slow path.
 *
 * All input is hostile: over-subscribed length sets, codes absent from an
 * incomplete code, streams that end early and trailing bytes or non-zero
 * padding bits are rejected. The offline encoder is compress/huffman/.
 */
#ifndef SQZ_RT_HUFFMAN_H
#define SQZ_RT_HUFFMAN_H

#include <stddef.h>
#include <stdint.h>

#define SQZ_HUFF_MAX_LEN 15
#define SQZ_HUFF_FAST_BITS 11
#define SQZ_HUFF_MAX_SYMS 256

typedef struct sqz_huff_dec {
    /* fast[next FAST_BITS stream bits] = (len << 8) | symbol; 0: longer code or none */
    uint16_t fast[1u << SQZ_HUFF_FAST_BITS];
    /* fast2[same] = total len | n_syms << 5 | sym0 << 8 | sym1 << 16: one or two
     * whole codes in the next FAST_BITS bits; 0: longer code or none */
    uint32_t fast2[1u << SQZ_HUFF_FAST_BITS];
    uint16_t count[SQZ_HUFF_MAX_LEN + 1]; /* number of codes of each length */
    uint8_t sorted[SQZ_HUFF_MAX_SYMS];    /* symbols in canonical order */
    int max_len;                          /* longest code length in use (>= 1) */
} sqz_huff_dec;

/* Build the decoding tables (about 12 KiB: allocate d, do not put it on a
 * small stack) from code lengths lens[0..n_syms) (0 = symbol
 * unused, else 1..SQZ_HUFF_MAX_LEN). n_syms <= SQZ_HUFF_MAX_SYMS. Incomplete
 * codes are accepted (their unused codes are rejected when met in a stream);
 * over-subscribed ones (Kraft sum > 1) are not. 0 ok, -1 invalid. */
int sqz_huff_build(sqz_huff_dec *d, const uint8_t *lens, unsigned n_syms);

/* Decode exactly n symbols from the bit stream src[0..len) into out. The
 * stream must end in the last byte (len == ceil(bits used / 8)) with zero
 * padding bits. 0 ok, -1 corrupt. */
int sqz_huff_decode(const sqz_huff_dec *d, const uint8_t *src, size_t len, uint8_t *out, size_t n);

/* A whole Huffman stream as stored in a payload (sqz/format.h):
 *   u16 n_lens (1..2^alphabet_bits), ceil(n_lens/2) bytes of 4-bit code
 *   lengths (symbol 2j in the low nibble, 2j+1 in the high one; a final
 *   unused nibble is 0), then the bit stream.
 * Decodes n symbols, each < 2^alphabet_bits (alphabet_bits 1..8), into out.
 * 0 ok, -1 corrupt (msg, if not NULL, says why). */
int sqz_huff_stream_decode(const uint8_t *src, size_t len, unsigned alphabet_bits, uint8_t *out,
                           size_t n, const char **msg);

#endif
