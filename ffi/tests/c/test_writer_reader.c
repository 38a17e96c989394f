/* The archive writer and reader: round trips (keyspaces begun out of order,
 * empty keyspaces, values spanning blocks), options, misuse of the writer
 * (unsorted keys, use after finish, double finish, abort), the memory-buffer
 * reader, and damaged, truncated or too-new archives. */
#include "harness.h"

#define BIG_VALUE_LEN (300 * 1024) /* spans many 4 KiB blocks */
#define ZETA_RECORDS 500

static unsigned char *g_big;

static void make_key(char *buf, size_t cap, const char *prefix, int i) {
    snprintf(buf, cap, "%s%06d", prefix, i);
}

/* Writes the reference archive: keyspaces begun as zeta, alpha, empty. */
static void write_reference(const char *path, int block_size) {
    floe_writer *w = NULL;
    floe_writer_options o;
    floe_write_summary s;
    char key[32], val[64];
    int i;
    CHECK_OK(floe_writer_options_default(&o, sizeof o));
    o.level = 5;
    o.block_size = (uint32_t)block_size;
    CHECK_OK(floe_writer_create(path, &o, &w));
    CHECK_OK(floe_writer_begin_keyspace(w, "zeta", "{\"data_block_size\": [8192, 16384], \"kv_separation\": true}"));
    for (i = 0; i < ZETA_RECORDS; i++) {
        make_key(key, sizeof key, "z", i);
        snprintf(val, sizeof val, "value-%d", i);
        CHECK_OK(floe_writer_put(w, (const uint8_t *)key, strlen(key), (const uint8_t *)val, strlen(val)));
    }
    CHECK_OK(floe_writer_begin_keyspace(w, "alpha", NULL));
    CHECK_OK(floe_writer_put(w, (const uint8_t *)"a", 1, NULL, 0)); /* empty value */
    CHECK_OK(floe_writer_put(w, (const uint8_t *)"big", 3, g_big, BIG_VALUE_LEN));
    CHECK_OK(floe_writer_put(w, (const uint8_t *)"c", 1, (const uint8_t *)"C", 1));
    CHECK_OK(floe_writer_begin_keyspace(w, "empty", "{}"));
    memset(&s, 0xAB, sizeof s);
    CHECK_OK(floe_writer_finish(w, &s));
    CHECK(s.records == ZETA_RECORDS + 3);
    CHECK(s.keyspaces == 3);
    CHECK(s.value_bytes > BIG_VALUE_LEN);
    CHECK(block_size == 0 ? s.blocks == 3 : s.blocks > 3);
    CHECK(s.archive_bytes > 0);
    floe_writer_free(w);
}

static void test_writer_misuse(void) {
    floe_writer *w = NULL;
    floe_writer_options o;
    unsigned char longkey[65536];
    const char *p = tmp_path("misuse.floe");
    memset(longkey, 'z', sizeof longkey);
    CHECK_OK(floe_writer_options_default(&o, sizeof o));

    o.block_size = 100;
    CHECK_STATUS(floe_writer_create(p, &o, &w), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("block size");
    CHECK_STATUS(floe_writer_create(tmp_path("no/such/dir/x.floe"), NULL, &w), FLOE_IO);
    CHECK_ERROR_MENTIONS("No such file or directory");
    CHECK(w == NULL);

    CHECK_OK(floe_writer_create(p, NULL, &w));
    CHECK_STATUS(floe_writer_put(w, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1), FLOE_INVALID_STATE);
    CHECK_ERROR_MENTIONS("begin_keyspace");
    CHECK_STATUS(floe_writer_begin_keyspace(w, "", NULL), FLOE_INVALID_ARGUMENT);
    CHECK_STATUS(floe_writer_begin_keyspace(w, "ks", "{\"no_such_option\": 1}"), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("no_such_option");
    CHECK_STATUS(floe_writer_begin_keyspace(w, "ks", "not json"), FLOE_INVALID_ARGUMENT);
    CHECK_STATUS(floe_writer_begin_keyspace(w, "ks", "{\"data_block_size\": 0}"), FLOE_INVALID_ARGUMENT);
    CHECK_OK(floe_writer_begin_keyspace(w, "ks", NULL));
    CHECK_OK(floe_writer_put(w, (const uint8_t *)"m", 1, (const uint8_t *)"v", 1));
    /* Unsorted, duplicate, empty and oversized keys: refused, writer usable. */
    CHECK_STATUS(floe_writer_put(w, (const uint8_t *)"a", 1, (const uint8_t *)"v", 1), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("out of order");
    CHECK_STATUS(floe_writer_put(w, (const uint8_t *)"m", 1, (const uint8_t *)"v", 1), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("duplicate");
    CHECK_STATUS(floe_writer_put(w, (const uint8_t *)"", 0, (const uint8_t *)"v", 1), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("empty key");
    CHECK_STATUS(floe_writer_put(w, longkey, sizeof longkey, (const uint8_t *)"v", 1), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("65536");
    CHECK_STATUS(floe_writer_put(w, NULL, 1, (const uint8_t *)"v", 1), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_writer_put(w, NULL, 0, (const uint8_t *)"v", 1), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_writer_put(w, (const uint8_t *)"z", 1, NULL, 5), FLOE_NULL_ARGUMENT);
    CHECK_OK(floe_writer_put(w, longkey, 65535, (const uint8_t *)"v", 1));
    CHECK_OK(floe_writer_begin_keyspace(w, "other", NULL));
    CHECK_STATUS(floe_writer_begin_keyspace(w, "ks", NULL), FLOE_INVALID_STATE);
    CHECK_ERROR_MENTIONS("already begun");
    CHECK(!path_exists(p)); /* nothing visible before finish */
    CHECK_OK(floe_writer_finish(w, NULL));
    CHECK(path_exists(p));
    /* Use after finish and double finish. */
    CHECK_STATUS(floe_writer_finish(w, NULL), FLOE_INVALID_STATE);
    CHECK_ERROR_MENTIONS("already finished");
    CHECK_STATUS(floe_writer_put(w, (const uint8_t *)"zz", 2, NULL, 0), FLOE_INVALID_STATE);
    CHECK_STATUS(floe_writer_begin_keyspace(w, "later", NULL), FLOE_INVALID_STATE);
    CHECK_STATUS(floe_writer_abort(w), FLOE_INVALID_STATE);
    CHECK(path_exists(p));
    floe_writer_free(w);
    CHECK_OK(floe_verify(p, false, 1, NULL, NULL, NULL));

    /* Abort: nothing is left; then everything is refused. */
    w = NULL;
    CHECK_OK(floe_writer_create(tmp_path("aborted.floe"), NULL, &w));
    CHECK_OK(floe_writer_begin_keyspace(w, "ks", NULL));
    CHECK_OK(floe_writer_put(w, (const uint8_t *)"k", 1, g_big, BIG_VALUE_LEN));
    CHECK_OK(floe_writer_abort(w));
    CHECK_STATUS(floe_writer_abort(w), FLOE_INVALID_STATE);
    CHECK_STATUS(floe_writer_finish(w, NULL), FLOE_INVALID_STATE);
    CHECK_STATUS(floe_writer_put(w, (const uint8_t *)"l", 1, NULL, 0), FLOE_INVALID_STATE);
    floe_writer_free(w);
    CHECK(!path_exists(tmp_path("aborted.floe")));

    /* Freed without finishing: also nothing left. */
    w = NULL;
    CHECK_OK(floe_writer_create(tmp_path("dropped.floe"), NULL, &w));
    CHECK_OK(floe_writer_begin_keyspace(w, "ks", NULL));
    CHECK_OK(floe_writer_put(w, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1));
    floe_writer_free(w);
    CHECK(!path_exists(tmp_path("dropped.floe")));

    /* A writer with no keyspace writes a valid empty archive. */
    w = NULL;
    CHECK_OK(floe_writer_create(tmp_path("none.floe"), NULL, &w));
    CHECK_OK(floe_writer_finish(w, NULL));
    floe_writer_free(w);
    CHECK_OK(floe_verify(tmp_path("none.floe"), false, 1, NULL, NULL, NULL));
    CHECK(count_leftovers(g_tmp) == 0);
}

/* Iterates `r` completely and checks every record of the reference archive. */
static void check_all_records(floe_reader *r) {
    floe_iter *it = NULL;
    floe_record rec;
    int n = 0, zeta = 0;
    char key[32], val[64];
    CHECK_OK(floe_reader_iter_all(r, &it));
    for (;;) {
        floe_status st = floe_iter_next(it, &rec);
        if (st == FLOE_DONE) break;
        CHECK_OK(st);
        if (st != FLOE_OK) break;
        CHECK(rec.key != NULL && rec.value != NULL);
        if (n == 0) {
            CHECK(rec.keyspace == 0 && rec.key_len == 1 && rec.key[0] == 'a' && rec.value_len == 0);
        } else if (n == 1) {
            CHECK(rec.keyspace == 0 && rec.key_len == 3 && memcmp(rec.key, "big", 3) == 0);
            CHECK(rec.value_len == BIG_VALUE_LEN && memcmp(rec.value, g_big, BIG_VALUE_LEN) == 0);
        } else if (n == 2) {
            CHECK(rec.keyspace == 0 && rec.key[0] == 'c' && rec.value_len == 1 && rec.value[0] == 'C');
        } else {
            CHECK(rec.keyspace == 2); /* "empty" (index 1) has no records */
            make_key(key, sizeof key, "z", zeta);
            snprintf(val, sizeof val, "value-%d", zeta);
            CHECK(rec.key_len == strlen(key) && memcmp(rec.key, key, rec.key_len) == 0);
            CHECK(rec.value_len == strlen(val) && memcmp(rec.value, val, rec.value_len) == 0);
            zeta++;
        }
        n++;
    }
    CHECK(n == ZETA_RECORDS + 3);
    CHECK(zeta == ZETA_RECORDS);
    CHECK_STATUS(floe_iter_next(it, &rec), FLOE_DONE); /* stays done */
    floe_iter_free(it);
}

static void test_reader(const char *path) {
    floe_reader *r = NULL;
    floe_keyspace_info info;
    floe_iter *it = NULL;
    floe_record rec;
    size_t n = 0, idx = 99;
    char *json = NULL;
    floe_verify_report rep;

    CHECK_OK(floe_reader_open(path, &r));
    CHECK_OK(floe_reader_keyspace_count(r, &n));
    CHECK(n == 3);
    CHECK_OK(floe_reader_keyspace(r, 0, &info));
    CHECK(strcmp(info.name, "alpha") == 0 && info.name_len == 5);
    CHECK(info.records == 3 && info.value_bytes == BIG_VALUE_LEN + 1);
    CHECK(info.first_key_len == 1 && info.first_key[0] == 'a');
    CHECK(info.last_key_len == 1 && info.last_key[0] == 'c');
    CHECK(info.blocks >= 1 && info.compressed_bytes > 0 && info.raw_bytes > BIG_VALUE_LEN);
    CHECK_OK(floe_reader_keyspace(r, 1, &info));
    CHECK(strcmp(info.name, "empty") == 0 && info.records == 0 && info.first_key_len == 0 && info.blocks == 1);
    CHECK_OK(floe_reader_keyspace(r, 2, &info));
    CHECK(strcmp(info.name, "zeta") == 0 && info.records == ZETA_RECORDS);
    CHECK(info.last_key_len == 7 && memcmp(info.last_key, "z000499", 7) == 0);
    CHECK_STATUS(floe_reader_keyspace(r, 3, &info), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("out of range");

    CHECK_OK(floe_reader_find_keyspace(r, "zeta", &idx));
    CHECK(idx == 2);
    CHECK_STATUS(floe_reader_find_keyspace(r, "nope", &idx), FLOE_INVALID_ARGUMENT);
    CHECK(idx == 2);

    CHECK_OK(floe_reader_keyspace_options_json(r, 2, &json));
    CHECK(json && strstr(json, "\"kv_separation\":{") && strstr(json, "\"data_block_size\":[8192,16384]"));
    floe_string_free(json);
    json = NULL;
    CHECK_OK(floe_reader_keyspace_options_json(r, 0, &json));
    CHECK(json && strstr(json, "\"kv_separation\":null"));
    floe_string_free(json);
    CHECK_STATUS(floe_reader_keyspace_options_json(r, 7, &json), FLOE_INVALID_ARGUMENT);

    json = NULL;
    CHECK_OK(floe_reader_inspect_json(r, &json));
    CHECK(json && strstr(json, "\"format_version\": \"1.1\"") && strstr(json, "\"records\": 503"));
    floe_string_free(json);

    CHECK_OK(floe_reader_verify(r, false, 2, NULL, NULL, &rep));
    CHECK(rep.records == ZETA_RECORDS + 3 && rep.keyspaces == 3 && !rep.quick);
    CHECK_OK(floe_reader_verify(r, true, 0, NULL, NULL, &rep));
    CHECK(rep.quick);

    check_all_records(r);

    /* One keyspace; the reader is freed first and the iterator goes on. */
    CHECK_STATUS(floe_reader_iter_keyspace(r, 3, &it), FLOE_INVALID_ARGUMENT);
    CHECK_OK(floe_reader_iter_keyspace(r, 2, &it));
    floe_reader_free(r);
    n = 0;
    while (floe_iter_next(it, &rec) == FLOE_OK) {
        CHECK(rec.keyspace == 2);
        n++;
    }
    CHECK(n == ZETA_RECORDS);
    floe_iter_free(it);

    /* The empty keyspace iterates to DONE at once. */
    CHECK_OK(floe_reader_open(path, &r));
    CHECK_OK(floe_reader_iter_keyspace(r, 1, &it));
    CHECK_STATUS(floe_iter_next(it, &rec), FLOE_DONE);
    floe_iter_free(it);
    floe_reader_free(r);

    /* Whole-file functions on the same archive. */
    CHECK_OK(floe_verify(path, false, 0, NULL, NULL, &rep));
    CHECK(rep.records == ZETA_RECORDS + 3 && rep.blocks >= 3);
    json = NULL;
    CHECK_OK(floe_inspect_json(path, &json));
    CHECK(json && strstr(json, "\"zeta\"") && strstr(json, "\"engine\": \"\""));
    floe_string_free(json);
}

static void test_buffer_reader(const char *path) {
    size_t len = 0, n = 0;
    unsigned char *bytes = read_file(path, &len);
    floe_reader *r = NULL;
    CHECK(bytes != NULL);
    CHECK_OK(floe_reader_open_buffer(bytes, len, &r));
    free(bytes); /* copied: the reader does not need it */
    CHECK_OK(floe_reader_keyspace_count(r, &n));
    CHECK(n == 3);
    check_all_records(r);
    floe_reader_free(r);
}

/* Offset of the data frame of the first block, and its length. */
static size_t first_frame(const unsigned char *a, size_t *frame_len) {
    size_t off = 8 + le32(a + 4);        /* after the header section */
    off += 8 + le32(a + off + 4);        /* after the keyspace table */
    CHECK(memcmp(a + off + 12, "BLKH", 4) == 0);
    *frame_len = le32(a + off + 20 + 20); /* BLKH body offset 20: frame_len */
    return off + 8 + le32(a + off + 4);
}

static void test_damaged(const char *path) {
    size_t len = 0, flen = 0, off;
    unsigned char *a = read_file(path, &len);
    unsigned char *copy = malloc(len);
    floe_reader *r = NULL;
    floe_iter *it = NULL;
    floe_record rec;
    char *json = NULL;
    const char *bad = tmp_path("bad.floe");

    /* A flipped bit inside a data frame: the structure opens, the data fails. */
    memcpy(copy, a, len);
    off = first_frame(copy, &flen);
    copy[off + flen / 2] ^= 0x40;
    CHECK(write_file(bad, copy, len));
    CHECK_STATUS(floe_verify(bad, false, 1, NULL, NULL, NULL), FLOE_CORRUPT_ARCHIVE);
    CHECK_ERROR_MENTIONS("checksum");
    CHECK_STATUS(floe_verify(bad, true, 1, NULL, NULL, NULL), FLOE_CORRUPT_ARCHIVE);
    CHECK_OK(floe_reader_open(bad, &r));
    CHECK_OK(floe_reader_iter_all(r, &it));
    CHECK_STATUS(floe_iter_next(it, &rec), FLOE_CORRUPT_ARCHIVE);
    CHECK_STATUS(floe_iter_next(it, &rec), FLOE_CORRUPT_ARCHIVE); /* sticky */
    CHECK_ERROR_MENTIONS("failed earlier");
    floe_iter_free(it);
    CHECK_STATUS(floe_reader_verify(r, false, 1, NULL, NULL, NULL), FLOE_CORRUPT_ARCHIVE);
    floe_reader_free(r);
    r = NULL;
    CHECK_STATUS(floe_import(bad, tmp_path("bad-db"), NULL, NULL, NULL, NULL), FLOE_CORRUPT_ARCHIVE);
    CHECK(!path_exists(tmp_path("bad-db")));

    /* Truncated. */
    CHECK(write_file(bad, a, len / 2));
    CHECK_STATUS(floe_reader_open(bad, &r), FLOE_CORRUPT_ARCHIVE);
    CHECK(r == NULL);
    CHECK_STATUS(floe_verify(bad, false, 1, NULL, NULL, NULL), FLOE_CORRUPT_ARCHIVE);
    CHECK_STATUS(floe_inspect_json(bad, &json), FLOE_CORRUPT_ARCHIVE);
    CHECK(json == NULL);
    CHECK_STATUS(floe_reader_open_buffer(a, len - 1, &r), FLOE_CORRUPT_ARCHIVE);
    CHECK_STATUS(floe_reader_open_buffer(a, 10, &r), FLOE_CORRUPT_ARCHIVE);

    /* Not an archive, empty, missing. */
    CHECK(write_file(bad, (const unsigned char *)"hello, this is not an archive at all, it is plain text......", 61));
    CHECK_STATUS(floe_reader_open(bad, &r), FLOE_CORRUPT_ARCHIVE);
    CHECK(write_file(bad, a, 0));
    CHECK_STATUS(floe_reader_open(bad, &r), FLOE_CORRUPT_ARCHIVE);
    CHECK_STATUS(floe_reader_open(tmp_path("missing.floe"), &r), FLOE_IO);
    CHECK_STATUS(floe_verify(tmp_path("missing.floe"), false, 1, NULL, NULL, NULL), FLOE_IO);
    CHECK(r == NULL);

    /* Too new: format major 2 (header body offset 0), CRC fixed up. */
    memcpy(copy, a, len);
    copy[20] = 2;
    copy[22] = 0; /* format_minor */
    fix_section_crc(copy);
    CHECK(write_file(bad, copy, len));
    CHECK_STATUS(floe_reader_open(bad, &r), FLOE_UNSUPPORTED_VERSION);
    CHECK_ERROR_MENTIONS("version 2.0");
    CHECK_STATUS(floe_verify(bad, false, 1, NULL, NULL, NULL), FLOE_UNSUPPORTED_VERSION);
    CHECK_STATUS(floe_import(bad, tmp_path("new-db"), NULL, NULL, NULL, NULL), FLOE_UNSUPPORTED_VERSION);
    CHECK_STATUS(floe_reader_open_buffer(copy, len, &r), FLOE_UNSUPPORTED_VERSION);
    /* Too new: an unknown required feature bit (body offset 4). */
    memcpy(copy, a, len);
    copy[24] = 0x80;
    fix_section_crc(copy);
    CHECK(write_file(bad, copy, len));
    CHECK_STATUS(floe_reader_open(bad, &r), FLOE_UNSUPPORTED_VERSION);
    CHECK_ERROR_MENTIONS("features");
    /* The same change without fixing the CRC is plain corruption. */
    copy[24] = 0x81;
    CHECK(write_file(bad, copy, len));
    CHECK_STATUS(floe_reader_open(bad, &r), FLOE_CORRUPT_ARCHIVE);
    CHECK(r == NULL);

    free(copy);
    free(a);
}

int main(void) {
    int i;
    char path[2048], path2[2048];
    tmp_setup();
    g_big = malloc(BIG_VALUE_LEN);
    for (i = 0; i < BIG_VALUE_LEN; i++) g_big[i] = (unsigned char)(i * 7 + i / 251);
    snprintf(path, sizeof path, "%s", tmp_path("ref.floe"));
    snprintf(path2, sizeof path2, "%s", tmp_path("ref-default.floe"));
    write_reference(path, 4096);
    test_writer_misuse();
    test_reader(path);
    test_buffer_reader(path);
    test_damaged(path);
    /* Default block size too. */
    write_reference(path2, 0);
    test_reader(path2);
    CHECK(count_leftovers(g_tmp) == 0);
    free(g_big);
    tmp_teardown();
    return harness_finish("test_writer_reader");
}
