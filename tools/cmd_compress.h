/* cmd_compress.h - the `sqz compress` subcommand. */
#ifndef SQZ_CMD_COMPRESS_H
#define SQZ_CMD_COMPRESS_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "compress". Returns the process exit code (0, 1 usage / bad
 * input, 2 runtime failure). */
int cmd_compress(int argc, char **argv);
void cmd_compress_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
