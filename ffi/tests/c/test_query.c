/* Queries in place: floe_reader_get (found, empty value, value spanning
 * blocks, absent keys, missing keyspace, NULL arguments), floe_reader_scan
 * and floe_reader_scan_prefix (bounds, unbounded ends, empty ranges,
 * prefixes of 0xff bytes), and floe_reader_diff of two archives. */
#include "harness.h"

#define BIG_VALUE_LEN (300 * 1024) /* spans many 4 KiB blocks */
#define ZETA_RECORDS 500

static unsigned char *g_big;

static void put(floe_writer *w, const char *key, size_t key_len, const char *value) {
    CHECK_OK(floe_writer_put(w, (const uint8_t *)key, key_len, (const uint8_t *)value, value ? strlen(value) : 0));
}

/* Archive A, or (variant_b) archive B with these differences from A:
 * alpha: "a" removed, "c" changed, "d" added; "empty": other options;
 * "zeta" only in A; "new" only in B; "keys" the same. */
static void write_archive(const char *path, int variant_b) {
    floe_writer *w = NULL;
    floe_writer_options o;
    char key[32], val[32];
    int i;
    CHECK_OK(floe_writer_options_default(&o, sizeof o));
    o.block_size = 4096;
    CHECK_OK(floe_writer_create(path, &o, &w));
    CHECK_OK(floe_writer_begin_keyspace(w, "alpha", NULL));
    if (!variant_b) put(w, "a", 1, "A");
    put(w, "b", 1, NULL); /* empty value */
    CHECK_OK(floe_writer_put(w, (const uint8_t *)"big", 3, g_big, BIG_VALUE_LEN));
    put(w, "c", 1, variant_b ? "C2" : "C");
    if (variant_b) put(w, "d", 1, "D");
    CHECK_OK(floe_writer_begin_keyspace(w, "empty", variant_b ? "{\"kv_separation\": true}" : NULL));
    CHECK_OK(floe_writer_begin_keyspace(w, "keys", NULL));
    put(w, "ab", 2, "1");
    put(w, "abc", 3, "2");
    put(w, "abd", 3, "3");
    put(w, "ac", 2, "4");
    put(w, "b", 1, "5");
    put(w, "\xfe\xff", 2, "6");
    put(w, "\xff", 1, "7");
    put(w, "\xff\x00", 2, "8");
    put(w, "\xff\xff", 2, "9");
    put(w, "\xff\xff\x01", 3, "10");
    if (variant_b) {
        CHECK_OK(floe_writer_begin_keyspace(w, "new", NULL));
        put(w, "n", 1, "N");
    } else {
        CHECK_OK(floe_writer_begin_keyspace(w, "zeta", NULL));
        for (i = 0; i < ZETA_RECORDS; i++) {
            snprintf(key, sizeof key, "z%06d", i);
            snprintf(val, sizeof val, "value-%d", i);
            put(w, key, strlen(key), val);
        }
    }
    CHECK_OK(floe_writer_finish(w, NULL));
    floe_writer_free(w);
}

static void test_get(floe_reader *r) {
    uint8_t *v = NULL, *const sentinel = (uint8_t *)&v;
    size_t len = 0;
    bool found = false;

    CHECK_OK(floe_reader_get(r, "alpha", (const uint8_t *)"c", 1, &v, &len, &found));
    CHECK(found && len == 1 && v && v[0] == 'C');
    floe_bytes_free(v, len);

    /* A value spanning many blocks. */
    v = NULL;
    CHECK_OK(floe_reader_get(r, "alpha", (const uint8_t *)"big", 3, &v, &len, &found));
    CHECK(found && len == BIG_VALUE_LEN && v && memcmp(v, g_big, BIG_VALUE_LEN) == 0);
    floe_bytes_free(v, len);

    /* An empty value: found, a non-NULL pointer of length 0. */
    v = NULL;
    len = 99;
    CHECK_OK(floe_reader_get(r, "alpha", (const uint8_t *)"b", 1, &v, &len, &found));
    CHECK(found && len == 0 && v != NULL);
    floe_bytes_free(v, len);

    /* Deep in a keyspace of many blocks. */
    v = NULL;
    CHECK_OK(floe_reader_get(r, "zeta", (const uint8_t *)"z000437", 7, &v, &len, &found));
    CHECK(found && len == 9 && memcmp(v, "value-437", 9) == 0);
    floe_bytes_free(v, len);

    /* Absent: inside the keyspace's range, below its first key, above its
     * last, a prefix of a key, an empty keyspace, an empty key. Not errors. */
    {
        const char *absent[] = {"abb", "a", "zz", "\xff\xff\x01\x00", "\xff\xff\x00", "\x01"};
        const size_t absent_len[] = {3, 1, 2, 4, 3, 1};
        size_t i;
        for (i = 0; i < sizeof absent / sizeof *absent; i++) {
            v = sentinel;
            len = 77;
            found = true;
            CHECK_OK(floe_reader_get(r, "keys", (const uint8_t *)absent[i], absent_len[i], &v, &len, &found));
            CHECK(!found && v == NULL && len == 0);
        }
    }
    found = true;
    CHECK_OK(floe_reader_get(r, "zeta", (const uint8_t *)"z000500", 7, &v, &len, &found));
    CHECK(!found);
    found = true;
    CHECK_OK(floe_reader_get(r, "empty", (const uint8_t *)"x", 1, &v, &len, &found));
    CHECK(!found);
    found = true;
    CHECK_OK(floe_reader_get(r, "keys", NULL, 0, &v, &len, &found));
    CHECK(!found);
    CHECK_OK(floe_reader_get(r, "keys", (const uint8_t *)"\xff\xff", 2, &v, &len, &found));
    CHECK(found && len == 1 && v[0] == '9');
    floe_bytes_free(v, len);

    /* A missing keyspace is an error naming those that exist; outputs untouched. */
    v = sentinel;
    len = 77;
    found = true;
    CHECK_STATUS(floe_reader_get(r, "nope", (const uint8_t *)"a", 1, &v, &len, &found), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("'nope'");
    CHECK_ERROR_MENTIONS("'alpha', 'empty', 'keys', 'zeta'");
    CHECK(v == sentinel && len == 77 && found);

    /* NULL arguments. */
    CHECK_STATUS(floe_reader_get(NULL, "alpha", (const uint8_t *)"a", 1, &v, &len, &found), FLOE_NULL_ARGUMENT);
    CHECK_ERROR_MENTIONS("reader");
    CHECK_STATUS(floe_reader_get(r, NULL, (const uint8_t *)"a", 1, &v, &len, &found), FLOE_NULL_ARGUMENT);
    CHECK_ERROR_MENTIONS("keyspace");
    CHECK_STATUS(floe_reader_get(r, "alpha", NULL, 1, &v, &len, &found), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_get(r, "alpha", (const uint8_t *)"a", 1, NULL, &len, &found), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_get(r, "alpha", (const uint8_t *)"a", 1, &v, NULL, &found), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_get(r, "alpha", (const uint8_t *)"a", 1, &v, &len, NULL), FLOE_NULL_ARGUMENT);
    CHECK_ERROR_MENTIONS("out_found");
    CHECK_STATUS(floe_reader_get(r, "\xff", (const uint8_t *)"a", 1, &v, &len, &found), FLOE_INVALID_UTF8);
    CHECK(v == sentinel && len == 77 && found);
    floe_bytes_free(NULL, 0);
    floe_bytes_free(NULL, 5);
}

/* Runs an iterator to the end: the number of records, the first and last
 * keys (NUL-terminated copies) and whether every record is of keyspace `ks`. */
static size_t drain(floe_iter *it, size_t ks, char *first, char *last) {
    floe_record rec;
    size_t n = 0;
    floe_status st;
    first[0] = last[0] = 0;
    while ((st = floe_iter_next(it, &rec)) == FLOE_OK) {
        CHECK(rec.keyspace == ks && rec.key != NULL && rec.value != NULL && rec.key_len < 32);
        if (rec.key_len < 32) {
            if (n == 0) {
                memcpy(first, rec.key, rec.key_len);
                first[rec.key_len] = 0;
            }
            memcpy(last, rec.key, rec.key_len);
            last[rec.key_len] = 0;
        }
        n++;
    }
    CHECK_STATUS(st, FLOE_DONE);
    CHECK_STATUS(floe_iter_next(it, &rec), FLOE_DONE); /* stays done */
    floe_iter_free(it);
    return n;
}

static size_t scan(floe_reader *r, const char *ks, size_t ks_index, const char *start, const char *end, char *first,
                   char *last) {
    floe_iter *it = NULL;
    floe_status st = floe_reader_scan(r, ks, (const uint8_t *)start, start ? strlen(start) : 0, (const uint8_t *)end,
                                      end ? strlen(end) : 0, &it);
    CHECK_OK(st);
    if (st != FLOE_OK) return (size_t)-1;
    return drain(it, ks_index, first, last);
}

static size_t prefix(floe_reader *r, const char *p, size_t p_len, char *first, char *last) {
    floe_iter *it = NULL;
    floe_status st = floe_reader_scan_prefix(r, "keys", (const uint8_t *)p, p_len, &it);
    CHECK_OK(st);
    if (st != FLOE_OK) return (size_t)-1;
    return drain(it, 2, first, last);
}

static void test_scan(const char *path) {
    floe_reader *r = NULL;
    floe_iter *it = NULL, *const sentinel = (floe_iter *)&it;
    char first[40], last[40];
    floe_record rec;

    CHECK_OK(floe_reader_open(path, &r));
    /* [start, end) */
    CHECK(scan(r, "zeta", 3, "z000100", "z000200", first, last) == 100);
    CHECK(strcmp(first, "z000100") == 0 && strcmp(last, "z000199") == 0);
    /* Bounds between keys. */
    CHECK(scan(r, "zeta", 3, "z0001005", "z0002", first, last) == 99);
    CHECK(strcmp(first, "z000101") == 0 && strcmp(last, "z000199") == 0);
    /* Unbounded ends. */
    CHECK(scan(r, "zeta", 3, NULL, "z000010", first, last) == 10);
    CHECK(strcmp(first, "z000000") == 0 && strcmp(last, "z000009") == 0);
    CHECK(scan(r, "zeta", 3, "z000490", NULL, first, last) == 10);
    CHECK(strcmp(first, "z000490") == 0 && strcmp(last, "z000499") == 0);
    CHECK(scan(r, "zeta", 3, NULL, NULL, first, last) == ZETA_RECORDS);
    /* Empty ranges: start == end, start > end, past the last key, before the
     * first, an empty end key, an empty keyspace. */
    CHECK(scan(r, "zeta", 3, "z000100", "z000100", first, last) == 0);
    CHECK(scan(r, "zeta", 3, "z000200", "z000100", first, last) == 0);
    CHECK(scan(r, "zeta", 3, "zz", NULL, first, last) == 0);
    CHECK(scan(r, "zeta", 3, NULL, "a", first, last) == 0);
    CHECK(scan(r, "zeta", 3, NULL, "", first, last) == 0);
    CHECK(scan(r, "empty", 1, NULL, NULL, first, last) == 0);
    /* The value spanning blocks comes whole. */
    CHECK_OK(floe_reader_scan(r, "alpha", (const uint8_t *)"b", 1, (const uint8_t *)"c", 1, &it));
    CHECK_OK(floe_iter_next(it, &rec));
    CHECK(rec.key_len == 1 && rec.value_len == 0);
    CHECK_OK(floe_iter_next(it, &rec));
    CHECK(rec.key_len == 3 && rec.value_len == BIG_VALUE_LEN && memcmp(rec.value, g_big, BIG_VALUE_LEN) == 0);
    CHECK_STATUS(floe_iter_next(it, &rec), FLOE_DONE);
    floe_iter_free(it);

    /* Prefixes. */
    CHECK(prefix(r, "ab", 2, first, last) == 3);
    CHECK(strcmp(first, "ab") == 0 && strcmp(last, "abd") == 0);
    CHECK(prefix(r, "a", 1, first, last) == 4);
    CHECK(prefix(r, "abc", 3, first, last) == 1);
    CHECK(prefix(r, "abcd", 4, first, last) == 0);
    CHECK(prefix(r, "q", 1, first, last) == 0);
    /* "\xfe": its successor is "\xff", which is not included. */
    CHECK(prefix(r, "\xfe", 1, first, last) == 1);
    CHECK(strcmp(first, "\xfe\xff") == 0);
    /* All-0xff prefixes have no successor: the range is unbounded above. */
    CHECK(prefix(r, "\xff", 1, first, last) == 4);
    CHECK(strcmp(first, "\xff") == 0 && strcmp(last, "\xff\xff\x01") == 0);
    CHECK(prefix(r, "\xff\xff", 2, first, last) == 2);
    CHECK(strcmp(first, "\xff\xff") == 0 && strcmp(last, "\xff\xff\x01") == 0);
    CHECK(prefix(r, "\xff\xff\xff", 3, first, last) == 0);
    /* The empty prefix: every key. */
    CHECK(prefix(r, NULL, 0, first, last) == 10);
    CHECK(prefix(r, "", 0, first, last) == 10);

    /* Errors: missing keyspace (named, with those that exist), NULL arguments;
     * the out-parameter is untouched. */
    it = sentinel;
    CHECK_STATUS(floe_reader_scan(r, "nope", NULL, 0, NULL, 0, &it), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("'nope'");
    CHECK_ERROR_MENTIONS("'zeta'");
    CHECK_STATUS(floe_reader_scan_prefix(r, "nope", (const uint8_t *)"a", 1, &it), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("'keys'");
    CHECK_STATUS(floe_reader_scan(NULL, "zeta", NULL, 0, NULL, 0, &it), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_scan(r, NULL, NULL, 0, NULL, 0, &it), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_scan(r, "zeta", NULL, 3, NULL, 0, &it), FLOE_NULL_ARGUMENT);
    CHECK_ERROR_MENTIONS("start");
    CHECK_STATUS(floe_reader_scan(r, "zeta", NULL, 0, NULL, 3, &it), FLOE_NULL_ARGUMENT);
    CHECK_ERROR_MENTIONS("end");
    CHECK_STATUS(floe_reader_scan(r, "zeta", NULL, 0, NULL, 0, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_scan_prefix(r, "keys", NULL, 2, &it), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_scan_prefix(r, "keys", (const uint8_t *)"a", 1, NULL), FLOE_NULL_ARGUMENT);
    CHECK(it == sentinel);

    /* A scan outlives its reader; freeing one half-way is fine. */
    CHECK_OK(floe_reader_scan(r, "zeta", (const uint8_t *)"z000400", 7, NULL, 0, &it));
    floe_reader_free(r);
    CHECK(drain(it, 3, first, last) == 100);
    CHECK_OK(floe_reader_open(path, &r));
    CHECK_OK(floe_reader_scan(r, "zeta", NULL, 0, NULL, 0, &it));
    CHECK_OK(floe_iter_next(it, &rec));
    floe_iter_free(it);
    floe_reader_free(r);
}

/* Every difference of a diff, as "change keyspace key" lines. */
static int collect(floe_diff *d, char *out, size_t cap) {
    floe_difference x;
    floe_status st;
    int n = 0;
    out[0] = 0;
    while ((st = floe_diff_next(d, &x)) == FLOE_OK) {
        const char *kind = x.change == FLOE_CHANGE_ADDED     ? "+"
                           : x.change == FLOE_CHANGE_REMOVED ? "-"
                           : x.change == FLOE_CHANGE_CHANGED ? "~"
                                                              : "?";
        size_t used = strlen(out);
        CHECK(x.keyspace[x.keyspace_len] == 0 && x.key != NULL);
        snprintf(out + used, cap - used, "%s %.*s %.*s\n", kind, (int)x.keyspace_len, x.keyspace, (int)x.key_len,
                 (const char *)x.key);
        n++;
    }
    CHECK_STATUS(st, FLOE_DONE);
    CHECK_STATUS(floe_diff_next(d, &x), FLOE_DONE);
    return n;
}

static void test_diff(const char *pa, const char *pb) {
    floe_reader *a = NULL, *b = NULL;
    floe_diff *d = NULL, *const sentinel = (floe_diff *)&d;
    floe_difference x;
    char lines[4096], *json = NULL;
    const char *only_alpha[] = {"alpha"};
    const char *wrong[] = {"alpha", "nope"};

    CHECK_OK(floe_reader_open(pa, &a));
    CHECK_OK(floe_reader_open(pb, &b));

    CHECK_OK(floe_reader_diff(a, b, NULL, 0, &d));
    /* No summary before the end. */
    CHECK_STATUS(floe_diff_summary_json(d, &json), FLOE_INVALID_STATE);
    CHECK_ERROR_MENTIONS("FLOE_DONE");
    CHECK(json == NULL);
    CHECK(collect(d, lines, sizeof lines) == 3);
    CHECK(strcmp(lines, "- alpha a\n~ alpha c\n+ alpha d\n") == 0);
    if (strcmp(lines, "- alpha a\n~ alpha c\n+ alpha d\n") != 0) fprintf(stderr, "differences:\n%s", lines);
    CHECK_OK(floe_diff_summary_json(d, &json));
    CHECK(json != NULL);
    if (json) {
        CHECK(strstr(json, "\"same\":false") != NULL);
        CHECK(strstr(json, "{\"added\":1,\"changed\":1,\"differs\":true,\"keyspace\":\"alpha\",\"options_changed\":false,"
                           "\"presence\":\"both\",\"removed\":1,\"unchanged\":2}") != NULL);
        CHECK(strstr(json, "\"keyspace\":\"empty\",\"options_changed\":true") != NULL);
        CHECK(strstr(json, "\"differs\":false,\"keyspace\":\"keys\",\"options_changed\":false,\"presence\":\"both\","
                           "\"removed\":0,\"unchanged\":10") != NULL);
        CHECK(strstr(json, "{\"added\":1,\"changed\":0,\"differs\":true,\"keyspace\":\"new\",\"options_changed\":false,"
                           "\"presence\":\"added\"") != NULL);
        CHECK(strstr(json, "\"keyspace\":\"zeta\",\"options_changed\":false,\"presence\":\"removed\",\"removed\":500") !=
              NULL);
        if (!strstr(json, "\"unchanged\":10")) fprintf(stderr, "summary: %s\n", json);
    }
    floe_string_free(json);
    floe_diff_free(d);

    /* The other way round. */
    CHECK_OK(floe_reader_diff(b, a, NULL, 0, &d));
    CHECK(collect(d, lines, sizeof lines) == 3);
    CHECK(strcmp(lines, "+ alpha a\n~ alpha c\n- alpha d\n") == 0);
    floe_diff_free(d);

    /* An archive with itself: no difference, same. */
    CHECK_OK(floe_reader_diff(a, a, NULL, 0, &d));
    CHECK(collect(d, lines, sizeof lines) == 0);
    json = NULL;
    CHECK_OK(floe_diff_summary_json(d, &json));
    CHECK(json && strstr(json, "\"same\":true") && !strstr(json, "\"differs\":true"));
    floe_string_free(json);
    floe_diff_free(d);

    /* Limited to some keyspaces. */
    CHECK_OK(floe_reader_diff(a, b, only_alpha, 1, &d));
    CHECK(collect(d, lines, sizeof lines) == 3);
    json = NULL;
    CHECK_OK(floe_diff_summary_json(d, &json));
    CHECK(json && strstr(json, "\"alpha\"") && !strstr(json, "\"zeta\"") && !strstr(json, "\"new\""));
    floe_string_free(json);
    floe_diff_free(d);
    d = sentinel;
    CHECK_STATUS(floe_reader_diff(a, b, wrong, 2, &d), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("'nope' is in neither archive");
    CHECK(d == sentinel);

    /* NULL arguments. */
    CHECK_STATUS(floe_reader_diff(NULL, b, NULL, 0, &d), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_diff(a, NULL, NULL, 0, &d), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_diff(a, b, NULL, 1, &d), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_diff(a, b, NULL, 0, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_diff_next(NULL, &x), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_diff_summary_json(NULL, &json), FLOE_NULL_ARGUMENT);
    CHECK(d == sentinel);
    floe_diff_free(NULL);

    /* Freed half-way (the comparison thread stops), and after the readers. */
    CHECK_OK(floe_reader_diff(a, b, NULL, 0, &d));
    CHECK_OK(floe_diff_next(d, &x));
    CHECK(x.change == FLOE_CHANGE_REMOVED && x.key_len == 1 && x.key[0] == 'a');
    CHECK_STATUS(floe_diff_summary_json(d, &json), FLOE_INVALID_STATE);
    floe_diff_free(d);
    CHECK_OK(floe_reader_diff(a, b, NULL, 0, &d));
    floe_reader_free(a);
    floe_reader_free(b);
    CHECK(collect(d, lines, sizeof lines) == 3);
    floe_diff_free(d);
}

/* Offset of the data frame of the first block (alpha's), and its length. */
static size_t first_frame(const unsigned char *a, size_t *frame_len) {
    size_t off = 8 + le32(a + 4);        /* after the header section */
    off += 8 + le32(a + off + 4);        /* after the keyspace table */
    CHECK(memcmp(a + off + 12, "BLKH", 4) == 0);
    *frame_len = le32(a + off + 20 + 20); /* BLKH body offset 20: frame_len */
    return off + 8 + le32(a + off + 4);
}

/* A flipped bit in alpha's first data frame: queries that read it fail with
 * FLOE_CORRUPT_ARCHIVE (never a wrong answer); others still work. */
static void test_damaged(const char *pa, const char *pb) {
    size_t len = 0, flen = 0, off;
    unsigned char *a = read_file(pa, &len);
    floe_reader *r = NULL, *good = NULL;
    floe_iter *it = NULL;
    floe_record rec;
    floe_diff *d = NULL;
    floe_difference x;
    uint8_t *v = NULL;
    size_t vlen = 0;
    bool found = false;
    char *json = NULL;
    floe_status st;
    CHECK(a != NULL);
    if (!a) return;
    off = first_frame(a, &flen);
    a[off + flen / 2] ^= 0x40;
    CHECK_OK(floe_reader_open_buffer(a, len, &r));
    free(a);
    CHECK_STATUS(floe_reader_get(r, "alpha", (const uint8_t *)"a", 1, &v, &vlen, &found), FLOE_CORRUPT_ARCHIVE);
    CHECK_ERROR_MENTIONS("checksum");
    CHECK(v == NULL && !found);
    CHECK_OK(floe_reader_get(r, "zeta", (const uint8_t *)"z000007", 7, &v, &vlen, &found));
    CHECK(found && vlen == 7 && memcmp(v, "value-7", 7) == 0);
    floe_bytes_free(v, vlen);
    CHECK_OK(floe_reader_scan(r, "alpha", NULL, 0, NULL, 0, &it));
    CHECK_STATUS(floe_iter_next(it, &rec), FLOE_CORRUPT_ARCHIVE);
    CHECK_STATUS(floe_iter_next(it, &rec), FLOE_CORRUPT_ARCHIVE); /* sticky */
    floe_iter_free(it);
    CHECK_OK(floe_reader_open(pb, &good));
    CHECK_OK(floe_reader_diff(r, good, NULL, 0, &d));
    while ((st = floe_diff_next(d, &x)) == FLOE_OK) {
    }
    CHECK_STATUS(st, FLOE_CORRUPT_ARCHIVE);
    CHECK_STATUS(floe_diff_next(d, &x), FLOE_CORRUPT_ARCHIVE); /* sticky */
    CHECK_ERROR_MENTIONS("failed earlier");
    CHECK_STATUS(floe_diff_summary_json(d, &json), FLOE_CORRUPT_ARCHIVE);
    CHECK(json == NULL);
    floe_diff_free(d);
    floe_reader_free(good);
    floe_reader_free(r);
}

int main(void) {
    int i;
    char pa[2048], pb[2048];
    floe_reader *r = NULL;
    tmp_setup();
    g_big = malloc(BIG_VALUE_LEN);
    for (i = 0; i < BIG_VALUE_LEN; i++) g_big[i] = (unsigned char)(i * 7 + i / 251);
    snprintf(pa, sizeof pa, "%s", tmp_path("a.floe"));
    snprintf(pb, sizeof pb, "%s", tmp_path("b.floe"));
    write_archive(pa, 0);
    write_archive(pb, 1);
    CHECK_OK(floe_reader_open(pa, &r));
    test_get(r);
    floe_reader_free(r);
    test_scan(pa);
    test_diff(pa, pb);
    test_damaged(pa, pb);
    free(g_big);
    tmp_teardown();
    return harness_finish("test_query");
}
