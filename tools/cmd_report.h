/* cmd_report.h - `sqz report`: sweep compression recipes over strengths,
 * evaluate each through the runtime on a labelled set, write a Markdown
 * table and a self-contained HTML page (inline SVG accuracy-vs-size plot,
 * Pareto front marked); `--shard i/N` writes a partial result, `--merge`
 * joins partial results into the report. */
#ifndef SQZ_CMD_REPORT_H
#define SQZ_CMD_REPORT_H

#include <stdio.h>

int cmd_report(int argc, char **argv);
void cmd_report_usage(FILE *f);

#endif
