/* Version, status names, the last error, and misuse of every function:
 * NULL pointers, invalid UTF-8, NULL buffers with a length, freeing NULL. */
#include "harness.h"

static const char BAD_UTF8[] = {(char)0xff, (char)0xfe, 'x', 0};

static void test_version(void) {
    floe_version_info v = floe_version();
    CHECK(v.version != NULL && strcmp(v.version, FLOE_VERSION_STRING) == 0);
    CHECK(v.major == FLOE_VERSION_MAJOR && v.minor == FLOE_VERSION_MINOR && v.patch == FLOE_VERSION_PATCH);
    CHECK(v.format_major == FLOE_FORMAT_MAJOR && v.format_minor == FLOE_FORMAT_MINOR);
    CHECK(v.engine != NULL && strcmp(v.engine, "fjall") == 0);
    CHECK(v.engine_version != NULL && v.engine_version[0] == '3');
    CHECK(v.description != NULL && strstr(v.description, FLOE_VERSION_STRING) != NULL);
    CHECK(strstr(v.description, v.engine_version) != NULL);
    CHECK(FLOE_VERSION_NUMBER == FLOE_VERSION_MAJOR * 1000000 + FLOE_VERSION_MINOR * 1000 + FLOE_VERSION_PATCH);
}

static void test_status_names(void) {
    CHECK(strcmp(floe_status_name(FLOE_OK), "FLOE_OK") == 0);
    CHECK(strcmp(floe_status_name(FLOE_DONE), "FLOE_DONE") == 0);
    CHECK(strcmp(floe_status_name(FLOE_CORRUPT_ARCHIVE), "FLOE_CORRUPT_ARCHIVE") == 0);
    CHECK(strcmp(floe_status_name(FLOE_PANIC), "FLOE_PANIC") == 0);
    CHECK(strcmp(floe_status_name(-1), "FLOE_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(floe_status_name(100000), "FLOE_UNKNOWN_STATUS") == 0);
    /* Fixed numbers (append-only). */
    CHECK(FLOE_OK == 0 && FLOE_DONE == 1 && FLOE_NULL_ARGUMENT == 2 && FLOE_INVALID_UTF8 == 3);
    CHECK(FLOE_INVALID_ARGUMENT == 4 && FLOE_INVALID_STATE == 5 && FLOE_IO == 6);
    CHECK(FLOE_CORRUPT_ARCHIVE == 7 && FLOE_UNSUPPORTED_VERSION == 8 && FLOE_DATABASE_LOCKED == 9);
    CHECK(FLOE_ENGINE == 10 && FLOE_TARGET_EXISTS == 11 && FLOE_CANCELLED == 12 && FLOE_PANIC == 13);
}

static void test_last_error(void) {
    floe_reader *r = NULL;
    CHECK(floe_last_error() != NULL);
    CHECK_STATUS(floe_reader_open(NULL, &r), FLOE_NULL_ARGUMENT);
    CHECK_ERROR_MENTIONS("path");
    CHECK(r == NULL); /* outputs untouched on failure */
    /* A successful call clears it. */
    {
        size_t n = 0;
        floe_writer *w = NULL;
        CHECK_OK(floe_writer_create(tmp_path("clear.floe"), NULL, &w));
        CHECK(strcmp(floe_last_error(), "") == 0);
        (void)n;
        floe_writer_free(w);
    }
    CHECK(!path_exists(tmp_path("clear.floe")));
}

static void test_null_arguments(void) {
    floe_reader *r = (floe_reader *)0x1; /* sentinels: must stay untouched */
    floe_iter *it = (floe_iter *)0x1;
    floe_writer *w = (floe_writer *)0x1;
    char *json = (char *)0x1;
    size_t n = 12345;
    floe_keyspace_info info;
    floe_record rec;
    const unsigned char buf[4] = {1, 2, 3, 4};

    CHECK_STATUS(floe_export(NULL, "a", NULL, NULL, NULL, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_export("db", NULL, NULL, NULL, NULL, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_import(NULL, "db", NULL, NULL, NULL, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_import("a", NULL, NULL, NULL, NULL, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_verify(NULL, false, 0, NULL, NULL, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_inspect_json(NULL, &json), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_inspect_json("a.floe", NULL), FLOE_NULL_ARGUMENT);
    CHECK(json == (char *)0x1);

    CHECK_STATUS(floe_reader_open(NULL, &r), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_open("x", NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_open_buffer(NULL, 10, &r), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_open_buffer(NULL, 0, &r), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_open_buffer(buf, sizeof buf, NULL), FLOE_NULL_ARGUMENT);
    CHECK(r == (floe_reader *)0x1);
    CHECK_STATUS(floe_reader_keyspace_count(NULL, &n), FLOE_NULL_ARGUMENT);
    CHECK(n == 12345);
    CHECK_STATUS(floe_reader_keyspace(NULL, 0, &info), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_find_keyspace(NULL, "a", &n), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_keyspace_options_json(NULL, 0, &json), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_inspect_json(NULL, &json), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_verify(NULL, false, 0, NULL, NULL, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_iter_keyspace(NULL, 0, &it), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_iter_all(NULL, &it), FLOE_NULL_ARGUMENT);
    CHECK(it == (floe_iter *)0x1);
    CHECK_STATUS(floe_iter_next(NULL, &rec), FLOE_NULL_ARGUMENT);

    CHECK_STATUS(floe_writer_create(NULL, NULL, &w), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_writer_create(tmp_path("w.floe"), NULL, NULL), FLOE_NULL_ARGUMENT);
    CHECK(w == (floe_writer *)0x1);
    CHECK_STATUS(floe_writer_begin_keyspace(NULL, "ks", NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_writer_put(NULL, buf, 1, buf, 1), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_writer_finish(NULL, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_writer_abort(NULL), FLOE_NULL_ARGUMENT);
    CHECK(!path_exists(tmp_path("w.floe")));

    /* Every _free accepts NULL. */
    floe_reader_free(NULL);
    floe_iter_free(NULL);
    floe_writer_free(NULL);
    floe_string_free(NULL);

    /* Option arrays: NULL with a count is refused. */
    {
        floe_export_options eo;
        floe_import_options io;
        CHECK_OK(floe_export_options_default(&eo, sizeof eo));
        CHECK_OK(floe_import_options_default(&io, sizeof io));
        eo.keyspace_count = 2;
        io.keyspace_count = 1;
        CHECK_STATUS(floe_export(tmp_path("nodb"), tmp_path("x.floe"), &eo, NULL, NULL, NULL), FLOE_NULL_ARGUMENT);
        CHECK_STATUS(floe_import(tmp_path("x.floe"), tmp_path("nodb"), &io, NULL, NULL, NULL), FLOE_NULL_ARGUMENT);
        {
            const char *names[2] = {"a", NULL};
            eo.keyspaces = names;
            CHECK_STATUS(floe_export(tmp_path("nodb"), tmp_path("x.floe"), &eo, NULL, NULL, NULL), FLOE_NULL_ARGUMENT);
            CHECK_ERROR_MENTIONS("keyspaces[1]");
        }
    }
}

static void test_invalid_utf8(void) {
    floe_reader *r = NULL;
    floe_writer *w = NULL;
    char *json = NULL;
    size_t n = 0;
    CHECK_STATUS(floe_export(BAD_UTF8, "a", NULL, NULL, NULL, NULL), FLOE_INVALID_UTF8);
    CHECK_ERROR_MENTIONS("UTF-8");
    CHECK_STATUS(floe_export("db", BAD_UTF8, NULL, NULL, NULL, NULL), FLOE_INVALID_UTF8);
    CHECK_STATUS(floe_import(BAD_UTF8, "db", NULL, NULL, NULL, NULL), FLOE_INVALID_UTF8);
    CHECK_STATUS(floe_import("a", BAD_UTF8, NULL, NULL, NULL, NULL), FLOE_INVALID_UTF8);
    CHECK_STATUS(floe_verify(BAD_UTF8, true, 1, NULL, NULL, NULL), FLOE_INVALID_UTF8);
    CHECK_STATUS(floe_inspect_json(BAD_UTF8, &json), FLOE_INVALID_UTF8);
    CHECK_STATUS(floe_reader_open(BAD_UTF8, &r), FLOE_INVALID_UTF8);
    CHECK_STATUS(floe_writer_create(BAD_UTF8, NULL, &w), FLOE_INVALID_UTF8);
    {
        floe_export_options eo;
        const char *names[1] = {BAD_UTF8};
        CHECK_OK(floe_export_options_default(&eo, sizeof eo));
        eo.keyspaces = names;
        eo.keyspace_count = 1;
        CHECK_STATUS(floe_export("db", "a", &eo, NULL, NULL, NULL), FLOE_INVALID_UTF8);
    }

    CHECK_OK(floe_writer_create(tmp_path("utf8.floe"), NULL, &w));
    CHECK_STATUS(floe_writer_begin_keyspace(w, BAD_UTF8, NULL), FLOE_INVALID_UTF8);
    CHECK_STATUS(floe_writer_begin_keyspace(w, "ok", BAD_UTF8), FLOE_INVALID_UTF8);
    CHECK_OK(floe_writer_begin_keyspace(w, "ok", NULL));
    CHECK_OK(floe_writer_put(w, (const uint8_t *)"k", 1, NULL, 0));
    CHECK_OK(floe_writer_finish(w, NULL));
    floe_writer_free(w);

    CHECK_OK(floe_reader_open(tmp_path("utf8.floe"), &r));
    CHECK_STATUS(floe_reader_find_keyspace(r, BAD_UTF8, &n), FLOE_INVALID_UTF8);
    CHECK_STATUS(floe_reader_find_keyspace(r, "ok", NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_find_keyspace(r, NULL, &n), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_keyspace_count(r, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_keyspace(r, 0, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_keyspace_options_json(r, 0, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_inspect_json(r, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_iter_all(r, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_iter_keyspace(r, 0, NULL), FLOE_NULL_ARGUMENT);
    {
        floe_iter *it = NULL;
        CHECK_OK(floe_reader_iter_all(r, &it));
        CHECK_STATUS(floe_iter_next(it, NULL), FLOE_NULL_ARGUMENT);
        floe_iter_free(it);
    }
    floe_reader_free(r);
}

int main(void) {
    tmp_setup();
    test_version();
    test_status_names();
    test_last_error();
    test_null_arguments();
    test_invalid_utf8();
    CHECK(count_leftovers(g_tmp) == 0);
    tmp_teardown();
    return harness_finish("test_api_misuse");
}
