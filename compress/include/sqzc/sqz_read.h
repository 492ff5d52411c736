/* sqzc/sqz_read.h - read an fp32 .sqz file back into the sqzc IR (through the
 * runtime's validating loader; encoded tensors come back decoded), so that
 * offline passes such as INT8 quantization accept a .sqz as input. */
#ifndef SQZC_SQZ_READ_H
#define SQZC_SQZ_READ_H

#include <stddef.h>

#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 0 ok (*out owned by the caller), -1 with err naming the file (and tensor). */
int sqzc_read_sqz(const char *path, sqzc_graph **out, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
