/* cli_util.h - shared helpers of the sqz command-line tool: error reporting,
 * option and list parsing, atomic file output. */
#ifndef SQZ_CLI_UTIL_H
#define SQZ_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exit codes of every subcommand. */
enum { CLI_OK = 0, CLI_EUSAGE = 1, CLI_ERUNTIME = 2 };

/* Print "sqz <cmd>: <message>" as one line on stderr (newlines in the
 * message are replaced by spaces). */
void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Option matching for "--name value" and "--name=value". Returns 1 and sets
 * *val when argv[*i] is the option (advancing *i past a separate value),
 * 0 when it is another argument, -1 when the value is missing. */
int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **val);

/* cli_opt_value over a table of valued option names: returns the index of
 * the matching name (value in *val), -1 when argv[*i] is none of them, -2
 * after printing "<cmd>: <name> needs a value" when its value is missing. */
int cli_opt_table(int argc, char **argv, int *i, const char *const *names, int n_names,
                  const char *cmd, const char **val);

/* A command's options, as a table: cli_opt_parse matches argv[*i] against it,
 * checks the value and stores it, so that every command checks its values the
 * same way and says what is wrong with them in the same words. */
typedef enum {
    CLI_FLAG,   /* no value: *(int *)dst = (int)lo */
    CLI_STR,    /* const char **dst = the value (one of `choices` when set) */
    CLI_INT,    /* long long *dst, an integer in [lo, hi], then at most `clamp` (if > 0) */
    CLI_INT32,  /* int *dst, the same */
    CLI_FLOAT,  /* float *dst, a number in [flo, fhi] (open ends: CLI_LO_OPEN / CLI_HI_OPEN) */
    CLI_CHOICE, /* int *dst = values[k] (or k) for the k-th of `choices` */
    CLI_SHAPES  /* cli_shapes *dst, one "name:d0,d1,..." appended */
} cli_kind;
enum { CLI_LO_OPEN = 1, CLI_HI_OPEN = 2 };

typedef struct cli_opt {
    const char *name;  /* "--threads" */
    const char *alias; /* "-o", or NULL */
    cli_kind kind;
    void *dst;
    long long lo, hi, clamp; /* CLI_INT / CLI_INT32; CLI_FLAG: lo is the value stored */
    float flo, fhi;          /* CLI_FLOAT */
    unsigned open;           /* CLI_FLOAT: CLI_LO_OPEN | CLI_HI_OPEN */
    const char *choices;     /* CLI_CHOICE / CLI_STR: "none,analytic,empirical" */
    const int *values;       /* CLI_CHOICE: the value of each choice (NULL: its index) */
    int *given;              /* set to 1 when the option is given (may be NULL) */
} cli_opt;

/* Returns the index in opts of the option argv[*i] is (its value checked and
 * stored, *i advanced past a separate value), -1 when it is none of them, -2
 * after printing the error: "<name> needs a value", "bad <name> '<v>' (expected
 * an integer in 1..1024)", "bad <name> '<v>' (expected a number in (50, 100])",
 * "unknown <name> '<v>' (a, b, c)" or the shape parser's message. */
int cli_opt_parse(const char *cmd, int argc, char **argv, int *i, const cli_opt *opts, int n);

/* An argument that is no known option: stores it in *slot (the command's one
 * positional argument). Returns -1 after printing an error when it looks like
 * an option ("unknown option ... (try sqz <cmd> --help)") or when *slot is
 * already taken ("unexpected argument"); "-" alone counts as a positional. */
int cli_positional(const char *cmd, const char *arg, const char **slot);

/* Strict number parsing: the whole string must be consumed. 0 ok, -1 bad. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);
int cli_parse_float(const char *s, float *out);

/* Comma lists "1,3,224,224". Return the element count (<= max) or -1 on a
 * malformed or over-long list. Empty elements are errors. */
int cli_parse_int_list(const char *s, int64_t *out, int max);
int cli_parse_float_list(const char *s, float *out, int max);

/* "name:d0,d1,..." -> malloc'd *name and *shape (every dim >= 1).
 * 0 ok, -1 with err. */
int cli_parse_named_shape(const char *s, char **name, sqz_shape *shape, char *err, size_t err_len);

/* "[1,3,224,224]" into buf (always NUL-terminated). */
const char *cli_shape_str(const sqz_shape *s, char *buf, size_t len);

/* Atomic output: write to "<path>.tmp.XXXXXX" and rename over path on
 * commit; abort removes the temporary. */
typedef struct cli_atomic {
    FILE *f;
    char *tmp;
    char *path;
} cli_atomic;
int cli_atomic_open(cli_atomic *a, const char *path, char *err, size_t err_len);
/* Flush, fsync (SQZ_FSYNC=1 only), close and rename; on failure the temporary is removed. */
int cli_atomic_commit(cli_atomic *a, char *err, size_t err_len);
void cli_atomic_abort(cli_atomic *a);
/* Write a whole buffer atomically. */
int cli_write_file_atomic(const char *path, const void *data, size_t size, char *err,
                          size_t err_len);

/* Repeated --input-shape options. */
typedef struct cli_shapes {
    char **names;
    sqz_shape *shapes;
    int n;
} cli_shapes;
/* Parse and append "name:d0,d1,..."; 0 ok, -1 with err. */
int cli_shapes_add(cli_shapes *s, const char *spec, char *err, size_t err_len);
void cli_shapes_free(cli_shapes *s);

/* Exit code for a runtime status: CLI_ERUNTIME for out-of-memory, CLI_EUSAGE
 * (bad input) otherwise. */
int cli_exit_for_sqz(int code);

/* Load a .sqz model and create a session with the given input-shape
 * overrides (may be NULL) and thread count (<= 0: default). Prints the
 * error ("sqz <cmd>: ...") and returns the exit code on failure, 0 on
 * success. On failure *m and *s are NULL. */
struct sqz_model;
struct sqz_session;
int cli_open_model(const char *cmd, const char *path, struct sqz_model **m);
int cli_open_session(const char *cmd, const struct sqz_model *m, const cli_shapes *shapes,
                     int threads, struct sqz_session **s);

/* JSON string literal of s (quotes included) to f. */
void cli_json_str(FILE *f, const char *s);

/* Size of a regular file, -1 on failure. */
long long cli_file_size(const char *path);

/* Seconds from a monotonic clock. */
double cli_now(void);

#ifdef __cplusplus
}
#endif
#endif
