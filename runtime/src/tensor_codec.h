/* tensor_codec.h - decode an encoded tensor payload (sqz/format.h) into dense
 * f32 at load time. Runtime-internal; the payload is hostile input. */
#ifndef SQZ_TENSOR_CODEC_H
#define SQZ_TENSOR_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Parsed payload header. */
typedef struct sqz_payload_info {
    unsigned pflags, index_bits, gap_bits, n_centroids;
    uint64_t n_values, n_gaps, value_bytes, gap_bytes, centroid_bytes;
    uint64_t header_bytes; /* the payload header's length (its counts are varints) */
    int64_t lin_offset;    /* SQZ_PF_LINEAR: centroid j = (float)(j + lin_offset) * lin_step */
    float lin_step;
} sqz_payload_info;

/* Validate the encoding byte and the payload header against the payload size
 * and numel (stream contents are checked by the decoder). 0 ok, -1 with
 * *msg set. */
int sqz_payload_parse(unsigned encoding, const uint8_t *p, uint64_t size, uint64_t numel,
                      sqz_payload_info *info, const char **msg);

/* Decode payload p[0..size) of a tensor with the given encoding byte (not
 * RAW) and numel elements into out[0..numel). 0 ok; -1 with a message in
 * err (corrupt payload or out of memory: *oom set when not NULL). */
int sqz_tensor_decode(unsigned encoding, const uint8_t *p, uint64_t size, uint64_t numel,
                      float *out, char *err, size_t err_len, int *oom);

/* IEEE half -> float (exact; subnormals, inf, NaN kept). */
float sqz_f16_to_f32(uint16_t h);

#endif
