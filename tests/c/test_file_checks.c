/*
 * The file checks of promshm_area_create() and promshm_area_open_with(), as
 * promshm_area_options sets them (docs/C-API.md, "Area files"):
 * - a file owned by another uid is UNSAFE_FILE by default, accepted with
 *   allow_owner = 1 and allowed_owner = that uid (and only that uid);
 * - a group-writable file needs allow_group_write = 1, an other-writable one
 *   allow_other_write = 1;
 * - lock_timeout_ms bounds the wait for another process's file lock;
 * - flags other than 0 or 1, and allowed_owner without allow_owner, are
 *   INVALID_ARGUMENT; a refused file is left untouched.
 * Also the lock statistics of promshm_area_stats (locks_taken,
 * lock_timeouts, dropped_updates) and their promshm_* self-metrics, exact,
 * while the area lock (an OFD write lock on byte 2^40, FORMAT.md §4) is held
 * through another open file description of the area file.
 * The owner checks chown the file, so they need root (CI runs as root);
 * without root they are reported as skipped and the rest still runs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_OFD_SETLK (g++ defines it already) */
#endif
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define OTHER_UID 65534u
#define THIRD_UID 65533u

/* The last error detail contains `needle`. */
static int detail_has(const char *needle) {
    char detail[1024];
    promshm_last_error(detail, sizeof detail, NULL);
    if (strstr(detail, needle) != NULL) return 1;
    fprintf(stderr, "detail \"%s\" lacks \"%s\"\n", detail, needle);
    return 0;
}

/* Create an area at `path` with the defaults, with one counter, then free it. */
static void make_area(const char *path) {
    promshm_area_options o = PROMSHM_AREA_OPTIONS_INIT;
    o.pages = 64;
    const promshm_area *a = NULL;
    OK(promshm_area_create(path, &o, &a));
    const promshm_registry *r = NULL;
    OK(promshm_area_registry(a, &r));
    promshm_metric_opts mo = metric_opts("made", "Made by make_area.", NULL, 0);
    const promshm_family *f = NULL;
    OK(promshm_registry_counter(r, &mo, &f));
    promshm_family_free(f);
    promshm_registry_free(r);
    promshm_area_free(a);
}

/* Open `path` with `o` (read-write and read-only) and create over it:
 * each returns `want`; on success the area keeps its counter. */
static void expect_all(promshm_result want, const char *path, const promshm_area_options *o) {
    const promshm_area *a = NULL;
    EXPECT_RC(want, promshm_area_open_with(path, PROMSHM_OPEN_MODE_READ_WRITE, o, &a));
    if (a) promshm_area_free(a);
    a = NULL;
    EXPECT_RC(want, promshm_area_open_with(path, PROMSHM_OPEN_MODE_READ_ONLY, o, &a));
    if (a) {
        promshm_area_stats s = PROMSHM_AREA_STATS_INIT;
        OK(promshm_area_get_stats(a, &s));
        EXPECT(s.families == 1 && s.pages_total == 64);
        promshm_area_free(a);
    }
    a = NULL;
    EXPECT_RC(want, promshm_area_create(path, o, &a));
    if (a) promshm_area_free(a);
}

/* A fresh PROMSHM_AREA_OPTIONS_INIT (no compound literal: C++ too). */
static promshm_area_options init_options(void) {
    promshm_area_options o = PROMSHM_AREA_OPTIONS_INIT;
    return o;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Bytes of the file at `path`, which a refusal must leave unchanged. */
static unsigned long long file_sum(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) FAIL("cannot open %s", path);
    unsigned long long sum = 0, i = 0;
    int c;
    while ((c = fgetc(f)) != EOF) sum += (unsigned long long)c * (++i % 251);
    fclose(f);
    return sum;
}

/* The value of the sample `name` (no labels) on a Prometheus text page. */
static double sample(const char *page, const char *name) {
    size_t n = strlen(name);
    for (const char *p = page; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == page || p[-1] == '\n') && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    FAIL("no sample %s on the page:\n%s", name, page);
}

/* Take (F_WRLCK) or release (F_UNLCK) the area lock on descriptor `fd`. */
static int area_lock(int fd, short type) {
    struct flock lk;
    memset(&lk, 0, sizeof lk);
    lk.l_type = type;
    lk.l_whence = SEEK_SET;
    lk.l_start = (off_t)1 << 40;
    lk.l_len = 1;
    return fcntl(fd, F_OFD_SETLK, &lk);
}

/* Lock statistics in promshm_area_stats and on the page, exact. */
static void check_lock_statistics(const char *path) {
    promshm_area_options o = PROMSHM_AREA_OPTIONS_INIT;
    o.pages = 64;
    const promshm_area *area = NULL;
    OK(promshm_area_create(path, &o, &area));
    const promshm_registry *reg = NULL;
    OK(promshm_area_registry(area, &reg));
    promshm_metric_opts mo = metric_opts("queue_depth", "Jobs waiting.", NULL, 0);
    const promshm_family *fam = NULL;
    OK(promshm_registry_gauge(reg, &mo, PROMSHM_GAUGE_MODE_SUM, &fam));
    const promshm_series *g = NULL;
    OK(promshm_family_labels(fam, NULL, 0, &g));
    promshm_area_stats s0 = PROMSHM_AREA_STATS_INIT;
    OK(promshm_area_get_stats(area, &s0));
    EXPECT(s0.size == sizeof s0 && s0.locks_taken >= 1 && s0.lock_timeouts == 0 &&
           s0.dropped_updates == 0);

    /* Another description of the file holds the area lock: the first gauge
     * update's attach times out (briefly), the second finds it backing off;
     * both are dropped. */
    int fd = open(path, O_RDWR | O_CLOEXEC);
    EXPECT(fd >= 0 && area_lock(fd, F_WRLCK) == 0);
    OK(promshm_gauge_set(g, 1.0));
    OK(promshm_gauge_set(g, 2.0));
    promshm_area_stats s1 = PROMSHM_AREA_STATS_INIT;
    OK(promshm_area_get_stats(area, &s1));
    EXPECT(s1.lock_timeouts == 1 && s1.dropped_updates == 2 && s1.locks_taken == s0.locks_taken);
    char *page = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    promshm_area_stats s2 = PROMSHM_AREA_STATS_INIT;
    OK(promshm_area_get_stats(area, &s2));
    EXPECT(sample(page, "promshm_area_lock_timeouts_total") == 1.0);
    EXPECT(sample(page, "promshm_updates_dropped_total") == 2.0);
    EXPECT(sample(page, "promshm_area_lock_acquisitions_total") == (double)s2.locks_taken);
    EXPECT(strstr(page, "# HELP promshm_area_lock_acquisitions_total ") != NULL);
    EXPECT(strstr(page, "# HELP promshm_area_lock_timeouts_total ") != NULL);
    free(page);

    /* Released: once the backoff has passed an update attaches (one lock). */
    EXPECT(area_lock(fd, F_UNLCK) == 0 && close(fd) == 0);
    uint64_t taken = s2.locks_taken;
    size_t n_workers = 0;
    for (int i = 0; i < 500; i++) {
        OK(promshm_gauge_set(g, 3.0));
        promshm_result rc = promshm_area_workers(area, NULL, 0, &n_workers);
        EXPECT(rc == PROMSHM_RESULT_OK || rc == PROMSHM_RESULT_BUFFER_TOO_SMALL);
        if (n_workers == 1) break;
        struct timespec ms20 = {0, 20 * 1000 * 1000};
        nanosleep(&ms20, NULL);
    }
    EXPECT(n_workers == 1);
    promshm_area_stats s3 = PROMSHM_AREA_STATS_INIT;
    OK(promshm_area_get_stats(area, &s3));
    EXPECT(s3.locks_taken == taken + 1 && s3.lock_timeouts == 1);
    page = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(sample(page, "queue_depth") == 3.0);
    EXPECT(sample(page, "promshm_area_lock_timeouts_total") == 1.0);
    EXPECT(sample(page, "promshm_updates_dropped_total") == (double)s3.dropped_updates);
    free(page);

    promshm_series_free(g);
    promshm_family_free(fam);
    promshm_registry_free(reg);
    promshm_area_free(area);
}

int main(void) {
    char dir[] = "/tmp/promshm-c-files-XXXXXX";
    if (!mkdtemp(dir)) FAIL("mkdtemp");
    char other[256], group[256], world[256], locked[256], stats[256];
    snprintf(other, sizeof other, "%s/other.area", dir);
    snprintf(group, sizeof group, "%s/group.area", dir);
    snprintf(world, sizeof world, "%s/world.area", dir);
    snprintf(locked, sizeof locked, "%s/locked.area", dir);
    snprintf(stats, sizeof stats, "%s/stats.area", dir);
    const promshm_area *a = NULL;

    /* ---- bad options ---- */
    make_area(group);
    promshm_area_options bad = PROMSHM_AREA_OPTIONS_INIT;
    bad.allowed_owner = OTHER_UID; /* a uid without the flag is a mistake */
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT,
              promshm_area_open_with(group, PROMSHM_OPEN_MODE_READ_ONLY, &bad, &a));
    EXPECT(detail_has("allow_owner"));
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_create(group, &bad, &a));
    bad = init_options();
    bad.allow_owner = 2;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT,
              promshm_area_open_with(group, PROMSHM_OPEN_MODE_READ_WRITE, &bad, &a));
    EXPECT(detail_has("options->allow_owner is 2"));
    bad = init_options();
    bad.allow_group_write = 7;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_create(group, &bad, &a));
    EXPECT(detail_has("options->allow_group_write is 7"));
    bad = init_options();
    bad.allow_other_write = 0xFFFFFFFFu;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT,
              promshm_area_open_with(group, PROMSHM_OPEN_MODE_READ_ONLY, &bad, &a));
    EXPECT(detail_has("options->allow_other_write"));
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT,
              promshm_area_open_with(group, (promshm_open_mode)9, NULL, &a));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER,
              promshm_area_open_with(NULL, PROMSHM_OPEN_MODE_READ_ONLY, NULL, &a));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER,
              promshm_area_open_with(group, PROMSHM_OPEN_MODE_READ_ONLY, NULL, NULL));
    EXPECT(a == NULL);
    /* NULL options: the defaults, as promshm_area_open(). */
    OK(promshm_area_open_with(group, PROMSHM_OPEN_MODE_READ_ONLY, NULL, &a));
    EXPECT(promshm_area_is_read_only(a));
    promshm_area_free(a);
    a = NULL;

    /* ---- a group-writable file needs allow_group_write ---- */
    EXPECT(chmod(group, 0620) == 0);
    unsigned long long before = file_sum(group);
    promshm_area_options defaults = PROMSHM_AREA_OPTIONS_INIT;
    expect_all(PROMSHM_RESULT_UNSAFE_FILE, group, &defaults);
    EXPECT(detail_has(group) && detail_has("group"));
    EXPECT_RC(PROMSHM_RESULT_UNSAFE_FILE, promshm_area_open(group, PROMSHM_OPEN_MODE_READ_ONLY, &a));
    EXPECT_RC(PROMSHM_RESULT_UNSAFE_FILE, promshm_area_create(group, NULL, &a));
    EXPECT(a == NULL && file_sum(group) == before); /* refused untouched */
    promshm_area_options gw = PROMSHM_AREA_OPTIONS_INIT;
    gw.allow_group_write = 1;
    expect_all(PROMSHM_RESULT_OK, group, &gw);
    /* allow_other_write does not accept a group-writable file. */
    promshm_area_options ow = PROMSHM_AREA_OPTIONS_INIT;
    ow.allow_other_write = 1;
    expect_all(PROMSHM_RESULT_UNSAFE_FILE, group, &ow);

    /* ---- an other-writable file needs allow_other_write ---- */
    make_area(world);
    EXPECT(chmod(world, 0602) == 0);
    expect_all(PROMSHM_RESULT_UNSAFE_FILE, world, &defaults);
    expect_all(PROMSHM_RESULT_UNSAFE_FILE, world, &gw);
    EXPECT(detail_has("every user may write"));
    expect_all(PROMSHM_RESULT_OK, world, &ow);
    EXPECT(chmod(world, 0622) == 0); /* both bits: both flags */
    expect_all(PROMSHM_RESULT_UNSAFE_FILE, world, &ow);
    promshm_area_options both = ow;
    both.allow_group_write = 1;
    expect_all(PROMSHM_RESULT_OK, world, &both);

    /* ---- a file owned by another uid needs allow_owner ---- */
    int owner_checks = 0;
    if (geteuid() == 0) {
        make_area(other);
        EXPECT(chown(other, OTHER_UID, OTHER_UID) == 0);
        before = file_sum(other);
        expect_all(PROMSHM_RESULT_UNSAFE_FILE, other, &defaults);
        EXPECT(detail_has(other) && detail_has("owned by uid 65534"));
        EXPECT_RC(PROMSHM_RESULT_UNSAFE_FILE,
                  promshm_area_open(other, PROMSHM_OPEN_MODE_READ_ONLY, &a));
        EXPECT_RC(PROMSHM_RESULT_UNSAFE_FILE, promshm_area_create(other, NULL, &a));
        promshm_area_options third = PROMSHM_AREA_OPTIONS_INIT;
        third.allow_owner = 1;
        third.allowed_owner = THIRD_UID; /* another uid than the owner */
        expect_all(PROMSHM_RESULT_UNSAFE_FILE, other, &third);
        promshm_area_options root_only = PROMSHM_AREA_OPTIONS_INIT;
        root_only.allow_owner = 1; /* allowed_owner 0: root, which we are anyway */
        expect_all(PROMSHM_RESULT_UNSAFE_FILE, other, &root_only);
        EXPECT(a == NULL && file_sum(other) == before);
        promshm_area_options allowed = PROMSHM_AREA_OPTIONS_INIT;
        allowed.allow_owner = 1;
        allowed.allowed_owner = OTHER_UID;
        expect_all(PROMSHM_RESULT_OK, other, &allowed);
        /* The owner check and the mode check are separate. */
        EXPECT(chmod(other, 0620) == 0);
        expect_all(PROMSHM_RESULT_UNSAFE_FILE, other, &allowed);
        allowed.allow_group_write = 1;
        expect_all(PROMSHM_RESULT_OK, other, &allowed);
        owner_checks = 1;
    } else {
        printf("file_checks: owner checks skipped (not root)\n");
    }

    /* ---- lock_timeout_ms bounds the wait for the file lock ---- */
    make_area(locked);
    int ready[2], done[2];
    EXPECT(pipe(ready) == 0 && pipe(done) == 0);
    pid_t child = fork();
    if (child < 0) FAIL("fork");
    if (child == 0) {
        int fd = open(locked, O_RDONLY);
        char c = 'x';
        if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(ready[1], &c, 1) != 1) _exit(2);
        if (read(done[0], &c, 1) != 1) _exit(3); /* hold it until told */
        _exit(0);
    }
    char c;
    EXPECT(read(ready[0], &c, 1) == 1);
    promshm_area_options quick = PROMSHM_AREA_OPTIONS_INIT;
    quick.lock_timeout_ms = 300;
    double t0 = now_s();
    EXPECT_RC(PROMSHM_RESULT_LOCK_TIMEOUT,
              promshm_area_open_with(locked, PROMSHM_OPEN_MODE_READ_ONLY, &quick, &a));
    double waited = now_s() - t0;
    EXPECT(detail_has("file lock"));
    t0 = now_s();
    EXPECT_RC(PROMSHM_RESULT_LOCK_TIMEOUT, promshm_area_create(locked, &quick, &a));
    double waited_create = now_s() - t0;
    /* 300 ms, not the default 10 s (generous margin for a loaded machine). */
    EXPECT(waited >= 0.25 && waited < 5.0);
    EXPECT(waited_create >= 0.25 && waited_create < 5.0);
    EXPECT(write(done[1], "x", 1) == 1);
    int status = 0;
    EXPECT(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    OK(promshm_area_open_with(locked, PROMSHM_OPEN_MODE_READ_ONLY, &quick, &a));
    promshm_area_free(a);

    check_lock_statistics(stats);

    unlink(stats);
    unlink(other);
    unlink(group);
    unlink(world);
    unlink(locked);
    rmdir(dir);
    printf("file_checks: owner checks %s, lock wait %.2f s; %d checks passed\n",
           owner_checks ? "run" : "skipped", waited, g_checks);
    return 0;
}
