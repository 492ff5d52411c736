/* sqzc/huffman.h - canonical Huffman encoder (offline side).
 *
 * Produces the "Huffman stream" of sqz/format.h that the runtime decoder
 * (runtime/src/huffman.c) reads: length-limited (<= SQZC_HUFF_MAX_LEN bits)
 * canonical codes over byte symbols, code lengths stored as 4-bit nibbles,
 * codes written LSB-first. Used for the codebook-index and sparse-gap streams
 * of encoded tensors (Deep Compression, Han et al. arXiv:1510.00149, sec. 4).
 */
#ifndef SQZC_HUFFMAN_H
#define SQZC_HUFFMAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQZC_HUFF_MAX_LEN 15
#define SQZC_HUFF_MAX_SYMS 256
/* sqzc_huff_code_build_mt: at most this many parts, each at least
 * SQZC_HUFF_PART_MIN symbols (a smaller part codes in less time than a
 * sleeping thread takes to wake: ~0.3 ns a symbol, tens of us) */
#define SQZC_HUFF_MAX_PARTS 4
#define SQZC_HUFF_PART_MIN ((size_t)1 << 16)

/* Code lengths for the symbol frequencies freq[0..n_syms), each at most
 * max_len (1..SQZC_HUFF_MAX_LEN; max_len must allow 2^max_len >= number of
 * used symbols). Unused symbols (freq 0) get 0; a single used symbol gets 1.
 * Optimal (Huffman) when no length exceeds max_len, else lengths are clamped
 * and repaired to satisfy Kraft, near-optimally. 0 ok, -1 bad arguments. */
int sqzc_huff_lengths(const uint64_t *freq, unsigned n_syms, unsigned max_len, uint8_t *lens);

/* A code for one stream of symbols over an alphabet of 2^alphabet_bits. */
typedef struct sqzc_huff_code {
    unsigned alphabet_bits;
    unsigned n_lens;                  /* symbols covered by the length table */
    uint8_t lens[SQZC_HUFF_MAX_SYMS]; /* 0 = unused */
    uint16_t rev[SQZC_HUFF_MAX_SYMS]; /* canonical code, bit-reversed (LSB-first) */
    uint64_t payload_bits;            /* bits of the coded symbols */
    uint64_t stream_bytes;            /* whole stream: 2 + table + ceil(bits/8) */
    /* the symbols cut into n_parts runs (1 from sqzc_huff_code_build, 0
     * from _from_lengths: unknown) that sqzc_huff_write codes on a thread
     * each: run i ends at symbol part_end[i] and takes part_bits[i] bits */
    unsigned n_parts;
    size_t part_end[SQZC_HUFF_MAX_PARTS];
    uint64_t part_bits[SQZC_HUFF_MAX_PARTS];
} sqzc_huff_code;

/* Build the code for syms[0..n) (each < 2^alphabet_bits, alphabet_bits 1..8)
 * and compute the stream size. 0 ok, -1 bad arguments or a symbol too big. */
int sqzc_huff_code_build(sqzc_huff_code *c, const uint8_t *syms, size_t n, unsigned alphabet_bits);
/* The same code, counted on up to `threads` OpenMP threads, and the stream
 * cut into that many parts for sqzc_huff_write (fewer when parts would get
 * under SQZC_HUFF_PART_MIN symbols). The written bytes do not depend on the
 * parts: each part's first bit is known from the code lengths and the
 * parts' symbol counts, and the byte two parts share is merged. */
int sqzc_huff_code_build_mt(sqzc_huff_code *c, const uint8_t *syms, size_t n,
                            unsigned alphabet_bits, int threads);

/* Same from code lengths (for tests: any valid length set). 0 ok, -1 invalid. */
int sqzc_huff_code_from_lengths(sqzc_huff_code *c, const uint8_t *lens, unsigned n_lens,
                                unsigned alphabet_bits);

/* Write the whole stream (c->stream_bytes bytes, as computed for these same
 * symbols) into dst, the parts of c (if more than one) on a thread each.
 * 0 ok, -1 if a symbol has no code or sizes disagree. */
int sqzc_huff_write(const sqzc_huff_code *c, const uint8_t *syms, size_t n, uint8_t *dst,
                    size_t dst_len);

#ifdef __cplusplus
}
#endif
#endif
