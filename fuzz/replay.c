/* Replay the fuzz corpus as an ordinary test (TAP): every file under the given directories goes
 * through LLVMFuzzerTestOneInput() (fuzz_ckpt.c), which aborts on any broken invariant, and the
 * file's name states what loading it must give:
 *   ok-*     MOM_OK            (valid files of each kind)
 *   bad-*    MOM_E_FORMAT      (damaged, truncated or crafted files)
 *   unsup-*  MOM_E_UNSUPPORTED (a newer format)
 *   other    no expectation    (inputs found by the fuzzer, kept as regression tests)
 * Usage: fuzz_replay DIR... */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mominit/mominit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct entry {
    char path[1024];
} entry;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap);
    while (b != NULL) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *nb = realloc(b, 2 * cap);
        if (nb == NULL) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    fclose(f);
    *size = n;
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR...\n", argv[0]);
        return 2;
    }
    size_t n = 0, cap = 64;
    entry *list = malloc(cap * sizeof *list);
    for (int a = 1; a < argc && list != NULL; a++) {
        DIR *d = opendir(argv[a]);
        if (d == NULL) {
            fprintf(stderr, "cannot open %s\n", argv[a]);
            return 2;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            if (n == cap) {
                entry *nl = realloc(list, 2 * cap * sizeof *list);
                if (nl == NULL)
                    return 2;
                list = nl;
                cap *= 2;
            }
            snprintf(list[n].path, sizeof list[n].path, "%s/%s", argv[a], e->d_name);
            struct stat st;
            if (stat(list[n].path, &st) == 0 && S_ISREG(st.st_mode))
                n++;
        }
        closedir(d);
    }
    if (list == NULL)
        return 2;
    qsort(list, n, sizeof *list, by_name);
    printf("1..%zu\n", n);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        const char *slash = strrchr(list[i].path, '/');
        const char *name = slash ? slash + 1 : list[i].path;
        size_t size = 0;
        unsigned char *data = read_file(list[i].path, &size);
        if (data == NULL) {
            printf("not ok %zu - %s # cannot read\n", i + 1, name);
            failed++;
            continue;
        }
        LLVMFuzzerTestOneInput(data, size);
        int expect = 1; /* 1: no expectation */
        if (strncmp(name, "ok-", 3) == 0)
            expect = MOM_OK;
        else if (strncmp(name, "bad-", 4) == 0)
            expect = MOM_E_FORMAT;
        else if (strncmp(name, "unsup-", 6) == 0)
            expect = MOM_E_UNSUPPORTED;
        mom_ckpt *ck;
        int rc = mom_ckpt_create(&ck, NULL);
        if (rc == MOM_OK)
            rc = mom_ckpt_load_buffer(ck, data, size);
        if (expect != 1 && rc != expect) {
            printf("not ok %zu - %s # expected %s, got %s: %s\n", i + 1, name,
                   mom_status_name(expect), mom_status_name(rc), mom_ckpt_errmsg(ck));
            failed++;
        } else {
            printf("ok %zu - %s # %s%s%s\n", i + 1, name, mom_status_name(rc),
                   rc != MOM_OK ? ": " : "", rc != MOM_OK ? mom_ckpt_errmsg(ck) : "");
        }
        mom_ckpt_destroy(ck);
        free(data);
    }
    free(list);
    return failed ? 1 : 0;
}
