/* cmd_quant.h - the `sqz quant` subcommand (INT8 post-training quantization). */
#ifndef SQZ_CMD_QUANT_H
#define SQZ_CMD_QUANT_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "quant". Returns the process exit code (0, 1 usage / bad input,
 * 2 runtime failure). */
int cmd_quant(int argc, char **argv);
void cmd_quant_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
