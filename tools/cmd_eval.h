/* cmd_eval.h - the `sqz eval` subcommand. */
#ifndef SQZ_CMD_EVAL_H
#define SQZ_CMD_EVAL_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "eval". Returns the process exit code (0, 1 usage / bad input,
 * 2 runtime failure). */
int cmd_eval(int argc, char **argv);
void cmd_eval_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
