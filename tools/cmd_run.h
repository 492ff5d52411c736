/* cmd_run.h - the `sqz run` subcommand. */
#ifndef SQZ_CMD_RUN_H
#define SQZ_CMD_RUN_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "run". Returns the process exit code (0, 1 usage / bad input,
 * 2 runtime failure). */
int cmd_run(int argc, char **argv);
void cmd_run_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
