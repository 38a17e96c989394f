/*
 * roundtrip: export a fjall database with libfloe, inspect the archive, and
 * import it into a new database.
 *
 *     roundtrip DB_DIR ARCHIVE NEW_DB_DIR
 *
 * Build (from the repository root), against the shared library:
 *
 *     cargo build --release -p floe-ffi
 *     cc -std=c11 -Wall -Wextra -pedantic -Iinclude ffi/examples/roundtrip.c \
 *        -Ltarget/release -lfloe -Wl,-rpath,"$PWD/target/release" -o target/roundtrip
 *
 * or statically:
 *
 *     cc -std=c11 -Wall -Wextra -pedantic -Iinclude ffi/examples/roundtrip.c \
 *        target/release/libfloe.a -lpthread -ldl -lm -o target/roundtrip-static
 *
 * Try it on the sample database of `floe demo`:
 *
 *     target/release/floe demo --records 20000 --keep /tmp/floe-demo
 *     target/roundtrip /tmp/floe-demo/sample-db /tmp/floe-demo/copy.floe /tmp/floe-demo/copy-db
 */
#include <stdio.h>
#include <stdlib.h>

#include "floe.h"

/* Progress: one line per report on stderr. Return non-zero to cancel. */
static int show_progress(void *user_data, const floe_progress *p) {
    const char *what = user_data;
    if (p->bytes_total > 0) {
        fprintf(stderr, "\r%s: %llu of %llu bytes, %llu records", what, (unsigned long long)p->bytes_done,
                (unsigned long long)p->bytes_total, (unsigned long long)p->records_done);
    } else {
        fprintf(stderr, "\r%s: %llu bytes, %llu records", what, (unsigned long long)p->bytes_done,
                (unsigned long long)p->records_done);
    }
    return 0;
}

static int fail(const char *what, floe_status st) {
    fprintf(stderr, "\n%s failed: %s: %s\n", what, floe_status_name((int)st), floe_last_error());
    return 1;
}

int main(int argc, char **argv) {
    floe_version_info v = floe_version();
    floe_export_summary es;
    floe_verify_report vr;
    floe_import_summary is;
    char *json = NULL;
    floe_status st;

    if (argc != 4) {
        fprintf(stderr, "usage: %s DB_DIR ARCHIVE NEW_DB_DIR\n", argv[0]);
        return 2;
    }
    printf("%s (header %s)\n", v.description, FLOE_VERSION_STRING);

    st = floe_export(argv[1], argv[2], NULL, show_progress, "export", &es);
    if (st != FLOE_OK) return fail("export", st);
    printf("\nexported %llu records in %llu keyspaces: %llu raw bytes -> %llu archive bytes (%.2fs)\n",
           (unsigned long long)es.write.records, (unsigned long long)es.write.keyspaces,
           (unsigned long long)es.write.raw_bytes, (unsigned long long)es.write.archive_bytes, es.elapsed_seconds);

    st = floe_verify(argv[2], false, 0, show_progress, "verify", &vr);
    if (st != FLOE_OK) return fail("verify", st);
    printf("\nverified %llu blocks, %llu records\n", (unsigned long long)vr.blocks, (unsigned long long)vr.records);

    st = floe_inspect_json(argv[2], &json);
    if (st != FLOE_OK) return fail("inspect", st);
    printf("%s\n", json);
    floe_string_free(json);

    st = floe_import(argv[2], argv[3], NULL, show_progress, "import", &is);
    if (st != FLOE_OK) return fail("import", st);
    printf("\nimported %llu records in %llu keyspaces into %s (%.2fs)\n", (unsigned long long)is.records,
           (unsigned long long)is.keyspaces, argv[3], is.elapsed_seconds);
    if (is.warnings) {
        printf("warnings:\n%s\n", is.warnings);
        floe_string_free(is.warnings);
    }
    return 0;
}
