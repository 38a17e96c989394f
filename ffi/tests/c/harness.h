/* A minimal test harness for the C tests of libfloe: checks, temporary
 * directories, file helpers and a CRC-32 (to forge archives in tests). */
#ifndef FLOE_TEST_HARNESS_H
#define FLOE_TEST_HARNESS_H

#define _XOPEN_SOURCE 700

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floe.h"

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        g_checks++;                                                                        \
        if (!(cond)) {                                                                     \
            g_failures++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                                  \
    } while (0)

/* Checks a status, printing floe's last error when it differs. */
#define CHECK_STATUS(expr, expected)                                                       \
    do {                                                                                   \
        floe_status got_ = (expr);                                                         \
        g_checks++;                                                                        \
        if (got_ != (expected)) {                                                          \
            g_failures++;                                                                  \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s; last error: %s\n",        \
                    __FILE__, __LINE__, #expr, floe_status_name((int32_t)got_),            \
                    floe_status_name((int32_t)(expected)), floe_last_error());             \
        }                                                                                  \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, FLOE_OK)

/* The last error mentions `needle`. */
#define CHECK_ERROR_MENTIONS(needle)                                                       \
    do {                                                                                   \
        g_checks++;                                                                        \
        if (strstr(floe_last_error(), (needle)) == NULL) {                                 \
            g_failures++;                                                                  \
            fprintf(stderr, "%s:%d: last error does not mention \"%s\": %s\n",             \
                    __FILE__, __LINE__, (needle), floe_last_error());                      \
        }                                                                                  \
    } while (0)

static inline int harness_finish(const char *name) {
    if (g_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, g_failures, g_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, g_checks);
    return 0;
}

/* ---- temporary directories ---- */

static char g_tmp[1024];

static inline int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void rm_rf(const char *path) {
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void tmp_setup(void) {
    const char *base = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/floe-ctest-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(g_tmp) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
}

static inline void tmp_teardown(void) {
    rm_rf(g_tmp);
}

/* A path inside the test's temporary directory (static buffers, rotating). */
static inline const char *tmp_path(const char *name) {
    static char bufs[8][4096];
    static int next = 0;
    char *b = bufs[next++ % 8];
    snprintf(b, 4096, "%s/%s", g_tmp, name);
    return b;
}

static inline int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Number of directory entries (excluding . and ..) in `dir`. */
static inline int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    }
    closedir(d);
    return n;
}

/* Number of entries of `dir` whose name contains "floe-tmp" or "floe-old". */
static inline int count_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, "floe-tmp") || strstr(e->d_name, "floe-old")) n++;
    }
    closedir(d);
    return n;
}

static inline unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static inline int write_file(const char *path, const unsigned char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* CRC-32/ISO-HDLC, as format-spec §1. */
static inline uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n) {
    size_t i;
    int k;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static inline uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Recomputes the CRC of the section starting at `sec` (format-spec §3). */
static inline void fix_section_crc(unsigned char *sec) {
    uint32_t frame_size = le32(sec + 4);
    uint32_t c = crc32_update(0, sec, 8);
    c = crc32_update(c, sec + 12, frame_size - 4);
    put_le32(sec + 8, c);
}

#endif
