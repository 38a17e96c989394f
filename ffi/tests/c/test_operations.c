/* Whole operations: import, export, verify and inspect, with progress
 * callbacks, keyspace selection, existing targets, and cancellation from the
 * callback (which must leave nothing behind). */
#include "harness.h"

struct counter {
    int calls;
    int cancel_at; /* cancel on this call (1-based); 0 = never */
    floe_phase phase;
    int phase_ok;
    uint64_t last_bytes;
    int monotonic;
};

static int on_progress(void *user_data, const floe_progress *p) {
    struct counter *c = user_data;
    c->calls++;
    if (p->phase != c->phase) c->phase_ok = 0;
    if (p->bytes_done < c->last_bytes) c->monotonic = 0;
    c->last_bytes = p->bytes_done;
    return c->cancel_at != 0 && c->calls >= c->cancel_at;
}

static struct counter counter(floe_phase phase, int cancel_at) {
    struct counter c;
    memset(&c, 0, sizeof c);
    c.phase = phase;
    c.phase_ok = 1;
    c.monotonic = 1;
    c.cancel_at = cancel_at;
    return c;
}

/* Two keyspaces, "alpha" (200 records) and "beta" (300), in small blocks. */
static void write_source(const char *path) {
    floe_writer *w = NULL;
    floe_writer_options o;
    char key[32], val[128];
    int i;
    CHECK_OK(floe_writer_options_default(&o, sizeof o));
    o.block_size = 4096;
    CHECK_OK(floe_writer_create(path, &o, &w));
    CHECK_OK(floe_writer_begin_keyspace(w, "beta", "{\"compaction\": {\"strategy\": \"fifo\", \"limit_bytes\": 1000000000, \"ttl_seconds\": null}}"));
    for (i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "b%05d", i);
        snprintf(val, sizeof val, "beta value %d with some padding to fill blocks ....................", i);
        CHECK_OK(floe_writer_put(w, (const uint8_t *)key, strlen(key), (const uint8_t *)val, strlen(val)));
    }
    CHECK_OK(floe_writer_begin_keyspace(w, "alpha", NULL));
    for (i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "a%05d", i);
        snprintf(val, sizeof val, "alpha %d", i);
        CHECK_OK(floe_writer_put(w, (const uint8_t *)key, strlen(key), (const uint8_t *)val, strlen(val)));
    }
    CHECK_OK(floe_writer_finish(w, NULL));
    floe_writer_free(w);
}

/* True if the two archives hold the same keyspaces and records. */
static int same_records(const char *a, const char *b) {
    floe_reader *ra = NULL, *rb = NULL;
    floe_iter *ia = NULL, *ib = NULL;
    floe_record x, y;
    int same = 1;
    size_t na = 0, nb = 0;
    if (floe_reader_open(a, &ra) != FLOE_OK || floe_reader_open(b, &rb) != FLOE_OK) {
        floe_reader_free(ra);
        return 0;
    }
    floe_reader_keyspace_count(ra, &na);
    floe_reader_keyspace_count(rb, &nb);
    same = na == nb;
    floe_reader_iter_all(ra, &ia);
    floe_reader_iter_all(rb, &ib);
    while (same) {
        floe_status sa = floe_iter_next(ia, &x), sb = floe_iter_next(ib, &y);
        if (sa != sb) same = 0;
        if (sa != FLOE_OK) break;
        same = same && x.keyspace == y.keyspace && x.key_len == y.key_len && x.value_len == y.value_len &&
               memcmp(x.key, y.key, x.key_len) == 0 && memcmp(x.value, y.value, x.value_len) == 0;
    }
    floe_iter_free(ia);
    floe_iter_free(ib);
    floe_reader_free(ra);
    floe_reader_free(rb);
    return same;
}

static void test_round_trip(void) {
    char src[2048], db[2048], out[2048];
    struct counter c;
    floe_import_summary is;
    floe_export_summary es;
    floe_verify_report vr;
    char *json = NULL;

    snprintf(src, sizeof src, "%s", tmp_path("source.floe"));
    snprintf(db, sizeof db, "%s", tmp_path("db"));
    snprintf(out, sizeof out, "%s", tmp_path("exported.floe"));
    write_source(src);

    c = counter(FLOE_PHASE_IMPORT, 0);
    memset(&is, 0, sizeof is);
    CHECK_OK(floe_import(src, db, NULL, on_progress, &c, &is));
    CHECK(is.records == 500 && is.keyspaces == 2 && is.raw_bytes > 0);
    CHECK(is.warnings == NULL);
    CHECK(c.calls >= 1 && c.phase_ok && c.last_bytes == is.raw_bytes);
    CHECK(path_exists(db));

    c = counter(FLOE_PHASE_EXPORT, 0);
    CHECK_OK(floe_export(db, out, NULL, on_progress, &c, &es));
    CHECK(es.write.records == 500 && es.write.keyspaces == 2 && es.elapsed_seconds >= 0.0);
    CHECK(c.calls >= 1 && c.phase_ok && c.monotonic);
    CHECK(same_records(src, out));

    c = counter(FLOE_PHASE_VERIFY, 0);
    CHECK_OK(floe_verify(out, false, 2, on_progress, &c, &vr));
    CHECK(vr.records == 500 && vr.keyspaces == 2 && !vr.quick);
    CHECK(c.calls >= 1 && c.phase_ok);
    c = counter(FLOE_PHASE_VERIFY, 0);
    CHECK_OK(floe_verify(out, true, 1, on_progress, &c, &vr));
    CHECK(vr.quick && c.calls >= 1);

    CHECK_OK(floe_inspect_json(out, &json));
    CHECK(json != NULL && strstr(json, "\"engine\": \"fjall\"") && strstr(json, "\"strategy\": \"fifo\""));
    floe_string_free(json);

    /* Export options: one keyspace, another level and block size, one thread. */
    {
        floe_export_options eo;
        const char *names[1] = {"beta"};
        floe_reader *r = NULL;
        size_t n = 0;
        CHECK_OK(floe_export_options_default(&eo, sizeof eo));
        eo.level = 19;
        eo.threads = 1;
        eo.block_size = 8192;
        eo.keyspaces = names;
        eo.keyspace_count = 1;
        CHECK_OK(floe_export(db, tmp_path("beta.floe"), &eo, NULL, NULL, &es));
        CHECK(es.write.records == 300 && es.write.keyspaces == 1);
        CHECK_OK(floe_reader_open(tmp_path("beta.floe"), &r));
        CHECK_OK(floe_reader_keyspace_count(r, &n));
        CHECK(n == 1);
        floe_reader_free(r);
        names[0] = "gamma";
        CHECK_STATUS(floe_export(db, tmp_path("gamma.floe"), &eo, NULL, NULL, NULL), FLOE_INVALID_ARGUMENT);
        CHECK_ERROR_MENTIONS("gamma");
        CHECK(!path_exists(tmp_path("gamma.floe")));
        eo.keyspaces = NULL;
        eo.keyspace_count = 0;
        eo.block_size = 100;
        CHECK_STATUS(floe_export(db, tmp_path("small.floe"), &eo, NULL, NULL, NULL), FLOE_INVALID_ARGUMENT);
        CHECK(!path_exists(tmp_path("small.floe")));
    }

    /* Import options: existing target, replace, keyspace selection. */
    {
        floe_import_options io;
        const char *names[1] = {"alpha"};
        CHECK_STATUS(floe_import(src, db, NULL, NULL, NULL, NULL), FLOE_TARGET_EXISTS);
        CHECK_OK(floe_import_options_default(&io, sizeof io));
        io.replace = true;
        io.threads = 1;
        io.keyspaces = names;
        io.keyspace_count = 1;
        CHECK_OK(floe_import(src, db, &io, NULL, NULL, &is));
        CHECK(is.records == 200 && is.keyspaces == 1);
        names[0] = "nope";
        CHECK_STATUS(floe_import(src, tmp_path("db-nope"), &io, NULL, NULL, NULL), FLOE_INVALID_ARGUMENT);
        CHECK(!path_exists(tmp_path("db-nope")));
        CHECK_OK(floe_export(db, tmp_path("alpha-only.floe"), NULL, NULL, NULL, &es));
        CHECK(es.write.records == 200 && es.write.keyspaces == 1);
    }

    /* Not a database. */
    CHECK_STATUS(floe_export(tmp_path("nothing-here"), tmp_path("x.floe"), NULL, NULL, NULL, NULL), FLOE_ENGINE);
    CHECK(!path_exists(tmp_path("x.floe")));
    CHECK_STATUS(floe_import(tmp_path("no-archive.floe"), tmp_path("db-x"), NULL, NULL, NULL, NULL), FLOE_IO);
}

static void test_cancellation(void) {
    char src[2048], db[2048];
    struct counter c;
    int before;
    snprintf(src, sizeof src, "%s", tmp_path("cancel-src.floe"));
    snprintf(db, sizeof db, "%s", tmp_path("cancel-db"));
    write_source(src);
    CHECK_OK(floe_import(src, db, NULL, NULL, NULL, NULL));
    before = count_entries(g_tmp);

    /* Export: no archive, no temporary file. */
    c = counter(FLOE_PHASE_EXPORT, 1);
    CHECK_STATUS(floe_export(db, tmp_path("cancelled.floe"), NULL, on_progress, &c, NULL), FLOE_CANCELLED);
    CHECK_ERROR_MENTIONS("cancelled");
    CHECK(c.calls == 1);
    CHECK(!path_exists(tmp_path("cancelled.floe")));
    CHECK(count_entries(g_tmp) == before);

    /* Import to a new target: nothing created. */
    c = counter(FLOE_PHASE_IMPORT, 1);
    CHECK_STATUS(floe_import(src, tmp_path("cancelled-db"), NULL, on_progress, &c, NULL), FLOE_CANCELLED);
    CHECK(c.calls >= 1);
    CHECK(!path_exists(tmp_path("cancelled-db")));
    CHECK(count_entries(g_tmp) == before);

    /* Import replacing an existing database: the old one stays. */
    {
        floe_import_options io;
        floe_export_summary es;
        CHECK_OK(floe_import_options_default(&io, sizeof io));
        io.replace = true;
        c = counter(FLOE_PHASE_IMPORT, 2);
        CHECK_STATUS(floe_import(src, db, &io, on_progress, &c, NULL), FLOE_CANCELLED);
        CHECK(count_entries(g_tmp) == before);
        CHECK_OK(floe_export(db, tmp_path("still.floe"), NULL, NULL, NULL, &es));
        CHECK(es.write.records == 500);
    }

    /* Verify, of a file and of an open reader. */
    {
        floe_reader *r = NULL;
        floe_verify_report vr;
        memset(&vr, 0x5A, sizeof vr);
        c = counter(FLOE_PHASE_VERIFY, 1);
        CHECK_STATUS(floe_verify(src, false, 1, on_progress, &c, &vr), FLOE_CANCELLED);
        CHECK(vr.records == 0x5A5A5A5A5A5A5A5Aull); /* untouched on failure */
        CHECK_OK(floe_reader_open(src, &r));
        c = counter(FLOE_PHASE_VERIFY, 1);
        CHECK_STATUS(floe_reader_verify(r, true, 1, on_progress, &c, NULL), FLOE_CANCELLED);
        c = counter(FLOE_PHASE_VERIFY, 0);
        CHECK_OK(floe_reader_verify(r, false, 1, on_progress, &c, NULL));
        floe_reader_free(r);
    }
    CHECK(count_leftovers(g_tmp) == 0);
}

int main(void) {
    tmp_setup();
    test_round_trip();
    test_cancellation();
    CHECK(count_leftovers(g_tmp) == 0);
    tmp_teardown();
    return harness_finish("test_operations");
}
