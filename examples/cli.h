/* Shared plumbing of the example trainers: flag parsing, progress display, CSV logs, plots and the
 * final summary line. Example code, not part of the library. */
#ifndef MOMEX_CLI_H
#define MOMEX_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit with status 2 after printing "PROG: message" to stderr (bad flag or value). */
void cli_usage_error(const char *prog, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3), noreturn))
#endif
    ;

/* Exit with `status` after printing "PROG: message" to stderr (no pointer to --help). */
void cli_fail(const char *prog, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4), noreturn))
#endif
    ;

/* Check before any work that an output file can be written: `path` is not empty and not a
 * directory, and either it exists and is writable or its directory exists and lets us create
 * files in it. `replaced`: the file is replaced through a temporary one renamed over it, so it
 * must be a regular file if it exists, and its directory must let us create files in any case.
 * Exits with status 2 and one line naming the flag otherwise. */
void cli_check_output(const char *prog, const char *flag, const char *path, int replaced);

/* Whether gnuplot can be run (found on PATH). */
int cli_have_gnuplot(void);

/* A file a flag names: `output` if the program writes it; entries of the same nonzero `group`
 * may name the same file (--checkpoint and --resume do, to go on in place). */
typedef struct cli_path {
    const char *flag, *path;
    int output, group;
} cli_path;

/* Usage error (status 2) if an output names the same file as another output or as an input:
 * the same name, the same existing file (also through links), or the same name in the same
 * directory. Devices and pipes (/dev/null) may be named more than once. NULL paths are skipped. */
void cli_check_paths(const char *prog, const cli_path *p, size_t n);

/* Strict number parsers: the whole string must be a number in range, else cli_usage_error. */
size_t cli_size(const char *prog, const char *flag, const char *s, size_t min, size_t max);
uint64_t cli_u64(const char *prog, const char *flag, const char *s);
double cli_double(const char *prog, const char *flag, const char *s, double min, double max);
/* Split "A:B" into A (copied into first, cap bytes) and B (returned); usage error naming `form`
 * (e.g. "STEPS:MU") when there is no colon, A is empty or too long, or B is empty. */
const char *cli_split(const char *prog, const char *flag, const char *s, char *first, size_t cap,
                      const char *form);

/* "a:b" pair, e.g. --mu-warmup 0.9:1000. */
void cli_pair(const char *prog, const char *flag, const char *s, double *a, uint64_t *b);

/* Value of a flag that needs one: argv[*i + 1], advancing *i; usage error if missing. */
const char *cli_value(const char *prog, int argc, char **argv, int *i);

/* Set the BLAS thread count if the BLAS allows it at run time; returns 0 or -1. */
int cli_set_threads(int n);

/* Progress on stderr: a live bar on a terminal, redrawn in place and fitted to its width (the
 * least important fields go first), else a plain line every 1/20 of the run. While the bar is
 * shown, SIGINT and SIGTERM end its line with a newline before the signal takes its usual course
 * (a signal that was ignored stays ignored). */
typedef struct cli_progress {
    int tty, handlers;
    uint64_t total, start_step, last_line_step;
    double t0, last_draw;
} cli_progress;
void cli_progress_start(cli_progress *p, uint64_t start_step, uint64_t total);
/* loss: what the display calls the loss (the trainers: the mean training loss since the last
 * evaluation); err: the last evaluation error, NaN before the first. force: draw now. */
void cli_progress_update(cli_progress *p, uint64_t step, double loss, double err, int force);
/* End the bar's line, if one is shown, so that a message can follow on a line of its own; the
 * next update draws the bar again. For any message written while a bar may be shown. */
void cli_progress_break(void);
void cli_progress_end(cli_progress *p);
/* The line of a terminal bar for `width` columns (at most width - 1 characters, without the
 * carriage return and the clearing escape), into buf: exposed for the tests. */
void cli_progress_format(char *buf, size_t size, int width, uint64_t step, uint64_t total,
                         double rate, const char *eta, double loss, const char *err);

/* Monotonic seconds. */
double cli_now(void);

/* Open a CSV file for writing rows: truncated with `header` as its first line, or (append, when
 * resuming) continued, with the header only if the file is empty. NULL with errno set if it
 * cannot be opened or the header cannot be written. */
FILE *cli_csv_open(const char *path, int append, const char *header);
/* Cut the CSV at path before its first row whose step (first field) exceeds last_step (the rows
 * are in step order; the header stays): a resumed run then continues the file without the rows
 * of updates it runs again. The file is cut in place (a symbolic link keeps pointing at it); a
 * missing file, a device or a pipe is left alone. Returns 0, or -1 with errno set. */
int cli_csv_trim(const char *path, uint64_t last_step);

/* Flush stdout; if it (or an earlier write to it) failed, say so on stderr, naming `what` (e.g.
 * "the summary line"), and return `status`; else 0. */
int cli_stdout_status(const char *prog, const char *what, int status);

/* The trainers' CSV log (step, mu, lr, training loss, evaluation error, seconds). */
FILE *cli_log_open(const char *path, int append);
/* The seconds column of the last row of the log at path (0 if it has none or cannot be read): a
 * resumed run's clock continues from there. */
double cli_log_last_seconds(const char *path);
/* One row, flushed: 0, or -1 with errno set when it could not be written. */
int cli_log_row(FILE *f, uint64_t step, double mu, double lr, double loss, double err,
                double seconds);

/* Plot a CSV log (columns of cli_log_row) to PNG with gnuplot. Returns 0, CLI_PLOT_NO_GNUPLOT
 * when gnuplot is not installed, or -1 when it fails; a message on stderr in both cases. gnuplot's stdout goes nowhere (it draws there when it cannot
 * open the file), its stderr is shown only when it fails. */
/* A 64-bit hash of the bits of n floats (read as 32-bit integers: the same on every byte order),
 * continuing from h: equal vectors give equal hashes. */
uint64_t cli_hash_floats(uint64_t h, const float *x, size_t n);

#define CLI_PLOT_NO_GNUPLOT (-2)
int cli_plot(const char *csv, const char *png, const char *title, const char *err_label);

#endif
