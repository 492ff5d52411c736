/* cmd_info.h - the `sqz info` subcommand. */
#ifndef SQZ_CMD_INFO_H
#define SQZ_CMD_INFO_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "info". Returns the process exit code (0, 1 usage / bad input,
 * 2 runtime failure). */
int cmd_info(int argc, char **argv);
void cmd_info_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
