#define _POSIX_C_SOURCE 200809L
/* Tests of the example trainers' data: task generators, CURVES, the IDX reader; and of the trainer
 * state their checkpoints hold (examples/train.h). Run as
 *     test_examples --strip-user-data IN OUT
 * it writes OUT, the checkpoint IN without its user data (as an older trainer wrote it), for
 * tests/check-cli.sh. */
#include "testutil.h"
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../examples/cli.h"
#include "../examples/data.h"
#include "../examples/tasks.h"
#include "../examples/train.h"

static mom_rng *new_rng(uint64_t seed)
{
    mom_rng *r;
    assert_int_equal(mom_rng_create(&r, seed, 0, NULL), MOM_OK);
    return r;
}

#define IN(b, t, s, i, nin) (b).inputs[((t) * (b).n + (s)) * (nin) + (i)]
#define TG(b, t, s, j, nout) (b).targets[((t) * (b).n + (s)) * (nout) + (j)]

static void test_two_value_tasks(void **state)
{
    (void)state;
    const task_kind kinds[] = {TASK_ADDITION, TASK_MULTIPLICATION, TASK_XOR};
    for (size_t k = 0; k < 3; k++) {
        task t;
        assert_int_equal(task_init(&t, kinds[k], 80, TARGET_MEAN, 0), 0);
        assert_int_equal(t.n_in, 2);
        assert_int_equal(t.n_out, 1);
        assert_int_equal(t.max_steps, 87); /* T' in [80, 88) */
        task_batch b;
        assert_int_equal(task_batch_alloc(&b, &t, 500), 0);
        mom_rng *r = new_rng(3 + k);
        task_generate(&t, &b, r);
        int seen_len[8] = {0};
        for (size_t s = 0; s < b.n; s++) {
            size_t len = b.lengths[s];
            assert_true(len >= 80 && len < 88);
            seen_len[len - 80]++;
            size_t marks[2], m = 0;
            for (size_t tt = 0; tt < b.steps; tt++) {
                float v = IN(b, tt, s, 0, 2), mk = IN(b, tt, s, 1, 2);
                if (tt >= len) {
                    assert_true(v == 0.0f && mk == 0.0f); /* nothing past the end */
                    continue;
                }
                if (kinds[k] == TASK_XOR)
                    assert_true(v == 0.0f || v == 1.0f);
                else
                    assert_true(v >= 0.0f && v < 1.0f);
                if (mk == 1.0f) {
                    assert_true(m < 2);
                    marks[m++] = tt;
                }
                /* target and weights only at the last step */
                float w = b.loss_mask[tt * b.n + s];
                assert_true(w == (tt == len - 1 ? 1.0f : 0.0f));
                assert_true(b.eval_mask[tt * b.n + s] == w);
            }
            assert_int_equal(m, 2);
            /* first marker in [0, 0.1 T'), second in [0.1 T', 0.5 T') */
            assert_true(marks[0] * 10 < len);
            assert_true(marks[1] * 10 >= len && marks[1] * 2 < len);
            double x1 = IN(b, marks[0], s, 0, 2), x2 = IN(b, marks[1], s, 0, 2);
            double want = kinds[k] == TASK_ADDITION ? (x1 + x2) / 2
                          : kinds[k] == TASK_MULTIPLICATION ? x1 * x2
                                                            : (double)((int)x1 ^ (int)x2);
            assert_true(fabs(TG(b, len - 1, s, 0, 1) - want) < 1e-6);
        }
        for (int i = 0; i < 8; i++)
            assert_true(seen_len[i] > 20); /* every length occurs */
        mom_rng_destroy(r);
        task_batch_free(&b);
    }
}

static void test_addition_options(void **state)
{
    (void)state;
    task t;
    task_batch b;
    assert_int_equal(task_init(&t, TASK_ADDITION, 30, TARGET_SUM, 1), 0);
    assert_true(t.target_mean == 1.0 && t.input_mean == 0.5);
    assert_int_equal(task_batch_alloc(&b, &t, 50), 0);
    mom_rng *r = new_rng(9);
    task_generate(&t, &b, r);
    for (size_t s = 0; s < b.n; s++) {
        size_t len = b.lengths[s];
        double sum = 0;
        for (size_t tt = 0; tt < len; tt++) {
            float v = IN(b, tt, s, 0, 2);
            assert_true(v >= -0.5f && v < 0.5f); /* centered */
            if (IN(b, tt, s, 1, 2) == 1.0f)
                sum += v + 0.5;
        }
        assert_true(fabs(TG(b, len - 1, s, 0, 1) - (sum - 1.0)) < 1e-5);
    }
    mom_rng_destroy(r);
    task_batch_free(&b);
    assert_int_equal(task_init(&t, TASK_ADDITION, 5, TARGET_MEAN, 0), -1); /* T too small */
}

/* task_min_T is what task_init takes, and the messages and --help say */
static void test_min_T(void **state)
{
    (void)state;
    const size_t want[] = {10, 10, 10, 10, 10, 2, 1, 1};
    task t;
    for (int k = TASK_ADDITION; k <= TASK_MEM20; k++) {
        size_t m = task_min_T((task_kind)k);
        assert_int_equal(m, want[k]);
        assert_int_equal(task_init(&t, (task_kind)k, m, TARGET_MEAN, 0), 0);
        if (m > 1)
            assert_int_equal(task_init(&t, (task_kind)k, m - 1, TARGET_MEAN, 0), -1);
    }
}

/* The terminal bar's line fits width - 1 columns; the least important fields go first: the
 * rate, the bar, the percentage, the ETA, the error, the loss; the count stays. */
static void test_progress_format(void **state)
{
    (void)state;
    char buf[512];
    for (int width = 0; width <= 200; width++) {
        cli_progress_format(buf, sizeof buf, width, 1234, 50000, 87.0, "3h02m", 0.0123456,
                            "0.8512");
        assert_true((int)strlen(buf) <= (width > 1 ? width - 1 : 0));
        if (width > 11) /* " 1234/50000" */
            assert_non_null(strstr(buf, "1234/50000"));
    }
    cli_progress_format(buf, sizeof buf, 200, 1234, 50000, 87.0, "3h02m", 0.0123456, "0.8512");
    assert_string_equal(buf, "[>                             ]   2%  1234/50000  87 steps/s  "
                             "ETA 3h02m  loss 0.01235  err 0.8512");
    /* the bar takes what the other fields leave, at their usual widths (a loss of 14 columns,
     * "loss 5.454e-05", ...), so that it does not change width with the loss's digits */
    cli_progress_format(buf, sizeof buf, 100, 25000, 50000, 87.0, "3h02m", 0.0123456, "0.8512");
    assert_string_equal(buf, "[=============>            ]  50% 25000/50000  87 steps/s  "
                             "ETA 3h02m  loss 0.01235  err 0.8512");
    cli_progress_format(buf, sizeof buf, 80, 1234, 50000, 87.0, "3h02m", 0.0123456, "0.8512");
    assert_string_equal(buf, "[>                   ]   2%  1234/50000  ETA 3h02m  loss 0.01235  "
                             "err 0.8512"); /* the rate goes first */
    cli_progress_format(buf, sizeof buf, 60, 1234, 50000, 87.0, "3h02m", 0.0123456, "0.8512");
    assert_string_equal(buf, "  2%  1234/50000  ETA 3h02m  loss 0.01235  err 0.8512");
    cli_progress_format(buf, sizeof buf, 50, 1234, 50000, 87.0, "3h02m", 0.0123456, "0.8512");
    assert_string_equal(buf, " 1234/50000  loss 0.01235  err 0.8512");
    cli_progress_format(buf, sizeof buf, 40, 1234, 50000, 87.0, "3h02m", 0.0123456, "0.8512");
    assert_string_equal(buf, " 1234/50000  loss 0.01235  err 0.8512");
    cli_progress_format(buf, sizeof buf, 30, 1234, 50000, 87.0, "3h02m", 0.0123456, "0.8512");
    assert_string_equal(buf, " 1234/50000  loss 0.01235");
    cli_progress_format(buf, sizeof buf, 20, 1234, 50000, 87.0, "3h02m", 0.0123456, "0.8512");
    assert_string_equal(buf, " 1234/50000");
    cli_progress_format(buf, sizeof buf, 8, 1234, 50000, 87.0, "3h02m", 0.0123456, "0.8512");
    assert_string_equal(buf, " 1234/5"); /* cut */
}

static void test_order_tasks(void **state)
{
    (void)state;
    for (int three = 0; three < 2; three++) {
        task t;
        assert_int_equal(task_init(&t, three ? TASK_ORDER3 : TASK_ORDER2, 100, 0, 0), 0);
        assert_int_equal(t.n_out, three ? 8u : 4u);
        task_batch b;
        assert_int_equal(task_batch_alloc(&b, &t, 200), 0);
        mom_rng *r = new_rng(21);
        task_generate(&t, &b, r);
        int classes[8] = {0};
        for (size_t s = 0; s < b.n; s++) {
            size_t len = b.lengths[s], cls = 0, nrel = 0;
            for (size_t tt = 0; tt < len; tt++) {
                float sum = 0;
                for (size_t i = 0; i < 6; i++)
                    sum += IN(b, tt, s, i, 6);
                assert_true(sum == 1.0f); /* one-hot */
                if (IN(b, tt, s, 4, 6) == 1.0f || IN(b, tt, s, 5, 6) == 1.0f) {
                    double frac = (double)tt / len;
                    if (three)
                        assert_true((frac >= 0.1 && frac < 0.2) || (frac >= 0.3 && frac < 0.4) ||
                                    (frac >= 0.6 && frac < 0.7));
                    else
                        assert_true((frac >= 0.1 && frac < 0.2) || (frac >= 0.5 && frac < 0.6));
                    cls = cls * 2 + (IN(b, tt, s, 5, 6) == 1.0f);
                    nrel++;
                }
            }
            assert_int_equal(nrel, three ? 3 : 2);
            assert_true(TG(b, len - 1, s, cls, t.n_out) == 1.0f);
            classes[cls]++;
        }
        for (size_t c = 0; c < t.n_out; c++)
            assert_true(classes[c] > 0);
        mom_rng_destroy(r);
        task_batch_free(&b);
    }
}

static void test_permutation_task(void **state)
{
    (void)state;
    task t;
    assert_int_equal(task_init(&t, TASK_PERMUTATION, 20, 0, 0), 0);
    task_batch b;
    assert_int_equal(task_batch_alloc(&b, &t, 40), 0);
    mom_rng *r = new_rng(5);
    task_generate(&t, &b, r);
    for (size_t s = 0; s < b.n; s++) {
        size_t len = b.lengths[s], first = 100;
        for (size_t i = 0; i < 100; i++)
            if (IN(b, 0, s, i, 100) == 1.0f)
                first = i;
        assert_true(first <= 1);
        for (size_t tt = 1; tt < len; tt++) {
            size_t sym = 100;
            for (size_t i = 0; i < 100; i++)
                if (IN(b, tt, s, i, 100) == 1.0f)
                    sym = i;
            assert_true(sym >= 2 && sym < 100);
            assert_true(TG(b, tt - 1, s, sym, 100) == 1.0f); /* predict the next symbol */
            assert_true(b.loss_mask[(tt - 1) * b.n + s] == 1.0f);
            assert_true(b.eval_mask[(tt - 1) * b.n + s] == 0.0f);
        }
        assert_true(TG(b, len - 1, s, first, 100) == 1.0f); /* the last one recalls the first */
        assert_true(b.eval_mask[(len - 1) * b.n + s] == 1.0f);
    }
    mom_rng_destroy(r);
    task_batch_free(&b);
}

static void test_memorization_tasks(void **state)
{
    (void)state;
    const task_kind kinds[] = {TASK_MEM5, TASK_MEM20};
    const size_t alpha[] = {2, 5}, count[] = {5, 10};
    for (int k = 0; k < 2; k++) {
        task t;
        size_t T = 30, a = alpha[k], c = count[k];
        assert_int_equal(task_init(&t, kinds[k], T, 0, 0), 0);
        assert_int_equal(t.n_in, a + 2);
        assert_int_equal(t.n_out, a + 1);
        assert_int_equal(t.max_steps, T + 2 * c);
        task_batch b;
        assert_int_equal(task_batch_alloc(&b, &t, 30), 0);
        mom_rng *r = new_rng(8);
        task_generate(&t, &b, r);
        for (size_t s = 0; s < b.n; s++) {
            assert_int_equal(b.lengths[s], T + 2 * c);
            for (size_t tt = 0; tt < T + 2 * c; tt++) {
                size_t in = 99, out = 99;
                for (size_t i = 0; i < a + 2; i++)
                    if (IN(b, tt, s, i, a + 2) == 1.0f)
                        in = i;
                for (size_t j = 0; j < a + 1; j++)
                    if (TG(b, tt, s, j, a + 1) == 1.0f)
                        out = j;
                if (tt < c)
                    assert_true(in < a); /* data symbol */
                else if (tt == c + T - 1)
                    assert_int_equal(in, a + 1); /* go */
                else
                    assert_int_equal(in, a); /* blank */
                if (tt >= c + T) {
                    size_t shown = 99;
                    for (size_t i = 0; i < a; i++)
                        if (IN(b, tt - c - T, s, i, a + 2) == 1.0f)
                            shown = i;
                    assert_int_equal(out, shown); /* recalled in order */
                    assert_true(b.eval_mask[tt * b.n + s] == 1.0f);
                } else {
                    assert_int_equal(out, a); /* blank target */
                    assert_true(b.eval_mask[tt * b.n + s] == 0.0f);
                }
                assert_true(b.loss_mask[tt * b.n + s] == 1.0f);
            }
        }
        /* --loss-steps recall: the same sequences, the loss on the recall steps only */
        t.recall_loss = 1;
        mom_rng_destroy(r);
        r = new_rng(8);
        task_batch b2;
        assert_int_equal(task_batch_alloc(&b2, &t, 30), 0);
        task_generate(&t, &b2, r);
        size_t cells = b.n * b.steps;
        assert_memory_equal(b2.inputs, b.inputs, cells * t.n_in * sizeof(float));
        assert_memory_equal(b2.eval_mask, b.eval_mask, cells * sizeof(float));
        assert_memory_equal(b2.loss_mask, b.eval_mask, cells * sizeof(float));
        /* wrong symbols: outputs equal to the targets recall everything; an output row with a
         * NaN recalls nothing, even where argmax would have landed on the target's symbol 0 */
        float *y = malloc(cells * t.n_out * sizeof *y);
        assert_non_null(y);
        memcpy(y, b.targets, cells * t.n_out * sizeof *y);
        assert_true(task_symbol_errors(&t, &b, y) == 0.0);
        for (size_t i = 0; i < cells * t.n_out; i++)
            y[i] = NAN;
        assert_true(task_symbol_errors(&t, &b, y) == (double)(b.n * c));
        free(y);
        task_batch_free(&b2);
        mom_rng_destroy(r);
        task_batch_free(&b);
    }
}

static void test_generators_deterministic(void **state)
{
    (void)state;
    task t;
    assert_int_equal(task_init(&t, TASK_ADDITION, 40, 0, 0), 0);
    task_batch a, b;
    assert_int_equal(task_batch_alloc(&a, &t, 20), 0);
    assert_int_equal(task_batch_alloc(&b, &t, 20), 0);
    mom_rng *r1 = new_rng(77), *r2 = new_rng(77);
    task_generate(&t, &a, r1);
    task_generate(&t, &b, r2);
    assert_memory_equal(a.inputs, b.inputs, 20 * t.max_steps * 2 * sizeof(float));
    assert_memory_equal(a.lengths, b.lengths, 20 * sizeof(size_t));
    mom_rng_destroy(r1);
    mom_rng_destroy(r2);
    task_batch_free(&a);
    task_batch_free(&b);
    assert_int_equal(task_parse("mem20"), TASK_MEM20);
    assert_int_equal(task_parse("nope"), -1);
    assert_string_equal(task_name(TASK_ORDER3), "temporal-order-3");
}

static void test_curves(void **state)
{
    (void)state;
    mom_rng *r = new_rng(1);
    dataset s, s2;
    assert_int_equal(curves_generate(&s, 200, r), 0);
    mom_rng_reseed(r, 1, 0);
    assert_int_equal(curves_generate(&s2, 200, r), 0);
    assert_memory_equal(s.x, s2.x, 200 * 784 * sizeof(float));
    assert_int_equal(s.d, 784);
    double mean_on = 0;
    for (size_t i = 0; i < s.n; i++) {
        size_t on = 0, full = 0;
        for (size_t j = 0; j < s.d; j++) {
            float v = s.x[i * s.d + j];
            assert_true(v >= 0.0f && v <= 1.0f);
            on += v > 0.0f;
            full += v == 1.0f;
        }
        assert_true(on >= 10 && on < 400); /* a stroke, not a blob */
        assert_true(full >= 3);            /* its core is fully on */
        mean_on += on;
    }
    mean_on /= s.n;
    assert_true(mean_on > 30 && mean_on < 250);
    /* images differ from each other */
    assert_memory_not_equal(s.x, s.x + s.d, s.d * sizeof(float));
    dataset_free(&s);
    dataset_free(&s2);
    mom_rng_destroy(r);
}

static void write_file(const char *path, const unsigned char *data, size_t len, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
    }
}

static void test_idx_reader(void **state)
{
    (void)state;
    char path[] = "/tmp/mominit-idx-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unsigned char good[16 + 3 * 2 * 2] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2};
    for (int i = 0; i < 12; i++)
        good[16 + i] = (unsigned char)(i * 20);
    dataset s;
    char err[512];
    for (int gz = 0; gz < 2; gz++) {
        write_file(path, good, sizeof good, gz);
        assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), 0);
        assert_int_equal(s.n, 3);
        assert_int_equal(s.d, 4);
        assert_true(fabsf(s.x[5] - 100.0f / 255.0f) < 1e-7f);
        dataset_free(&s);
        assert_int_equal(idx_read_images(&s, path, 2, err, sizeof err), 0); /* first 2 only */
        assert_int_equal(s.n, 2);
        dataset_free(&s);
    }
    /* truncated data */
    write_file(path, good, sizeof good - 1, 1);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "truncated"));
    assert_non_null(strstr(err, path));
    assert_null(s.x);
    /* trailing data */
    unsigned char longer[sizeof good + 1];
    memcpy(longer, good, sizeof good);
    longer[sizeof good] = 7;
    write_file(path, longer, sizeof longer, 0);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "trailing"));
    /* wrong magic (a label file) */
    unsigned char labels[] = {0, 0, 8, 1, 0, 0, 0, 1, 5};
    write_file(path, labels, sizeof labels, 0);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "magic"));
    /* absurd dimensions are refused before any allocation from them */
    unsigned char absurd[16] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x10, 0, 0, 0, 0x10, 0};
    write_file(path, absurd, sizeof absurd, 0);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "implausible"));
    /* a plain file far shorter than its header announces: refused before allocating for it */
    unsigned char huge[16 + 100] = {0, 0, 8, 3, 0x01, 0x31, 0x2d, 0x00, 0, 0, 0, 28, 0, 0, 0, 28};
    write_file(path, huge, sizeof huge, 0);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "truncated"));
    assert_non_null(strstr(err, "20000000 images"));
    /* the same header compressed: the file's size says nothing, so room grows with the data and
     * the reader says the data is short, not that 63 GB are out of reach */
    write_file(path, huge, sizeof huge, 1);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "truncated"));
    assert_non_null(strstr(err, "the data holds 0 whole ones"));
    assert_null(s.x);
    /* 1000 images of 28 x 28 (3 MB as floats): the room grows past its first 1 MB */
    {
        const size_t n = 1000, d = 784;
        unsigned char *big = malloc(16 + n * d);
        assert_non_null(big);
        const unsigned char head[16] = {0, 0, 8, 3, 0, 0, n >> 8, n & 0xff, 0, 0, 0, 28, 0, 0, 0, 28};
        memcpy(big, head, 16);
        for (size_t i = 0; i < n * d; i++)
            big[16 + i] = (unsigned char)(i * 7 + i / d);
        for (int gz = 0; gz < 2; gz++) {
            write_file(path, big, 16 + n * d, gz);
            assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), 0);
            assert_int_equal(s.n, n);
            for (size_t i = 0; i < n * d; i += 997)
                assert_true(s.x[i] == (float)big[16 + i] / 255.0f);
            assert_true(s.x[n * d - 1] == (float)big[16 + n * d - 1] / 255.0f);
            dataset_free(&s);
        }
        free(big);
    }
    /* damaged gzip streams: the trailer cut off, then a wrong CRC in it */
    write_file(path, good, sizeof good, 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 8), 0);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_null(strstr(strstr(err, path) + strlen(path), path));
    assert_null(s.x);
    write_file(path, good, sizeof good, 1);
    {
        FILE *f = fopen(path, "r+b");
        assert_non_null(f);
        assert_int_equal(fseek(f, -8, SEEK_END), 0);
        int c = fgetc(f);
        assert_int_equal(fseek(f, -8, SEEK_END), 0);
        fputc(c ^ 0x5a, f);
        fclose(f);
    }
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    /* named once: zlib's own message starts with the path too */
    assert_null(strstr(strstr(err, path) + strlen(path), path));
    assert_null(s.x);
    /* a directory */
    assert_int_equal(idx_read_images(&s, "/tmp", 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
    /* short header, empty file, missing file */
    write_file(path, good, 10, 0);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    write_file(path, good, 0, 0);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    unlink(path);
    assert_int_equal(idx_read_images(&s, path, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
}

/* ---- the trainer state in checkpoints (examples/train.c) --------------------------------------- */

static const float some_data[6] = {0.0f, 0.5f, 1.0f, 0.25f, -0.0f, 3.0f};

/* A configuration as a trainer builds it: lr, a path with odd bytes, data of its own. */
static void sample_conf(train_conf *c, const char *prog, double lr, const char *label,
                        const float *data, int lr_checked)
{
    train_conf_init(c, prog);
    train_conf_str(c, "--task", 1, "addition");
    train_conf_dbl(c, "--lr", lr_checked, lr);
    train_conf_u64(c, "--seed", 1, UINT64_MAX);
    train_conf_data(c, "--data", label, 2, 3, data);
    train_conf_u64(c, "--steps", 0, 25);
    train_conf_hint(c, "steps hint");
}

static void test_state_roundtrip(void **state)
{
    (void)state;
    train_conf c, c2;
    const char *odd = "idx:/a b/100%\nx\ty=z";
    sample_conf(&c, "mominit-rnn", 0.0003, odd, some_data, 1);
    train_state s = {1, 25, 0.1 + 0.2, 5, NAN, 0.86, 1.0 / 3.0, 0, 0}, back;
    size_t len = 0;
    char *text = train_state_encode(&c, &s, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    const char *head = "mominit-rnn trainer state 1\n--task=addition\n--lr=0.0003\n";
    assert_true(strncmp(text, head, strlen(head)) == 0);
    assert_non_null(strstr(text, "--data=2x3:")); /* the fingerprint, then the label escaped */
    assert_non_null(strstr(text, " idx:/a b/100%25%0Ax%09y=z\n"));
    char msg[512] = "";
    assert_int_equal(train_state_check(&c, text, len, &back, msg, sizeof msg), 0);
    assert_true(back.have && back.updates == 25 && back.loss_count == 5);
    assert_true(back.loss_sum == 0.1 + 0.2 && isnan(back.mean_loss) && back.last_err == 0.86 &&
                back.seconds == 1.0 / 3.0); /* exactly */

    /* a checked flag that differs: status 2, the flag and both values named */
    sample_conf(&c2, "mominit-rnn", 0.001, odd, some_data, 1);
    assert_int_equal(train_state_check(&c2, text, len, &back, msg, sizeof msg), 2);
    assert_string_equal(msg, "--lr is 0.0003 in the checkpoint, 0.001 on the command line "
                             "(resume with the flags of the run that wrote it)");
    train_conf_free(&c2);
    /* one this run does not check (an ignored flag), or recorded only (--steps): accepted */
    train_conf_init(&c2, "mominit-rnn");
    train_conf_str(&c2, "--task", 1, "addition");
    train_conf_dbl(&c2, "--lr", 0, 0.001);
    train_conf_u64(&c2, "--seed", 1, UINT64_MAX);
    train_conf_data(&c2, "--data", odd, 2, 3, some_data);
    train_conf_u64(&c2, "--steps", 0, 40);
    assert_int_equal(train_state_check(&c2, text, len, &back, msg, sizeof msg), 0);
    train_conf_free(&c2);
    /* the same data under another name is the same data; other data is not */
    sample_conf(&c2, "mominit-rnn", 0.0003, "idx:/moved", some_data, 1);
    assert_int_equal(train_state_check(&c2, text, len, &back, msg, sizeof msg), 0);
    train_conf_free(&c2);
    float other[6];
    memcpy(other, some_data, sizeof other);
    other[4] = 0.0f; /* +0 for -0: other bits */
    sample_conf(&c2, "mominit-rnn", 0.0003, "idx:/moved", other, 1);
    assert_int_equal(train_state_check(&c2, text, len, &back, msg, sizeof msg), 2);
    /* the stored value is shown escaped: no byte of a checkpoint reaches the terminal raw */
    assert_non_null(strstr(msg, "--data is idx:/a b/100%25%0Ax%09y=z in the checkpoint, idx:/moved on"));
    train_conf_free(&c2);
    sample_conf(&c2, "mominit-rnn", 0.0003, odd, other, 1);
    assert_int_equal(train_state_check(&c2, text, len, &back, msg, sizeof msg), 2);
    assert_non_null(strstr(msg, "other values than in the checkpoint"));
    train_conf_free(&c2);
    /* another trainer's state: status 1 */
    sample_conf(&c2, "mominit-ae", 0.0003, odd, some_data, 1);
    assert_int_equal(train_state_check(&c2, text, len, &back, msg, sizeof msg), 1);
    assert_string_equal(msg, "it was written by mominit-rnn, not mominit-ae");
    train_conf_free(&c2);
    free(text);
    train_conf_free(&c);
}

static void test_state_refused(void **state)
{
    (void)state;
    train_conf c;
    train_conf_init(&c, "mominit-rnn");
    train_conf_u64(&c, "--seed", 1, 1);
    train_state back;
    char msg[512];
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"mominit-rnn trainer state 2\n--seed=1\n", "format version 2; this mominit-rnn reads version 1"},
        {"mominit-ae trainer state 7\n", "written by mominit-ae, not mominit-rnn"},
        {"task=addition seed=7", "not the trainer state of mominit-rnn"},
        {"mominit-rnn trainer state 1", "not the trainer state of mominit-rnn"},
        {"mominit-rnn trainer state 1\n--seed=1", "damaged (no end of line)"},
        {"mominit-rnn trainer state 1\nnonsense\n", "damaged (line 2)"},
        {"mominit-rnn trainer state 1\n--seed=1%4\n", "damaged (value of --seed)"},
        {"mominit-rnn trainer state 1\n--task=x\n", "lacks --seed"},
        {"mominit-rnn trainer state 1\n--seed=1\nupdates=3\n", "damaged (the training loop's"},
        {"mominit-rnn trainer state 1\n--seed=1\nupdates=3\nloss_sum=0x1p-3\nloss_count=4\n"
         "mean_loss=nan\nlast_error=1\nseconds=2\n", "damaged (the training loop's"},
        /* a crafted file: sums and times finite and >= 0, keys once, integers plain, the
         * version plain digits */
        {"mominit-rnn trainer state 1\n--seed=1\nupdates=3\nloss_sum=nan\nloss_count=2\n"
         "mean_loss=nan\nlast_error=1\nseconds=2\n", "damaged (the training loop's"},
        {"mominit-rnn trainer state 1\n--seed=1\nupdates=3\nloss_sum=1\nloss_count=2\n"
         "mean_loss=nan\nlast_error=1\nseconds=-1e300\n", "damaged (the training loop's"},
        {"mominit-rnn trainer state 1\n--seed=1\n--seed=2\n", "damaged (--seed twice)"},
        {"mominit-rnn trainer state -1\n--seed=1\n", "not the trainer state of mominit-rnn"},
        {"mominit-rnn trainer state 1\n--seed=+1\n", "--seed is +1 in the checkpoint, 1 on"},
        {"mominit-rnn trainer state 1\n--seed=%1B[31m\n", "--seed is %1B[31m in the checkpoint"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int rc = train_state_check(&c, cases[k].text, strlen(cases[k].text), &back, msg,
                                   sizeof msg);
        if (strstr(msg, cases[k].want) == NULL)
            fail_msg("case %zu: '%s'", k, msg);
        assert_int_equal(rc, strstr(cases[k].want, " in the checkpoint") ? 2 : 1);
        assert_false(back.have);
    }
    const char good[] = "mominit-rnn trainer state 1\n--seed=1\nupdates=3\nloss_sum=0x1p-3\n"
                        "loss_count=2\nmean_loss=nan\nlast_error=1\nseconds=2\n";
    assert_int_equal(train_state_check(&c, good, strlen(good), &back, msg, sizeof msg), 0);
    assert_true(back.have && back.loss_sum == 0.125 && back.loss_count == 2 && back.seconds == 2);
    /* bytes that are no text */
    assert_int_equal(train_state_check(&c, good, sizeof good, &back, msg, sizeof msg), 1);
    train_conf_free(&c);
}

static void test_num_text(void **state)
{
    (void)state;
    char buf[40];
    const double v[] = {0.0003, 0.1 + 0.2, 1.0 / 3.0, 1e-300, 2e-5, 0.995, 45, -0.0, 5e-324};
    const char *want[] = {"0.0003", "0.30000000000000004", "0.3333333333333333", "1e-300",
                          "2e-05", "0.995", "45", "-0", NULL};
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        train_num_text(buf, sizeof buf, v[k]);
        assert_true(strtod(buf, NULL) == v[k] && signbit(strtod(buf, NULL)) == signbit(v[k]));
        if (want[k])
            assert_string_equal(buf, want[k]);
    }
}

/* test_examples --strip-user-data IN OUT: IN without its user data, as an older trainer wrote
 * it (the same network, optimizer and streams, captured again). */
static int strip_user_data(const char *in, const char *out)
{
    mom_ckpt *ck = NULL, *ck2 = NULL;
    mom_net *net = NULL;
    mom_optim *opt = NULL;
    mom_rng *rngs[8] = {NULL};
    size_t n = 0;
    int rc = mom_ckpt_create(&ck, NULL);
    if (rc == MOM_OK)
        rc = mom_ckpt_load_file(ck, in);
    if (rc == MOM_OK && (n = mom_ckpt_num_rngs(ck)) > 8)
        rc = MOM_E_UNSUPPORTED;
    if (rc == MOM_OK)
        rc = mom_ckpt_restore_new(mom_ckpt_net_kind(ck) ? &net : NULL,
                                  mom_ckpt_optim_kind(ck) ? &opt : NULL, rngs, n, ck);
    if (rc == MOM_OK)
        rc = mom_ckpt_create(&ck2, NULL);
    if (rc == MOM_OK)
        rc = mom_ckpt_capture(ck2, net, opt, (const mom_rng *const *)rngs, n);
    if (rc == MOM_OK)
        rc = mom_ckpt_save_file(ck2, out);
    if (rc != MOM_OK)
        fprintf(stderr, "test_examples --strip-user-data: %s: %s\n", mom_strerror(rc),
                ck2 && *mom_ckpt_errmsg(ck2) ? mom_ckpt_errmsg(ck2) : mom_ckpt_errmsg(ck));
    for (size_t k = 0; k < n; k++)
        mom_rng_destroy(rngs[k]);
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    mom_ckpt_destroy(ck2);
    mom_ckpt_destroy(ck);
    return rc == MOM_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--strip-user-data") == 0)
        return strip_user_data(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_value_tasks),
        cmocka_unit_test(test_addition_options),
        cmocka_unit_test(test_min_T),
        cmocka_unit_test(test_progress_format),
        cmocka_unit_test(test_order_tasks),
        cmocka_unit_test(test_permutation_task),
        cmocka_unit_test(test_memorization_tasks),
        cmocka_unit_test(test_generators_deterministic),
        cmocka_unit_test(test_curves),
        cmocka_unit_test(test_idx_reader),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_state_refused),
        cmocka_unit_test(test_num_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
