/* sqzc/zinflate.h - a whole zlib stream (RFC 1950 around DEFLATE, RFC 1951)
 * inflated in one call into a caller's buffer, for small PNG images.
 *
 * zlib's inflate costs ~4.5 us on a 28x28 gray PNG, a third of it in table
 * set-up sized for long streams (9-bit root tables, a state of ~7 KB to
 * initialize). This one builds 8-bit lookup tables and decodes longer codes
 * canonically (count / first), with no state beyond the call.
 *
 * Strict: anything it does not accept is -1 and the caller decodes with zlib
 * instead, whose verdict then stands. It refuses what zlib refuses (bad
 * header, preset dictionary, bad block type, stored length check, over- or
 * under-subscribed codes, a missing end-of-block code, invalid symbols,
 * distances before the output's start, output past cap, a truncated stream,
 * a wrong Adler-32, bytes after it) and also some streams zlib accepts
 * (incomplete code sets, which zlib's own deflate never writes). */
#ifndef SQZC_ZINFLATE_H
#define SQZC_ZINFLATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* in[0..n) is exactly one zlib stream: its data inflated into out[0..cap),
 * *out_len bytes. 0 ok, -1 refused (out's contents then undefined). */
int sqzc_zinflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
