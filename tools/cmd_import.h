/* cmd_import.h - the `sqz import` subcommand. */
#ifndef SQZ_CMD_IMPORT_H
#define SQZ_CMD_IMPORT_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is "import". Returns the process exit code (0, 1 usage / bad input,
 * 2 runtime failure). */
int cmd_import(int argc, char **argv);
void cmd_import_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
