/*
 * The ABI rules of the extensible structs and flags (docs/C-API.md,
 * "Extensible structs" and "Flags"):
 * - each PROMSHM_*_INIT equals a zeroed struct with `size` set;
 * - a size of 0, 1-3, above 4096, or (for an input struct) one that ends
 *   inside a field is INVALID_ARGUMENT, and nothing is written;
 * - a caller built with an older, smaller struct still works: its fields are
 *   read, the missing ones take their defaults, and nothing past its size is
 *   written (canary bytes after the struct, and between the entries of a
 *   worker array, whose stride is the caller's size);
 * - a caller with a newer, larger struct gets the fields this library knows,
 *   `size` tells how many bytes were filled, the rest is untouched;
 * - a flag (promshm_area_options.eager) other than 0 or 1 is rejected;
 * - an area_options from before the file-check fields gets their defaults
 *   (a group-writable file is refused), whatever bytes follow it.
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define CANARY 0xA5
#define SENTINEL_PTR ((const promshm_area *)0x1)

/* Every byte of `p[0..n)` is CANARY. */
static int canary_intact(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != CANARY) return 0;
    return 1;
}

/* ---- older versions of the structs: prefixes of today's ---- */

/* promshm_area_options before `eager` existed. */
typedef struct {
    uint32_t size;
    uint32_t pages;
    uint32_t max_workers;
} old_area_options;

/* promshm_area_options before the file-check fields existed (`allow_owner`
 * and after), followed by bytes this older caller never meant as fields:
 * read as today's fields they would say allow_owner = 1 for uid 65534,
 * allow_group_write = 1, allow_other_write = 1, a 1 ms lock timeout. */
typedef struct {
    struct {
        uint32_t size;
        uint32_t pages;
        uint32_t max_workers;
        uint32_t eager;
    } o;
    uint32_t not_fields[5];
} old_area_options_with_tail;

/* promshm_metric_opts before labels existed. */
typedef struct {
    uint32_t size;
    promshm_update_mode update_mode;
    const char *name;
    const char *help;
    const char *unit;
} old_metric_opts;

/* promshm_area_stats with only its first counters. */
typedef struct {
    uint32_t size;
    uint32_t pages_total;
    uint32_t pages_used;
    size_t bytes_free;
    uint32_t max_workers;
    uint32_t format_version;
    uint64_t families;
} old_area_stats;

/* promshm_worker_info with only its identity. */
typedef struct {
    uint32_t size;
    uint32_t slot;
    uint32_t pid;
    uint32_t generation;
    uint64_t start_time;
} old_worker_info;

/* A newer promshm_area_stats: today's plus fields this library does not know. */
typedef struct {
    promshm_area_stats today;
    uint64_t later[4];
} new_area_stats;

static void check_initialisers(void) {
    promshm_area_options o = PROMSHM_AREA_OPTIONS_INIT, oz;
    memset(&oz, 0, sizeof oz);
    oz.size = sizeof oz;
    EXPECT(memcmp(&o, &oz, sizeof o) == 0);

    promshm_metric_opts m = PROMSHM_METRIC_OPTS_INIT, mz;
    memset(&mz, 0, sizeof mz);
    mz.size = sizeof mz;
    EXPECT(m.size == mz.size && m.update_mode == 0 && m.name == NULL && m.help == NULL &&
           m.unit == NULL && m.label_names == NULL && m.n_label_names == 0);

    promshm_area_stats s = PROMSHM_AREA_STATS_INIT, sz;
    memset(&sz, 0, sizeof sz);
    sz.size = sizeof sz;
    EXPECT(s.size == sz.size && s.created_ms == 0 && s.dropped_updates == 0 && s.families == 0 &&
           s.locks_taken == 0 && s.lock_timeouts == 0);

    promshm_worker_info w = PROMSHM_WORKER_INFO_INIT;
    EXPECT(w.size == sizeof w && w.pid == 0 && w.alive == 0 && w.flushes == 0);
}

int main(void) {
    check_initialisers();

    /* ---- input: promshm_area_options ---- */
    const promshm_area *area = SENTINEL_PTR;
    promshm_area_options opts = PROMSHM_AREA_OPTIONS_INIT;
    opts.size = 0; /* memset without a size: rejected, not read as defaults */
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_anonymous(&opts, &area));
    opts.size = 3;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_anonymous(&opts, &area));
    opts.size = 6; /* ends inside `pages` */
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_anonymous(&opts, &area));
    opts.size = 100000; /* uninitialised memory, not a newer struct */
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_anonymous(&opts, &area));
    opts.size = sizeof opts;
    opts.eager = 2; /* a flag is 0 or 1 */
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_anonymous(&opts, &area));
    opts.eager = 0xFFFFFFFFu;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_create("/tmp/promshm-abi-never", &opts, &area));
    EXPECT(area == SENTINEL_PTR);
    {
        char detail[256];
        promshm_last_error(detail, sizeof detail, NULL);
        EXPECT(strstr(detail, "eager") != NULL);
    }

    /* An older caller without `eager`: its fields are used, eager is 0. */
    old_area_options old_opts;
    memset(&old_opts, 0, sizeof old_opts);
    old_opts.size = sizeof old_opts;
    old_opts.pages = 128;
    old_opts.max_workers = 4;
    OK(promshm_area_anonymous((const promshm_area_options *)&old_opts, &area));

    /* An older caller without the file-check fields: a file its group may
     * write is refused by the defaults, whatever bytes follow its struct. */
    {
        char dir[] = "/tmp/promshm-c-abi-XXXXXX", path[256];
        if (!mkdtemp(dir)) FAIL("mkdtemp");
        snprintf(path, sizeof path, "%s/old.area", dir);
        old_area_options_with_tail old;
        memset(&old, 0, sizeof old);
        old.o.size = sizeof old.o;
        old.o.pages = 64;
        const uint32_t tail[5] = {1, 65534, 1, 1, 1};
        memcpy(old.not_fields, tail, sizeof tail);
        const promshm_area_options *as_today = (const promshm_area_options *)&old;
        const promshm_area *file_area = NULL;
        OK(promshm_area_create(path, as_today, &file_area));
        promshm_area_free(file_area);
        EXPECT(chmod(path, 0620) == 0);
        file_area = SENTINEL_PTR;
        EXPECT_RC(PROMSHM_RESULT_UNSAFE_FILE, promshm_area_create(path, as_today, &file_area));
        EXPECT_RC(PROMSHM_RESULT_UNSAFE_FILE,
                  promshm_area_open_with(path, PROMSHM_OPEN_MODE_READ_ONLY, as_today, &file_area));
        EXPECT(file_area == SENTINEL_PTR);
        /* The same bytes with today's size are read as fields: accepted. */
        old.o.size = sizeof(promshm_area_options);
        EXPECT(sizeof old == sizeof(promshm_area_options));
        OK(promshm_area_open_with(path, PROMSHM_OPEN_MODE_READ_WRITE, as_today, &file_area));
        promshm_area_free(file_area);
        /* A size ending inside a file-check field is no version at all. */
        old.o.size = sizeof old.o + 2;
        EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT,
                  promshm_area_open_with(path, PROMSHM_OPEN_MODE_READ_ONLY, as_today, &file_area));
        EXPECT(unlink(path) == 0 && rmdir(dir) == 0);
    }

    /* eager = 1 works: counters write through (visible before any flush). */
    const promshm_area *eager_area = NULL;
    promshm_area_options eager_opts = PROMSHM_AREA_OPTIONS_INIT;
    eager_opts.pages = 64;
    eager_opts.eager = 1;
    OK(promshm_area_anonymous(&eager_opts, &eager_area));

    /* ---- input: promshm_metric_opts ---- */
    const promshm_registry *reg = NULL, *eager_reg = NULL;
    OK(promshm_area_registry(area, &reg));
    OK(promshm_area_registry(eager_area, &eager_reg));
    const promshm_family *fam = NULL;
    promshm_metric_opts mo = PROMSHM_METRIC_OPTS_INIT;
    mo.name = "abi_requests";
    mo.size = 0;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_registry_counter(reg, &mo, &fam));
    mo.size = 12; /* ends inside `name` */
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_registry_counter(reg, &mo, &fam));
    EXPECT(fam == NULL);
    mo.size = sizeof mo;
    OK(promshm_registry_counter(eager_reg, &mo, &fam));
    const promshm_series *s = NULL;
    OK(promshm_family_labels(fam, NULL, 0, &s));
    OK(promshm_counter_add(s, 5));
    double v = 0;
    OK(promshm_counter_get(s, &v)); /* no flush: only an eager family shows it */
    EXPECT(v == 5);
    promshm_series_free(s);
    promshm_family_free(fam);

    /* An older caller without label fields: no labels. */
    old_metric_opts old_mo;
    memset(&old_mo, 0, sizeof old_mo);
    old_mo.size = sizeof old_mo;
    old_mo.name = "abi_old";
    old_mo.help = "Registered with an older struct.";
    fam = NULL;
    OK(promshm_registry_counter(reg, (const promshm_metric_opts *)&old_mo, &fam));
    EXPECT(promshm_family_label_count(fam) == 0);
    OK(promshm_family_labels(fam, NULL, 0, &s));
    OK(promshm_counter_inc(s));
    OK(promshm_flush());
    promshm_series_free(s);
    promshm_family_free(fam);

    /* ---- output: promshm_area_stats ---- */
    promshm_area_stats stats = PROMSHM_AREA_STATS_INIT;
    stats.size = 0;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_get_stats(area, &stats));
    EXPECT(stats.pages_total == 0); /* nothing written */
    stats.size = 2;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_get_stats(area, &stats));
    stats.size = sizeof stats;
    OK(promshm_area_get_stats(area, &stats));
    EXPECT(stats.size == sizeof stats && stats.pages_total == 128 && stats.max_workers == 4 &&
           stats.families == 1 && stats.created_ms > 0);

    /* An older caller: only its bytes are written, the canary after them stays. */
    struct {
        old_area_stats s;
        unsigned char canary[64];
    } old_stats;
    memset(&old_stats, CANARY, sizeof old_stats);
    old_stats.s.size = sizeof old_stats.s;
    OK(promshm_area_get_stats(area, (promshm_area_stats *)&old_stats.s));
    EXPECT(old_stats.s.size == sizeof old_stats.s);
    EXPECT(old_stats.s.pages_total == 128 && old_stats.s.max_workers == 4 &&
           old_stats.s.families == 1);
    EXPECT(canary_intact(old_stats.canary, sizeof old_stats.canary));

    /* A newer caller: what this library knows, `size` says how much. */
    new_area_stats newer;
    memset(&newer, CANARY, sizeof newer);
    newer.today.size = sizeof newer;
    OK(promshm_area_get_stats(area, (promshm_area_stats *)&newer));
    EXPECT(newer.today.size == sizeof(promshm_area_stats));
    EXPECT(newer.today.pages_total == 128 && newer.today.families == 1);
    EXPECT(canary_intact(newer.later, sizeof newer.later));

    /* ---- output array: promshm_worker_info, stride = the caller's size ---- */
    OK(promshm_area_attach(area, NULL));
    int ready[2], go[2];
    EXPECT(pipe(ready) == 0 && pipe(go) == 0);
    pid_t child = fork();
    if (child < 0) FAIL("fork");
    if (child == 0) {
        /* A second worker: attach, tell the parent, wait until it has looked. */
        char c = 0;
        int rc = promshm_area_attach(area, NULL) == PROMSHM_RESULT_OK ? 0 : 1;
        if (write(ready[1], &c, 1) != 1) rc = 1;
        if (read(go[0], &c, 1) != 1) rc = 1;
        _exit(rc);
    }
    {
        char c;
        EXPECT(read(ready[0], &c, 1) == 1);
    }

    promshm_worker_info wi[3];
    size_t n = 0;
    memset(wi, 0, sizeof wi); /* size 0 in the first entry */
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_workers(area, wi, 3, &n));
    EXPECT(n == 0 && wi[0].pid == 0);
    wi[0].size = 5000;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_workers(area, wi, 3, &n));
    EXPECT(n == 0 && wi[0].pid == 0);
    {
        promshm_worker_info init = PROMSHM_WORKER_INFO_INIT;
        wi[0] = init;
    }
    OK(promshm_area_workers(area, wi, 3, &n));
    EXPECT(n == 2 && wi[0].size == sizeof wi[0] && wi[1].size == sizeof wi[1]);
    EXPECT((wi[0].pid == (uint32_t)getpid() && wi[1].pid == (uint32_t)child) ||
           (wi[1].pid == (uint32_t)getpid() && wi[0].pid == (uint32_t)child));
    EXPECT(wi[0].alive == 1 && wi[1].alive == 1);

    /* An older caller's array: 3 entries of the older size, then a canary. */
    struct {
        old_worker_info w[3];
        unsigned char canary[64];
    } old_workers;
    memset(&old_workers, CANARY, sizeof old_workers);
    old_workers.w[0].size = sizeof old_workers.w[0];
    n = 0;
    OK(promshm_area_workers(area, (promshm_worker_info *)old_workers.w, 3, &n));
    EXPECT(n == 2);
    for (size_t i = 0; i < 2; i++) {
        EXPECT(old_workers.w[i].size == sizeof old_workers.w[i]);
        EXPECT(old_workers.w[i].pid == wi[i].pid && old_workers.w[i].slot == wi[i].slot &&
               old_workers.w[i].generation == wi[i].generation &&
               old_workers.w[i].start_time == wi[i].start_time);
    }
    EXPECT(canary_intact(&old_workers.w[2], sizeof old_workers.w[2])); /* unused entry */
    EXPECT(canary_intact(old_workers.canary, sizeof old_workers.canary));

    {
        char c = 0;
        EXPECT(write(go[1], &c, 1) == 1);
        int status = 0;
        EXPECT(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
               WEXITSTATUS(status) == 0);
    }

    promshm_registry_free(reg);
    promshm_registry_free(eager_reg);
    promshm_area_free(area);
    promshm_area_free(eager_area);
    printf("abi: %d checks passed\n", g_checks);
    return 0;
}
