/* ABI evolution and the things around it (issue 12, items 6 and 15):
 *  - option structs carry struct_size: a struct of an older header (fewer
 *    fields) still works and its missing fields take their defaults; sizes
 *    that no version has are refused; a newer header's fields must be zero;
 *  - export and the writer refuse an existing file unless `overwrite`;
 *  - the header fields are readable without JSON;
 *  - the reader and writer handles say they take local paths only. */
#include "harness.h"

#include <stddef.h>

/* floe_export_options and floe_writer_options as their first versions
 * declared them: everything before `overwrite`. */
typedef struct {
    size_t struct_size;
    int32_t level;
    uint32_t threads;
    uint32_t block_size;
    const char *const *keyspaces;
    size_t keyspace_count;
} export_options_v1;

typedef struct {
    size_t struct_size;
    int32_t level;
    uint32_t block_size;
} writer_options_v1;

/* A struct of a newer header: one more field after this header's. */
typedef struct {
    floe_export_options known;
    uint64_t future;
} export_options_next;

_Static_assert(offsetof(export_options_v1, keyspace_count) == offsetof(floe_export_options, keyspace_count),
               "the v1 prefix must be laid out as the current struct");
_Static_assert(sizeof(export_options_v1) < sizeof(floe_export_options), "v1 is smaller");
_Static_assert(offsetof(writer_options_v1, block_size) == offsetof(floe_writer_options, block_size), "v1 prefix");
_Static_assert(sizeof(writer_options_v1) < sizeof(floe_writer_options), "v1 is smaller");

/* A small archive from the writer (one keyspace, `n` records). */
static void write_small(const char *path, int n) {
    floe_writer *w = NULL;
    char key[16];
    int i;
    CHECK_OK(floe_writer_create(path, NULL, &w));
    CHECK_OK(floe_writer_begin_keyspace(w, "ks", NULL));
    for (i = 0; i < n; i++) {
        snprintf(key, sizeof key, "k%06d", i);
        CHECK_OK(floe_writer_put(w, (const uint8_t *)key, strlen(key), (const uint8_t *)"value", 5));
    }
    CHECK_OK(floe_writer_finish(w, NULL));
    floe_writer_free(w);
}

static int32_t level_of(const char *path) {
    floe_reader *r = NULL;
    int32_t level = -1000;
    if (floe_reader_open(path, &r) != FLOE_OK) return -1000;
    CHECK_OK(floe_reader_level(r, &level));
    floe_reader_free(r);
    return level;
}

static int same_bytes(const char *path, const unsigned char *want, size_t want_len) {
    size_t len = 0;
    unsigned char *got = read_file(path, &len);
    int same = got != NULL && len == want_len && memcmp(got, want, len) == 0;
    free(got);
    return same;
}

static void test_initialisers(void) {
    unsigned char buf[sizeof(floe_export_options) + 16];
    floe_export_options eo;
    floe_import_options io;
    floe_writer_options wo;
    size_t i;
    int untouched = 1;

    memset(&eo, 0x5A, sizeof eo);
    CHECK_OK(floe_export_options_default(&eo, sizeof eo));
    CHECK(eo.struct_size == sizeof eo && eo.level == 0 && eo.threads == 0 && eo.block_size == 0);
    CHECK(eo.keyspaces == NULL && eo.keyspace_count == 0 && !eo.overwrite);
    CHECK_OK(floe_import_options_default(&io, sizeof io));
    CHECK(io.struct_size == sizeof io && !io.replace && io.keyspaces == NULL);
    CHECK_OK(floe_writer_options_default(&wo, sizeof wo));
    CHECK(wo.struct_size == sizeof wo && wo.level == 0 && !wo.overwrite);

    /* An older header's struct: exactly its bytes are written, never more. */
    memset(buf, 0xEE, sizeof buf);
    CHECK_OK(floe_export_options_default((floe_export_options *)(void *)buf, sizeof(export_options_v1)));
    CHECK(((export_options_v1 *)(void *)buf)->struct_size == sizeof(export_options_v1));
    for (i = sizeof(export_options_v1); i < sizeof buf; i++) untouched = untouched && buf[i] == 0xEE;
    CHECK(untouched);

    /* Sizes no version has: refused, nothing written. */
    memset(&eo, 0x5A, sizeof eo);
    CHECK_STATUS(floe_export_options_default(&eo, 0), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("struct_size is 0");
    CHECK_STATUS(floe_export_options_default(&eo, sizeof(size_t)), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("smaller than the first version of floe_export_options");
    CHECK(eo.level == 0x5A5A5A5A);
    CHECK_STATUS(floe_writer_options_default(&wo, 4), FLOE_INVALID_ARGUMENT);
    CHECK_STATUS(floe_import_options_default(&io, 1), FLOE_INVALID_ARGUMENT);
    CHECK_STATUS(floe_export_options_default(NULL, sizeof eo), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_import_options_default(NULL, sizeof io), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_writer_options_default(NULL, sizeof wo), FLOE_NULL_ARGUMENT);
}

/* Struct sizes at the operations: 0, too small, implausible, older, newer. */
static void test_struct_sizes(const char *db) {
    floe_export_options eo;
    floe_import_options io;
    floe_writer_options wo;
    floe_writer *w = NULL;
    char out[4200];
    snprintf(out, sizeof out, "%s", tmp_path("sizes.floe"));

    /* A struct left zeroed (struct_size 0) is refused, with advice. */
    memset(&eo, 0, sizeof eo);
    CHECK_STATUS(floe_export(db, out, &eo, NULL, NULL, NULL), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("floe_export_options.struct_size is 0");
    CHECK_ERROR_MENTIONS("floe_export_options_default");
    CHECK(!path_exists(out));
    memset(&io, 0, sizeof io);
    CHECK_STATUS(floe_import(out, tmp_path("sizes-db"), &io, NULL, NULL, NULL), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("floe_import_options.struct_size is 0");
    memset(&wo, 0, sizeof wo);
    CHECK_STATUS(floe_writer_create(out, &wo, &w), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("floe_writer_options.struct_size is 0");
    CHECK(w == NULL && !path_exists(out));

    /* Smaller than the first version, or implausibly large. */
    CHECK_OK(floe_export_options_default(&eo, sizeof eo));
    eo.struct_size = sizeof(export_options_v1) - 1;
    CHECK_STATUS(floe_export(db, out, &eo, NULL, NULL, NULL), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("smaller than the first version");
    eo.struct_size = (size_t)1 << 20;
    CHECK_STATUS(floe_export(db, out, &eo, NULL, NULL, NULL), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("is the struct initialised?");
    CHECK_OK(floe_writer_options_default(&wo, sizeof wo));
    wo.struct_size = sizeof(writer_options_v1) - 4;
    CHECK_STATUS(floe_writer_create(out, &wo, &w), FLOE_INVALID_ARGUMENT);
    CHECK(!path_exists(out));

    /* A newer header's struct: accepted while its extra field is zero. */
    {
        export_options_next next;
        CHECK_OK(floe_export_options_default(&next.known, sizeof next));
        CHECK(next.known.struct_size == sizeof next && next.future == 0);
        next.known.level = 2;
        CHECK_OK(floe_export(db, out, &next.known, NULL, NULL, NULL));
        CHECK(level_of(out) == 2);
        next.future = 1;
        next.known.overwrite = true;
        CHECK_STATUS(floe_export(db, out, &next.known, NULL, NULL, NULL), FLOE_INVALID_ARGUMENT);
        CHECK_ERROR_MENTIONS("newer floe.h");
        CHECK(level_of(out) == 2);
    }
}

/* A program built against the first version of the structs: its fields are
 * honoured, and the library reads no byte past its struct (the byte where
 * `overwrite` would be is 1; valgrind also sees any read past the heap block
 * of exactly the old size). */
static void test_older_structs(const char *db) {
    char out[4200];
    snprintf(out, sizeof out, "%s", tmp_path("v1.floe"));
    unsigned char *buf = malloc(sizeof(floe_export_options));
    export_options_v1 *v1 = malloc(sizeof *v1);
    export_options_v1 init;
    size_t len = 0;
    unsigned char *before;

    memset(&init, 0, sizeof init);
    init.struct_size = sizeof init;
    init.level = 7;
    init.block_size = 8192;

    /* Exactly the old size on the heap. */
    *v1 = init;
    CHECK_OK(floe_export(db, out, (const floe_export_options *)(const void *)v1, NULL, NULL, NULL));
    CHECK(level_of(out) == 7);

    /* The same struct followed by a 1 where `overwrite` would be: not read, so
     * the existing file is refused. */
    memset(buf, 1, sizeof(floe_export_options));
    memcpy(buf, &init, sizeof init);
    before = read_file(out, &len);
    CHECK_STATUS(floe_export(db, out, (const floe_export_options *)(const void *)buf, NULL, NULL, NULL),
                 FLOE_TARGET_EXISTS);
    CHECK(same_bytes(out, before, len));
    /* At the current size that byte is read: now it overwrites. */
    ((floe_export_options *)(void *)buf)->struct_size = sizeof(floe_export_options);
    ((floe_export_options *)(void *)buf)->level = 3;
    ((floe_export_options *)(void *)buf)->overwrite = true;
    CHECK_OK(floe_export(db, out, (const floe_export_options *)(const void *)buf, NULL, NULL, NULL));
    CHECK(level_of(out) == 3);
    free(before);

    /* The writer's first version likewise. */
    {
        writer_options_v1 *wv1 = malloc(sizeof *wv1);
        unsigned char *wbuf = malloc(sizeof(floe_writer_options));
        char wout[4200];
        snprintf(wout, sizeof wout, "%s", tmp_path("writer-v1.floe"));
        floe_writer *w = NULL;
        wv1->struct_size = sizeof *wv1;
        wv1->level = 9;
        wv1->block_size = 0;
        CHECK_OK(floe_writer_create(wout, (const floe_writer_options *)(const void *)wv1, &w));
        CHECK_OK(floe_writer_begin_keyspace(w, "ks", NULL));
        CHECK_OK(floe_writer_finish(w, NULL));
        floe_writer_free(w);
        w = NULL;
        CHECK(level_of(wout) == 9);
        memset(wbuf, 1, sizeof(floe_writer_options));
        memcpy(wbuf, wv1, sizeof *wv1);
        CHECK_STATUS(floe_writer_create(wout, (const floe_writer_options *)(const void *)wbuf, &w), FLOE_TARGET_EXISTS);
        CHECK(w == NULL);
        free(wbuf);
        free(wv1);
    }
    free(buf);
    free(v1);
}

/* Item 6: no clobbering unless asked. */
static void test_overwrite(const char *db) {
    char out[4200];
    snprintf(out, sizeof out, "%s", tmp_path("exists.floe"));
    floe_export_options eo;
    floe_writer_options wo;
    floe_writer *w = NULL;
    unsigned char *before;
    size_t len = 0;

    CHECK_OK(floe_export(db, out, NULL, NULL, NULL, NULL));
    before = read_file(out, &len);
    CHECK(before != NULL && len > 0);

    /* Export: refused by default (NULL options too), naming the file and the switch. */
    CHECK_STATUS(floe_export(db, out, NULL, NULL, NULL, NULL), FLOE_TARGET_EXISTS);
    CHECK_ERROR_MENTIONS(out);
    CHECK_ERROR_MENTIONS("already exists");
    CHECK_ERROR_MENTIONS("options->overwrite");
    CHECK_OK(floe_export_options_default(&eo, sizeof eo));
    eo.level = 12;
    CHECK_STATUS(floe_export(db, out, &eo, NULL, NULL, NULL), FLOE_TARGET_EXISTS);
    CHECK(same_bytes(out, before, len));
    /* Refused before the database is opened: a missing database is not even noticed. */
    CHECK_STATUS(floe_export(tmp_path("no-such-db"), out, &eo, NULL, NULL, NULL), FLOE_TARGET_EXISTS);
    CHECK(count_leftovers(g_tmp) == 0);
    eo.overwrite = true;
    CHECK_OK(floe_export(db, out, &eo, NULL, NULL, NULL));
    CHECK(level_of(out) == 12);

    /* Writer: refused at create by default; replaced with overwrite. */
    CHECK_STATUS(floe_writer_create(out, NULL, &w), FLOE_TARGET_EXISTS);
    CHECK_ERROR_MENTIONS(out);
    CHECK_ERROR_MENTIONS("floe_writer_create()");
    CHECK(w == NULL);
    CHECK_OK(floe_writer_options_default(&wo, sizeof wo));
    CHECK_STATUS(floe_writer_create(out, &wo, &w), FLOE_TARGET_EXISTS);
    CHECK(level_of(out) == 12);
    wo.overwrite = true;
    wo.level = 4;
    CHECK_OK(floe_writer_create(out, &wo, &w));
    CHECK_OK(floe_writer_begin_keyspace(w, "only", NULL));
    CHECK_OK(floe_writer_finish(w, NULL));
    floe_writer_free(w);
    w = NULL;
    CHECK(level_of(out) == 4);

    /* A file that appears while the writer runs is left alone. */
    {
        char late[4200];
        snprintf(late, sizeof late, "%s", tmp_path("late.floe"));
        static const unsigned char mine[] = "the user's file";
        CHECK_OK(floe_writer_create(late, NULL, &w));
        CHECK_OK(floe_writer_begin_keyspace(w, "ks", NULL));
        CHECK_OK(floe_writer_put(w, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1));
        CHECK(write_file(late, mine, sizeof mine));
        CHECK_STATUS(floe_writer_finish(w, NULL), FLOE_TARGET_EXISTS);
        CHECK_ERROR_MENTIONS(late);
        CHECK(same_bytes(late, mine, sizeof mine));
        floe_writer_free(w);
        CHECK(count_leftovers(g_tmp) == 0);
    }
    free(before);
}

/* Item 15: the header fields without JSON. */
static void test_header_accessors(const char *db) {
    char out[4200];
    snprintf(out, sizeof out, "%s", tmp_path("header.floe"));
    floe_export_options eo;
    floe_export_summary es;
    floe_reader *r = NULL;
    floe_version_info v = floe_version();
    uint16_t major = 0, minor = 99;
    uint64_t seqno = 1, features = 1;
    int64_t created = 0;
    int32_t level = 0;
    uint32_t block_target = 0;
    const char *s = NULL;
    size_t len = 99;
    char writer[64];

    setenv("SOURCE_DATE_EPOCH", "1700000123", 1);
    CHECK_OK(floe_export_options_default(&eo, sizeof eo));
    eo.level = 6;
    eo.block_size = 16384;
    CHECK_OK(floe_export(db, out, &eo, NULL, NULL, &es));
    unsetenv("SOURCE_DATE_EPOCH");
    CHECK(es.snapshot_seqno > 0);

    CHECK_OK(floe_reader_open(out, &r));
    CHECK_OK(floe_reader_format_version(r, &major, &minor));
    CHECK(major == FLOE_FORMAT_MAJOR && minor == FLOE_FORMAT_MINOR);
    CHECK_OK(floe_reader_optional_features(r, &features));
    CHECK(features == 0);
    CHECK_OK(floe_reader_level(r, &level));
    CHECK(level == 6);
    CHECK_OK(floe_reader_block_target(r, &block_target));
    CHECK(block_target == 16384);
    CHECK_OK(floe_reader_snapshot_seqno(r, &seqno));
    CHECK(seqno == es.snapshot_seqno);
    CHECK_OK(floe_reader_created_unix(r, &created));
    CHECK(created == 1700000123);
    CHECK_OK(floe_reader_engine(r, &s, &len));
    CHECK(s && strcmp(s, "fjall") == 0 && len == 5);
    CHECK_OK(floe_reader_engine_version(r, &s, NULL)); /* the length is optional */
    CHECK(s && strcmp(s, v.engine_version) == 0);
    CHECK_OK(floe_reader_writer(r, &s, &len));
    snprintf(writer, sizeof writer, "floe %s", FLOE_VERSION_STRING);
    CHECK(s && strcmp(s, writer) == 0 && len == strlen(writer));

    /* NULL arguments. */
    CHECK_STATUS(floe_reader_level(NULL, &level), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_snapshot_seqno(r, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_created_unix(r, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_format_version(r, &major, NULL), FLOE_NULL_ARGUMENT);
    CHECK_STATUS(floe_reader_writer(r, NULL, &len), FLOE_NULL_ARGUMENT);
    floe_reader_free(r);

    /* An archive from the writer: no engine, no snapshot. */
    write_small(tmp_path("written.floe"), 3);
    CHECK_OK(floe_reader_open(tmp_path("written.floe"), &r));
    CHECK_OK(floe_reader_snapshot_seqno(r, &seqno));
    CHECK(seqno == 0);
    CHECK_OK(floe_reader_engine(r, &s, &len));
    CHECK(s && *s == 0 && len == 0);
    CHECK_OK(floe_reader_level(r, &level));
    CHECK(level == 1); /* the default */
    floe_reader_free(r);
}

/* Item 15: URLs. The reader takes s3:// URLs (as floe_verify() does); the
 * writer takes local files only. */
static void test_local_paths_only(void) {
    floe_reader *r = NULL;
    floe_writer *w = NULL;
    char url[4200];

    /* Without credentials (none are set for the tests), an s3:// URL is
     * refused before any request, naming the bucket, not as a missing file. */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_PROFILE");
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    CHECK_STATUS(floe_reader_open("s3://bucket/backup.floe", &r), FLOE_IO);
    CHECK_ERROR_MENTIONS("s3://bucket");
    CHECK_ERROR_MENTIONS("credentials");
    CHECK(strstr(floe_last_error(), "local paths only") == NULL);
    CHECK(strstr(floe_last_error(), "No such file") == NULL);
    CHECK(r == NULL);
    CHECK_STATUS(floe_reader_open("https://example.com/a.floe", &r), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("unsupported URL scheme");
    CHECK(r == NULL);
    CHECK_STATUS(floe_writer_create("s3://bucket/new.floe", NULL, &w), FLOE_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("local paths only");
    CHECK_ERROR_MENTIONS("floe_export()");
    CHECK(w == NULL && !path_exists("s3:"));

    /* A file:// URL is a local path. */
    write_small(tmp_path("url.floe"), 2);
    snprintf(url, sizeof url, "file://%s", tmp_path("url.floe"));
    CHECK_OK(floe_reader_open(url, &r));
    floe_reader_free(r);
    /* A missing local file is still an I/O error. */
    CHECK_STATUS(floe_reader_open(tmp_path("missing.floe"), &r), FLOE_IO);
    CHECK_ERROR_MENTIONS("No such file");
}

int main(void) {
    char db[2048];
    tmp_setup();
    snprintf(db, sizeof db, "%s", tmp_path("db"));
    write_small(tmp_path("source.floe"), 2000);
    CHECK_OK(floe_import(tmp_path("source.floe"), db, NULL, NULL, NULL, NULL));
    test_initialisers();
    test_struct_sizes(db);
    test_older_structs(db);
    test_overwrite(db);
    test_header_accessors(db);
    test_local_paths_only();
    CHECK(count_leftovers(g_tmp) == 0);
    tmp_teardown();
    return harness_finish("test_abi_evolution");
}
