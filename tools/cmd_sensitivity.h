/* cmd_sensitivity.h - the `sqz sensitivity` subcommand. */
#ifndef SQZ_CMD_SENSITIVITY_H
#define SQZ_CMD_SENSITIVITY_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

int cmd_sensitivity(int argc, char **argv);
void cmd_sensitivity_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
