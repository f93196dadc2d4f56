/* Shared plumbing of the example trainers; see cli.h. */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700 /* realpath() */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cli.h"

#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
void openblas_set_num_threads(int num_threads);
#elif defined(__GNUC__) && defined(__ELF__)
/* Debian's libblas.so.3 (OpenBLAS) does not export it, but libopenblas.so.0, which the LAPACK
 * this program links loads, does: a weak reference finds it at run time, and stays NULL with a
 * BLAS that has no such function. */
void openblas_set_num_threads(int num_threads) __attribute__((weak));
#define WEAK_OPENBLAS_SET_NUM_THREADS 1
#endif

void cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", prog);
    exit(2);
}

void cli_fail(const char *prog, int status, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

void cli_check_output(const char *prog, const char *flag, const char *path, int replaced)
{
    size_t len = strlen(path);
    if (len == 0)
        cli_fail(prog, 2, "%s needs a file name", flag);
    if (path[len - 1] == '/')
        cli_fail(prog, 2, "%s %s: is a directory name, not a file name", flag, path);
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            cli_fail(prog, 2, "%s %s: is a directory", flag, path);
        if (replaced && !S_ISREG(st.st_mode)) /* rename() would put a file in its place */
            cli_fail(prog, 2, "%s %s: is not a regular file (it is written to a temporary file "
                              "beside it, then renamed over it)", flag, path);
        if (access(path, W_OK) != 0)
            cli_fail(prog, 2, "%s %s: cannot write it: %s", flag, path, strerror(errno));
        if (!replaced)
            return;
    } else if (errno != ENOENT) {
        cli_fail(prog, 2, "%s %s: %s", flag, path, strerror(errno)); /* e.g. a file in the path */
    }
    /* the directory: "x" is in ".", "/x" in "/" */
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path), path);
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            cli_fail(prog, 2, "%s %s: the directory %s does not exist", flag, path, dir);
        cli_fail(prog, 2, "%s %s: %s: %s", flag, path, dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        cli_fail(prog, 2, "%s %s: %s is not a directory", flag, path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        cli_fail(prog, 2, "%s %s: cannot create files in %s: %s", flag, path, dir,
                 strerror(errno));
}

/* The canonical name of a path that may not exist yet: its directory resolved, then its last
 * component; 0 if it has one. */
static int canonical_name(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    char dir[4096], real[PATH_MAX];
    const char *base = slash ? slash + 1 : path;
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path), path);
    if (realpath(dir, real) == NULL)
        return -1;
    int n = snprintf(out, size, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb) /* a device such as /dev/null may take several outputs */
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino && S_ISREG(sa.st_mode);
    if (strcmp(a, b) == 0)
        return 1;
    if (ea != eb) /* one exists and the other does not: two files */
        return 0;
    char ca[PATH_MAX + 256], cb[PATH_MAX + 256];
    return canonical_name(a, ca, sizeof ca) == 0 && canonical_name(b, cb, sizeof cb) == 0 &&
           strcmp(ca, cb) == 0;
}

void cli_check_paths(const char *prog, const cli_path *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            if (!p[i].path || !p[j].path || (!p[i].output && !p[j].output))
                continue;
            if (p[i].group != 0 && p[i].group == p[j].group)
                continue;
            if (same_file(p[i].path, p[j].path))
                cli_usage_error(prog, "%s %s and %s %s name the same file: %s", p[i].flag,
                                p[i].path, p[j].flag, p[j].path,
                                p[i].output && p[j].output ? "each output needs its own"
                                                           : "the output would overwrite the input");
        }
}

int cli_have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

size_t cli_size(const char *prog, const char *flag, const char *s, size_t min, size_t max)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        cli_usage_error(prog, "%s needs a non-negative integer, got '%s'", flag, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        cli_usage_error(prog, "%s needs an integer, got '%s'", flag, s);
    if (errno == ERANGE || v < min || v > max)
        cli_usage_error(prog, "%s must be in %zu..%zu, got %s", flag, min, max, s);
    return (size_t)v;
}

uint64_t cli_u64(const char *prog, const char *flag, const char *s)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        cli_usage_error(prog, "%s needs a non-negative integer, got '%s'", flag, s);
    unsigned long long v = strtoull(s, &end, 10); /* decimal: "010" is ten, not eight */
    if (*end != '\0')
        cli_usage_error(prog, "%s needs an integer, got '%s'", flag, s);
    if (errno == ERANGE)
        cli_usage_error(prog, "%s must be at most %llu, got %s", flag,
                        (unsigned long long)UINT64_MAX, s);
    return (uint64_t)v;
}

double cli_double(const char *prog, const char *flag, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || end == s || isnan(v))
        cli_usage_error(prog, "%s needs a number, got '%s'", flag, s);
    /* out of the double range (1e400, 1e-400) or infinite: a number, but not one in range */
    if (errno == ERANGE || !isfinite(v) || v < min || v > max)
        cli_usage_error(prog, "%s must be in [%g, %g], got %s", flag, min, max, s);
    return v;
}

const char *cli_split(const char *prog, const char *flag, const char *s, char *first, size_t cap,
                      const char *form)
{
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : 0;
    if (colon == NULL || len == 0 || len >= cap || colon[1] == '\0')
        cli_usage_error(prog, "%s needs %s, got '%s'", flag, form, s);
    memcpy(first, s, len);
    first[len] = '\0';
    return colon + 1;
}

void cli_pair(const char *prog, const char *flag, const char *s, double *a, uint64_t *b)
{
    char first[64];
    const char *second = cli_split(prog, flag, s, first, sizeof first, "VALUE:STEPS");
    *a = cli_double(prog, flag, first, 0.0, 1.0);
    *b = cli_u64(prog, flag, second);
}

const char *cli_value(const char *prog, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        cli_usage_error(prog, "%s needs a value", argv[*i]);
    *i += 1;
    return argv[*i];
}

int cli_set_threads(int n)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    openblas_set_num_threads(n);
    return 0;
#elif defined(WEAK_OPENBLAS_SET_NUM_THREADS)
    if (openblas_set_num_threads == NULL)
        return -1;
    openblas_set_num_threads(n);
    return 0;
#else
    (void)n;
    return -1;
#endif
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_duration(char *buf, size_t size, double s)
{
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, size, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
}

/* The bar's line is on the terminal without its newline: what the signal handler looks at. */
static volatile sig_atomic_t bar_open;
static struct sigaction old_int, old_term;

/* SIGINT/SIGTERM while the bar is shown: end its line, then let the signal do what it did before
 * (by default kill the process, so the status stays the signal's: 130 for SIGINT in the shell).
 * Only async-signal-safe calls: write, sigaction, raise. */
static void on_signal(int sig)
{
    if (bar_open) {
        ssize_t r = write(STDERR_FILENO, "\n", 1);
        (void)r;
        bar_open = 0;
    }
    sigaction(sig, sig == SIGINT ? &old_int : &old_term, NULL);
    raise(sig); /* blocked until the handler returns, then delivered with the old action */
}

static int install(int sig, struct sigaction *old)
{
    struct sigaction sa;
    if (sigaction(sig, NULL, old) != 0 || old->sa_handler == SIG_IGN)
        return 0; /* e.g. a background job's SIGINT: leave it ignored */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    return sigaction(sig, &sa, NULL) == 0;
}

void cli_progress_start(cli_progress *p, uint64_t start_step, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO);
    p->total = total;
    p->start_step = start_step;
    p->last_line_step = start_step;
    p->t0 = cli_now();
    bar_open = 0;
    if (p->tty)
        p->handlers = install(SIGINT, &old_int) | install(SIGTERM, &old_term) << 1;
}

/* Columns of the terminal on stderr: its size, else $COLUMNS, else 80. */
static int term_width(void)
{
#ifdef TIOCGWINSZ
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
#endif
    const char *c = getenv("COLUMNS");
    char *end;
    long v = c && *c ? strtol(c, &end, 10) : 0;
    return v > 0 && v < 10000 && *end == '\0' ? (int)v : 80;
}

void cli_progress_format(char *buf, size_t size, int width, uint64_t step, uint64_t total,
                         double rate, const char *eta, double loss, const char *err)
{
    /* fields in the order shown; they are dropped, least important first, until the line fits
     * in width - 1 columns (the last column would wrap on some terminals) */
    enum { BAR, PCT, COUNT, RATE, ETA, LOSS, ERR, NF };
    static const int drop_order[] = {RATE, BAR, PCT, ETA, ERR, LOSS};
    char f[NF][64];
    int on[NF];
    double frac = total ? (double)step / (double)total : 1.0;
    /* the layout is decided on the fields' usual widths (or more when they are wider), so that
     * the fields shown and the bar's width hold still from one redraw to the next */
    static const int usual[NF] = {0, 4, 0, 12, 10, 14, 10}; /* "1000 steps/s", "loss 5.454e-05" */
    char digits[32];
    int count_width = snprintf(digits, sizeof digits, "%llu", (unsigned long long)total);
    f[BAR][0] = '\0';
    snprintf(f[PCT], sizeof f[PCT], "%3.0f%%", 100.0 * frac);
    snprintf(f[COUNT], sizeof f[COUNT], "%*llu/%llu", count_width, (unsigned long long)step,
             (unsigned long long)total);
    snprintf(f[RATE], sizeof f[RATE], "%.0f steps/s", rate);
    snprintf(f[ETA], sizeof f[ETA], "ETA %s", eta);
    snprintf(f[LOSS], sizeof f[LOSS], "loss %.4g", loss);
    snprintf(f[ERR], sizeof f[ERR], "err %s", err);
    for (int i = 0; i < NF; i++)
        on[i] = 1;
    int room = width - 1, bar_width = 0;
    for (size_t d = 0;; d++) {
        int len = 0, n = 0;
        for (int i = 0; i < NF; i++)
            if (on[i] && i != BAR) {
                int w = (int)strlen(f[i]);
                len += (n ? (i == COUNT && on[PCT] ? 1 : 2) : 0) + (w > usual[i] ? w : usual[i]);
                n++;
            }
        /* the bar takes what is left, from 10 to 30 columns: "[...] " */
        bar_width = on[BAR] ? room - len - 3 : 0;
        if (bar_width > 30)
            bar_width = 30;
        if (on[BAR] ? bar_width >= 10 : len <= room)
            break;
        if (d == sizeof drop_order / sizeof drop_order[0])
            break; /* the count alone does not fit: cut below */
        on[drop_order[d]] = 0;
    }
    if (on[BAR]) {
        int filled = (int)(bar_width * frac);
        f[BAR][0] = '[';
        for (int i = 0; i < bar_width; i++)
            f[BAR][1 + i] = i < filled ? '=' : (i == filled ? '>' : ' ');
        f[BAR][1 + bar_width] = ']';
        f[BAR][2 + bar_width] = '\0';
    }
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0, prev = -1; i < NF && at + 1 < size; i++) {
        if (!on[i])
            continue;
        const char *sep = prev < 0 ? "" : (prev == BAR || (prev == PCT && i == COUNT)) ? " " : "  ";
        int w = snprintf(buf + at, size - at, "%s%s", sep, f[i]);
        at = w < 0 ? at : at + (size_t)w < size ? at + (size_t)w : size - 1;
        prev = i;
    }
    if (room < 0)
        room = 0;
    if (strlen(buf) > (size_t)room)
        buf[room] = '\0';
}

void cli_progress_update(cli_progress *p, uint64_t step, double loss, double err, int force)
{
    double now = cli_now();
    double elapsed = now - p->t0;
    double rate = step > p->start_step && elapsed > 0 ? (double)(step - p->start_step) / elapsed : 0;
    double eta = rate > 0 ? (double)(p->total - step) / rate : -1;
    char eta_s[32], el_s[32], err_s[32] = "-"; /* no evaluation yet: "-" rather than "nan" */
    fmt_duration(eta_s, sizeof eta_s, eta);
    fmt_duration(el_s, sizeof el_s, elapsed);
    if (err == err)
        snprintf(err_s, sizeof err_s, "%.*g", p->tty ? 4 : 6, err);
    if (p->tty) {
        if (!force && now - p->last_draw < 0.2)
            return;
        p->last_draw = now;
        char line[512];
        cli_progress_format(line, sizeof line, term_width(), step, p->total, rate, eta_s, loss,
                            err_s);
        bar_open = 1;
        /* redrawn in place; ESC [K clears what a longer line before left behind */
        fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
    } else {
        uint64_t every = p->total / 20 ? p->total / 20 : 1;
        if (!force && step - p->last_line_step < every)
            return;
        p->last_line_step = step;
        fprintf(stderr, "step %llu/%llu  %.0f steps/s  elapsed %s  ETA %s  loss %.6g  error %s\n",
                (unsigned long long)step, (unsigned long long)p->total, rate, el_s, eta_s, loss,
                err_s);
    }
}

void cli_progress_break(void)
{
    if (bar_open) { /* only ever set when drawing on a terminal */
        fputc('\n', stderr);
        fflush(stderr);
        bar_open = 0;
    }
}

void cli_progress_end(cli_progress *p)
{
    cli_progress_break();
    if (p->handlers & 1)
        sigaction(SIGINT, &old_int, NULL);
    if (p->handlers & 2)
        sigaction(SIGTERM, &old_term, NULL);
    p->handlers = 0;
}

FILE *cli_csv_open(const char *path, int append, const char *header)
{
    FILE *f = fopen(path, append ? "a" : "w");
    if (f == NULL)
        return NULL;
    /* where an append stream starts is implementation-defined: look at the end */
    if (!append || (fseek(f, 0, SEEK_END) == 0 && ftell(f) == 0))
        fprintf(f, "%s\n", header);
    if (fflush(f) != 0 || ferror(f)) { /* a full disk shows here, not at fopen */
        int e = errno;
        fclose(f);
        errno = e;
        return NULL;
    }
    return f;
}

int cli_csv_trim(const char *path, uint64_t last_step)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISREG(st.st_mode))
        return 0; /* a device or a pipe (/dev/null): nothing to cut */
    /* cut in place at the first row past last_step (rows are in step order): the name keeps
     * pointing where it did (a symbolic link stays one), and so do the owner and mode */
    FILE *f = fopen(path, "r+");
    if (f == NULL)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    off_t at = 0, cut = -1;
    while ((n = getline(&line, &cap, f)) > 0) {
        /* rows start with their step; the header (and anything else) is kept */
        if (isdigit((unsigned char)line[0]) && strtoull(line, NULL, 10) > last_step) {
            cut = at;
            break;
        }
        at += (off_t)n;
    }
    int rc = ferror(f) ? -1 : 0;
    free(line);
    if (rc == 0 && cut >= 0 && (fflush(f) != 0 || ftruncate(fileno(f), cut) != 0))
        rc = -1;
    int e = errno;
    if (fclose(f) != 0 && rc == 0)
        return -1;
    errno = e;
    return rc;
}

int cli_stdout_status(const char *prog, const char *what, int status)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    fprintf(stderr, "%s: cannot write %s to standard output: %s\n", prog, what, strerror(errno));
    return status;
}

double cli_log_last_seconds(const char *path)
{
    FILE *in = fopen(path, "r");
    if (in == NULL)
        return 0;
    double seconds = 0;
    char line[4096];
    while (fgets(line, sizeof line, in) != NULL) {
        if (!isdigit((unsigned char)line[0]))
            continue; /* the header */
        const char *last = strrchr(line, ',');
        char *end;
        double v = last ? strtod(last + 1, &end) : NAN;
        if (last && end != last + 1 && isfinite(v) && v >= 0)
            seconds = v;
    }
    fclose(in);
    return seconds;
}

FILE *cli_log_open(const char *path, int append)
{
    return cli_csv_open(path, append, "step,mu,lr,train_loss,eval_error,seconds");
}

int cli_log_row(FILE *f, uint64_t step, double mu, double lr, double loss, double err,
                double seconds)
{
    if (f == NULL)
        return 0;
    fprintf(f, "%llu,%.6g,%.6g,%.9g,%.9g,%.3f\n", (unsigned long long)step, mu, lr, loss, err,
            seconds);
    return fflush(f) != 0 || ferror(f) ? -1 : 0;
}

/* s in a gnuplot single-quoted string: a quote is written twice. */
static void gp_quoted(FILE *g, const char *s)
{
    fputc('\'', g);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', g);
        fputc(*s, g);
    }
    fputc('\'', g);
}

/* Whether the CSV at path has a row below its header. */
static int csv_has_rows(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[256];
    int rows = 0;
    while (!rows && fgets(line, sizeof line, f) != NULL)
        rows = isdigit((unsigned char)line[0]);
    fclose(f);
    return rows;
}

int cli_plot(const char *csv, const char *png, const char *title, const char *err_label)
{
    if (!cli_have_gnuplot()) {
        fprintf(stderr, "plot: gnuplot is not installed (apt-get install gnuplot-nox); the log %s "
                        "has the data\n", csv);
        return CLI_PLOT_NO_GNUPLOT;
    }
    if (!csv_has_rows(csv)) {
        fprintf(stderr, "plot: %s has no rows yet; no plot written\n", csv);
        return -1;
    }
    /* gnuplot's own chatter (warnings about flat ranges and the like) goes to a file, shown
     * only when it fails */
    char errpath[] = "/tmp/mominit-gnuplot-XXXXXX";
    int fd = mkstemp(errpath);
    if (fd < 0) {
        fprintf(stderr, "plot: cannot create a temporary file: %s\n", strerror(errno));
        return -1;
    }
    close(fd);
    char cmd[64];
    /* stdout to nowhere: gnuplot draws there when it cannot open the output file, and the
     * trainers' stdout carries only their summary */
    snprintf(cmd, sizeof cmd, "gnuplot >/dev/null 2>%s", errpath);
    /* a gnuplot that dies before reading its script must not kill us with SIGPIPE */
    struct sigaction ign, old_pipe;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    int pipe_saved = sigaction(SIGPIPE, &ign, &old_pipe) == 0;
    FILE *g = popen(cmd, "w");
    if (g == NULL) {
        fprintf(stderr, "plot: cannot start gnuplot: %s\n", strerror(errno));
        if (pipe_saved)
            sigaction(SIGPIPE, &old_pipe, NULL);
        remove(errpath);
        return -1;
    }
    fputs("set terminal pngcairo size 900,520 noenhanced\nset output ", g);
    gp_quoted(g, png);
    fputs("\nset datafile separator ','\nset title ", g);
    gp_quoted(g, title);
    fputs("\nset xlabel 'update'\nset ylabel 'training loss'\nset y2label ", g);
    gp_quoted(g, err_label);
    fputs("\nset logscale y\nset logscale y2\nset ytics nomirror\nset y2tics\n"
          "set key top right\nset grid\nplot ", g);
    gp_quoted(g, csv);
    fputs(" every ::1 using 1:4 with lines lw 2 title 'training loss', '' every ::1 using 1:5 "
          "axes x1y2 with linespoints pt 7 ps 0.5 title ", g);
    gp_quoted(g, err_label);
    fputc('\n', g);
    int rc = pclose(g);
    if (pipe_saved)
        sigaction(SIGPIPE, &old_pipe, NULL);
    struct stat st;
    if (rc == 0 && (stat(png, &st) != 0 || (S_ISREG(st.st_mode) && st.st_size == 0))) {
        fprintf(stderr, "plot: gnuplot wrote no image to %s\n", png);
        remove(errpath);
        return -1;
    }
    if (rc != 0) {
        char first[512] = "";
        FILE *e = fopen(errpath, "r");
        if (e != NULL) {
            /* the last line gnuplot wrote names the problem */
            char line[512];
            while (fgets(line, sizeof line, e) != NULL)
                if (strspn(line, " \t\r\n^") != strlen(line))
                    snprintf(first, sizeof first, "%s", line);
            fclose(e);
        }
        first[strcspn(first, "\r\n")] = '\0';
        if (rc > 0 && WIFEXITED(rc))
            fprintf(stderr, "plot: gnuplot failed to write %s (exit status %d)%s%s\n", png,
                    WEXITSTATUS(rc), *first ? ": " : "", first);
        else
            fprintf(stderr, "plot: gnuplot failed to write %s%s%s\n", png, *first ? ": " : "",
                    first);
        remove(errpath);
        return -1;
    }
    remove(errpath);
    return 0;
}

uint64_t cli_hash_floats(uint64_t h, const float *x, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint32_t b;
        memcpy(&b, x + k, sizeof b);
        h = (h ^ b) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}
