/*
 * Bad input to every function of the API: NULL handles and pointers,
 * invalid names, reserved and duplicate labels, wrong label counts, bad
 * buckets, quantiles and states, rejected values, non-UTF-8 strings,
 * unknown enum values, buffers too small, wrong metric types, a read-only
 * area, files that are not areas, and handles whose area was freed. Each
 * call must return its documented status, leave out-parameters untouched,
 * and set a last-error detail.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <sys/stat.h>
#include <math.h>
#include <unistd.h>

#include "common.h"

/* Expect `want`, and a fresh, non-empty last-error detail. */
#define BAD(want, call)                                                        \
    do {                                                                       \
        set_marker();                                                          \
        EXPECT_RC(want, call);                                                 \
        expect_detail_changed(__LINE__);                                       \
    } while (0)

/* Sentinels for out-parameters that must not be written on failure. */
#define SENTINEL_PTR ((void *)0x5a5a)

static const char NOT_UTF8[] = {'b', 'a', 'd', (char)0xff, (char)0xfe, 0};

/* Make the last error a known detail: a failure naming a marker path. */
static void set_marker(void) {
    const promshm_area *a = NULL;
    if (promshm_area_open("/nonexistent/promshm-marker", PROMSHM_OPEN_MODE_READ_ONLY, &a) !=
        PROMSHM_RESULT_NOT_FOUND)
        FAIL("marker");
}

static void expect_detail_changed(int line) {
    char buf[1024];
    size_t len = 0;
    if (promshm_last_error(buf, sizeof buf, &len) != PROMSHM_RESULT_OK || len == 0 ||
        strstr(buf, "promshm-marker") != NULL) {
        fprintf(stderr, "line %d: no fresh last-error detail (\"%s\")\n", line, buf);
        exit(1);
    }
}

static int failing_write(void *userdata, const uint8_t *data, size_t len) {
    (void)data;
    (void)len;
    (*(int *)userdata)++;
    return 7;
}

static int counting_write(void *userdata, const uint8_t *data, size_t len) {
    (void)data;
    *(size_t *)userdata += len;
    return 0;
}

int main(void) {
    char dir[] = "/tmp/promshm-c-bad-XXXXXX";
    if (!mkdtemp(dir)) FAIL("mkdtemp");
    char path[256], garbage[256], small[256], missing_dir[256], link_path[256], fifo[256];
    snprintf(path, sizeof path, "%s/area", dir);
    snprintf(garbage, sizeof garbage, "%s/garbage", dir);
    snprintf(small, sizeof small, "%s/small", dir);
    snprintf(missing_dir, sizeof missing_dir, "%s/no/such/dir/area", dir);
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);

    /* ---- results, messages, last error ---- */
    EXPECT(strcmp(promshm_result_message(PROMSHM_RESULT_OK), "ok") == 0);
    EXPECT(strcmp(promshm_result_message(424242), "unknown result code") == 0);
    EXPECT(strcmp(promshm_result_message(PROMSHM_RESULT_WRONG_TYPE), "unknown result code") != 0);
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_last_error(NULL, 8, NULL));
    const promshm_area *area = NULL;
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_anonymous(NULL, NULL));
    size_t detail_len = 0;
    OK(promshm_last_error(NULL, 0, &detail_len)); /* size query */
    EXPECT(detail_len == strlen("out is NULL"));
    char tiny[4] = {'x', 'x', 'x', 'x'};
    OK(promshm_last_error(tiny, sizeof tiny, &detail_len));
    EXPECT(strcmp(tiny, "out") == 0 && detail_len == strlen("out is NULL"));

    /* ---- area create / anonymous / open ---- */
    promshm_area_options opts;
    memset(&opts, 0, sizeof opts);
    opts.size = sizeof opts;
    area = (const promshm_area *)SENTINEL_PTR;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_create(NULL, NULL, &area));
    EXPECT(area == SENTINEL_PTR);
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_create(path, NULL, NULL));
    BAD(PROMSHM_RESULT_NOT_UTF8, promshm_area_create(NOT_UTF8, NULL, &area));
    opts.pages = 1;
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_create(path, &opts, &area));
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_anonymous(&opts, &area));
    opts.pages = 0;
    opts.max_workers = 1000000;
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_anonymous(&opts, &area));
    EXPECT(area == SENTINEL_PTR);
    BAD(PROMSHM_RESULT_NOT_FOUND, promshm_area_create(missing_dir, NULL, &area));
    {
        int fd = open(garbage, O_CREAT | O_WRONLY, 0600);
        char junk[8192];
        memset(junk, 0x42, sizeof junk);
        EXPECT(fd >= 0 && write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
        close(fd);
        fd = open(small, O_CREAT | O_WRONLY, 0600);
        EXPECT(fd >= 0 && write(fd, junk, 100) == 100);
        close(fd);
        EXPECT(symlink(path, link_path) == 0);
        EXPECT(mkfifo(fifo, 0600) == 0);
    }
    BAD(PROMSHM_RESULT_INCOMPATIBLE_AREA, promshm_area_create(garbage, NULL, &area));
    BAD(PROMSHM_RESULT_INCOMPATIBLE_AREA, promshm_area_open(garbage, PROMSHM_OPEN_MODE_READ_ONLY, &area));
    BAD(PROMSHM_RESULT_INCOMPATIBLE_AREA, promshm_area_open(small, PROMSHM_OPEN_MODE_READ_WRITE, &area));
    BAD(PROMSHM_RESULT_UNSAFE_FILE, promshm_area_create(link_path, NULL, &area)); /* O_NOFOLLOW */
    /* A FIFO is refused at once, never blocks the open. */
    BAD(PROMSHM_RESULT_UNSAFE_FILE, promshm_area_open(fifo, PROMSHM_OPEN_MODE_READ_ONLY, &area));
    BAD(PROMSHM_RESULT_UNSAFE_FILE, promshm_area_create(fifo, NULL, &area));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_open(NULL, PROMSHM_OPEN_MODE_READ_WRITE, &area));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_open(path, PROMSHM_OPEN_MODE_READ_WRITE, NULL));
    BAD(PROMSHM_RESULT_NOT_UTF8, promshm_area_open(NOT_UTF8, PROMSHM_OPEN_MODE_READ_WRITE, &area));
    BAD(PROMSHM_RESULT_NOT_FOUND, promshm_area_open(path, PROMSHM_OPEN_MODE_READ_WRITE, &area));
    EXPECT(area == SENTINEL_PTR);

    memset(&opts, 0, sizeof opts);
    opts.size = sizeof opts;
    opts.pages = 64;
    opts.max_workers = 4;
    OK(promshm_area_create(path, &opts, &area));
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_open(path, 7, &area));
    const promshm_area *ro = NULL;
    OK(promshm_area_open(path, PROMSHM_OPEN_MODE_READ_ONLY, &ro));

    EXPECT(promshm_area_clone(NULL) == NULL);
    promshm_area_free(NULL);
    EXPECT(!promshm_area_is_read_only(NULL));
    uint32_t slot = 77;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_attach(NULL, &slot));
    BAD(PROMSHM_RESULT_READ_ONLY, promshm_area_attach(ro, &slot));
    EXPECT(slot == 77);
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_reap(NULL, NULL));
    uint32_t reaped = 77;
    OK(promshm_area_reap(ro, &reaped)); /* read-only reaps nothing */
    EXPECT(reaped == 0);
    promshm_area_stats stats = PROMSHM_AREA_STATS_INIT;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_get_stats(NULL, &stats));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_get_stats(area, NULL));
    promshm_worker_info wi[2] = {PROMSHM_WORKER_INFO_INIT, PROMSHM_WORKER_INFO_INIT};
    size_t n_workers = 77;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_workers(NULL, wi, 2, &n_workers));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_workers(area, wi, 2, NULL));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_workers(area, NULL, 2, &n_workers));
    EXPECT(n_workers == 77);
    OK(promshm_area_attach(area, NULL));
    BAD(PROMSHM_RESULT_BUFFER_TOO_SMALL, promshm_area_workers(area, wi, 0, &n_workers));
    EXPECT(n_workers == 1);

    /* ---- registries ---- */
    const promshm_registry *reg = (const promshm_registry *)SENTINEL_PTR;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_registry(NULL, &reg));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_registry(area, NULL));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_new(NULL, "p", NULL, 0, &reg));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_new(area, "p", NULL, 0, NULL));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_new(area, "p", NULL, 1, &reg));
    BAD(PROMSHM_RESULT_INVALID_METRIC_NAME, promshm_registry_new(area, "1p", NULL, 0, &reg));
    BAD(PROMSHM_RESULT_NOT_UTF8, promshm_registry_new(area, NOT_UTF8, NULL, 0, &reg));
    promshm_label bad_labels[2] = {{"a-b", "v"}, {"x", "v"}};
    BAD(PROMSHM_RESULT_INVALID_LABEL_NAME, promshm_registry_new(area, "p", bad_labels, 1, &reg));
    bad_labels[0].name = "__meta";
    BAD(PROMSHM_RESULT_RESERVED_LABEL, promshm_registry_new(area, "p", bad_labels, 1, &reg));
    bad_labels[0].name = "x";
    BAD(PROMSHM_RESULT_DUPLICATE_LABEL, promshm_registry_new(area, "p", bad_labels, 2, &reg));
    bad_labels[0].name = NULL;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_new(area, "p", bad_labels, 1, &reg));
    bad_labels[0].name = "ok";
    bad_labels[0].value = NULL;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_new(area, "p", bad_labels, 1, &reg));
    char *huge = (char *)malloc(20000);
    memset(huge, 'v', 19999);
    huge[19999] = '\0';
    bad_labels[0].value = huge;
    BAD(PROMSHM_RESULT_TOO_LONG, promshm_registry_new(area, "p", bad_labels, 1, &reg));
    EXPECT(reg == SENTINEL_PTR);
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_without_self_metrics(NULL, &reg));
    EXPECT(promshm_registry_clone(NULL) == NULL);
    promshm_registry_free(NULL);

    OK(promshm_registry_new(area, "bad", NULL, 0, &reg));
    const promshm_registry *ro_reg = NULL;
    OK(promshm_area_registry(ro, &ro_reg));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_without_self_metrics(reg, NULL));

    /* ---- registration ---- */
    const promshm_family *fam = (const promshm_family *)SENTINEL_PTR;
    const char *labels2[2] = {"a", "b"};
    promshm_metric_opts o = metric_opts("c", "help", labels2, 2);
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_counter(NULL, &o, &fam));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_counter(reg, NULL, &fam));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_counter(reg, &o, NULL));
    BAD(PROMSHM_RESULT_READ_ONLY, promshm_registry_counter(ro_reg, &o, &fam));
    o.name = NULL;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_counter(reg, &o, &fam));
    o.name = "bad-name";
    BAD(PROMSHM_RESULT_INVALID_METRIC_NAME, promshm_registry_counter(reg, &o, &fam));
    o.name = NOT_UTF8;
    BAD(PROMSHM_RESULT_NOT_UTF8, promshm_registry_counter(reg, &o, &fam));
    o.name = "c";
    o.help = NOT_UTF8;
    BAD(PROMSHM_RESULT_NOT_UTF8, promshm_registry_counter(reg, &o, &fam));
    o.help = huge;
    BAD(PROMSHM_RESULT_TOO_LONG, promshm_registry_counter(reg, &o, &fam));
    o.help = "help";
    o.unit = "a-b";
    BAD(PROMSHM_RESULT_INVALID_UNIT, promshm_registry_counter(reg, &o, &fam));
    o.unit = NULL;
    o.update_mode = 9;
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_registry_counter(reg, &o, &fam));
    o.update_mode = PROMSHM_UPDATE_MODE_DEFAULT;
    const char *le[1] = {"le"};
    o.label_names = le;
    o.n_label_names = 1;
    BAD(PROMSHM_RESULT_RESERVED_LABEL, promshm_registry_counter(reg, &o, &fam));
    const char *dup[2] = {"a", "a"};
    o.label_names = dup;
    o.n_label_names = 2;
    BAD(PROMSHM_RESULT_DUPLICATE_LABEL, promshm_registry_counter(reg, &o, &fam));
    const char *spaced[1] = {"a b"};
    o.label_names = spaced;
    o.n_label_names = 1;
    BAD(PROMSHM_RESULT_INVALID_LABEL_NAME, promshm_registry_counter(reg, &o, &fam));
    const char *null_label[1] = {NULL};
    o.label_names = null_label;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_counter(reg, &o, &fam));
    o.label_names = NULL;
    o.n_label_names = 2;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_counter(reg, &o, &fam));
    const char *many[65];
    char names[65][8];
    for (int i = 0; i < 65; i++) {
        snprintf(names[i], sizeof names[i], "l%d", i);
        many[i] = names[i];
    }
    o.label_names = many;
    o.n_label_names = 65;
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_registry_counter(reg, &o, &fam));
    EXPECT(fam == SENTINEL_PTR);
    {
        const promshm_registry *self = NULL;
        OK(promshm_area_registry(area, &self));
        promshm_metric_opts reserved = metric_opts("promshm_mine", "h", NULL, 0);
        BAD(PROMSHM_RESULT_INVALID_METRIC_NAME, promshm_registry_counter(self, &reserved, &fam));
        promshm_registry_free(self);
    }
    {
        uint32_t taken = 7;
        BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_name_taken(NULL, "x", PROMSHM_METRIC_TYPE_GAUGE, &taken));
        BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_name_taken(area, NULL, PROMSHM_METRIC_TYPE_GAUGE, &taken));
        BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_name_taken(area, "x", PROMSHM_METRIC_TYPE_GAUGE, NULL));
        BAD(PROMSHM_RESULT_NOT_UTF8, promshm_area_name_taken(area, NOT_UTF8, PROMSHM_METRIC_TYPE_GAUGE, &taken));
        BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_name_taken(area, "x", 0, &taken));
        BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_name_taken(area, "x", 8, &taken));
        EXPECT(taken == 7);
    }

    /* A valid counter; then the same name with another shape. */
    o = metric_opts("c", "help", labels2, 2);
    const promshm_family *counter = NULL;
    OK(promshm_registry_counter(reg, &o, &counter));
    o.n_label_names = 1;
    BAD(PROMSHM_RESULT_SHAPE_MISMATCH, promshm_registry_counter(reg, &o, &fam));
    o.n_label_names = 2;
    BAD(PROMSHM_RESULT_SHAPE_MISMATCH, promshm_registry_gauge(reg, &o, PROMSHM_GAUGE_MODE_SUM, &fam));

    /* Gauges. */
    o = metric_opts("g", "help", NULL, 0);
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_registry_gauge(reg, &o, 42, &fam));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_gauge(NULL, &o, PROMSHM_GAUGE_MODE_SUM, &fam));
    const char *worker[1] = {"worker"};
    o.label_names = worker;
    o.n_label_names = 1;
    BAD(PROMSHM_RESULT_RESERVED_LABEL, promshm_registry_gauge(reg, &o, PROMSHM_GAUGE_MODE_ALL, &fam));
    o = metric_opts("g", "help", NULL, 0);
    const promshm_family *gauge = NULL;
    OK(promshm_registry_gauge(reg, &o, PROMSHM_GAUGE_MODE_LIVESUM, &gauge));
    BAD(PROMSHM_RESULT_SHAPE_MISMATCH, promshm_registry_gauge(reg, &o, PROMSHM_GAUGE_MODE_MAX, &fam));

    /* Histograms and the bucket helpers. */
    o = metric_opts("h", "help", NULL, 0);
    const double decreasing[2] = {2, 1};
    BAD(PROMSHM_RESULT_INVALID_BUCKETS, promshm_registry_histogram(reg, &o, decreasing, 2, &fam));
    const double with_nan[2] = {1, NAN};
    BAD(PROMSHM_RESULT_INVALID_BUCKETS, promshm_registry_histogram(reg, &o, with_nan, 2, &fam));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_histogram(reg, &o, NULL, 3, &fam));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_histogram(NULL, &o, decreasing, 2, &fam));
    const double buckets[2] = {1, 2};
    const promshm_family *hist = NULL;
    OK(promshm_registry_histogram(reg, &o, buckets, 2, &hist));
    BAD(PROMSHM_RESULT_SHAPE_MISMATCH, promshm_registry_histogram(reg, &o, buckets, 1, &fam));
    double out4[4] = {-1, -1, -1, -1};
    BAD(PROMSHM_RESULT_INVALID_BUCKETS, promshm_buckets_linear(0, 1, 0, out4));
    BAD(PROMSHM_RESULT_INVALID_BUCKETS, promshm_buckets_linear(0, 0, 4, out4));
    BAD(PROMSHM_RESULT_INVALID_BUCKETS, promshm_buckets_linear(NAN, 1, 4, out4));
    BAD(PROMSHM_RESULT_INVALID_BUCKETS, promshm_buckets_linear(0, 1, 5000, out4));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_buckets_linear(0, 1, 4, NULL));
    BAD(PROMSHM_RESULT_INVALID_BUCKETS, promshm_buckets_exponential(1, 1, 4, out4));
    BAD(PROMSHM_RESULT_INVALID_BUCKETS, promshm_buckets_exponential(0, 2, 4, out4));
    BAD(PROMSHM_RESULT_INVALID_BUCKETS, promshm_buckets_exponential(1e300, 1e10, 4, out4));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_buckets_exponential(1, 2, 4, NULL));
    EXPECT(out4[0] == -1 && out4[3] == -1);
    EXPECT(promshm_default_buckets(NULL) != NULL);

    /* Summaries. */
    o = metric_opts("s", "help", NULL, 0);
    const double q_out[1] = {1.5};
    BAD(PROMSHM_RESULT_INVALID_SUMMARY, promshm_registry_summary(reg, &o, q_out, 1, 0, 0, &fam));
    const double q_dec[2] = {0.9, 0.5};
    BAD(PROMSHM_RESULT_INVALID_SUMMARY, promshm_registry_summary(reg, &o, q_dec, 2, 0, 0, &fam));
    const double q_ok[2] = {0.5, 0.9};
    BAD(PROMSHM_RESULT_INVALID_SUMMARY, promshm_registry_summary(reg, &o, q_ok, 2, 1000, 100, &fam));
    BAD(PROMSHM_RESULT_INVALID_SUMMARY, promshm_registry_summary(reg, &o, q_ok, 2, 3, 5, &fam));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_summary(reg, &o, NULL, 2, 0, 0, &fam));
    const promshm_family *summary = NULL;
    OK(promshm_registry_summary(reg, &o, q_ok, 2, 0, 0, &summary));
    BAD(PROMSHM_RESULT_SHAPE_MISMATCH, promshm_registry_summary(reg, &o, q_ok, 1, 0, 0, &fam));

    /* Info and state sets. */
    o = metric_opts("i", "help", NULL, 0);
    o.unit = "bytes";
    BAD(PROMSHM_RESULT_INVALID_UNIT, promshm_registry_info(reg, &o, &fam));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_info(reg, &o, NULL));
    o.unit = NULL;
    const promshm_family *info = NULL;
    OK(promshm_registry_info(reg, &o, &info));
    o = metric_opts("st", "help", NULL, 0);
    BAD(PROMSHM_RESULT_INVALID_STATE, promshm_registry_stateset(reg, &o, NULL, 0, &fam));
    const char *dup_states[2] = {"up", "up"};
    BAD(PROMSHM_RESULT_INVALID_STATE, promshm_registry_stateset(reg, &o, dup_states, 2, &fam));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_stateset(reg, &o, NULL, 2, &fam));
    const char *null_state[1] = {NULL};
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_stateset(reg, &o, null_state, 1, &fam));
    const char *own_name[1] = {"bad_st"};
    o.label_names = own_name;
    o.n_label_names = 1;
    const char *states[2] = {"up", "down"};
    BAD(PROMSHM_RESULT_RESERVED_LABEL, promshm_registry_stateset(reg, &o, states, 2, &fam));
    o = metric_opts("st", "help", NULL, 0);
    const promshm_family *stateset = NULL;
    OK(promshm_registry_stateset(reg, &o, states, 2, &stateset));
    EXPECT(fam == SENTINEL_PTR);

    /* ---- families ---- */
    const promshm_series *s = (const promshm_series *)SENTINEL_PTR;
    const char *vals2[2] = {"x", "y"};
    const char *vals1[1] = {"x"};
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_labels(NULL, vals2, 2, &s));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_labels(counter, vals2, 2, NULL));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_labels(counter, NULL, 2, &s));
    BAD(PROMSHM_RESULT_LABEL_COUNT, promshm_family_labels(counter, vals1, 1, &s));
    BAD(PROMSHM_RESULT_LABEL_COUNT, promshm_family_labels(gauge, vals1, 1, &s));
    const char *null_val[2] = {"x", NULL};
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_labels(counter, null_val, 2, &s));
    const char *bad_val[2] = {"x", NOT_UTF8};
    BAD(PROMSHM_RESULT_NOT_UTF8, promshm_family_labels(counter, bad_val, 2, &s));
    const char *long_val[2] = {"x", huge};
    BAD(PROMSHM_RESULT_TOO_LONG, promshm_family_labels(counter, long_val, 2, &s));
    promshm_label pairs[2] = {{"a", "1"}, {"b", "2"}};
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_labels_by_name(NULL, pairs, 2, &s));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_labels_by_name(counter, NULL, 2, &s));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_labels_by_name(counter, pairs, 2, NULL));
    BAD(PROMSHM_RESULT_LABEL_COUNT, promshm_family_labels_by_name(counter, pairs, 1, &s));
    pairs[1].name = "zzz";
    BAD(PROMSHM_RESULT_UNKNOWN_LABEL, promshm_family_labels_by_name(counter, pairs, 2, &s));
    pairs[1].name = "a";
    BAD(PROMSHM_RESULT_DUPLICATE_LABEL, promshm_family_labels_by_name(counter, pairs, 2, &s));
    pairs[1].name = NULL;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_labels_by_name(counter, pairs, 2, &s));
    pairs[1].name = "b";
    pairs[1].value = NOT_UTF8;
    BAD(PROMSHM_RESULT_NOT_UTF8, promshm_family_labels_by_name(counter, pairs, 2, &s));
    EXPECT(s == SENTINEL_PTR);
    bool removed = true;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_remove(NULL, vals2, 2, &removed));
    BAD(PROMSHM_RESULT_LABEL_COUNT, promshm_family_remove(counter, vals1, 1, &removed));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_remove(counter, NULL, 2, &removed));
    EXPECT(removed);
    OK(promshm_family_remove(counter, vals2, 2, &removed)); /* never created: not removed */
    EXPECT(!removed);
    size_t cleared = 77;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_clear(NULL, &cleared));
    EXPECT(cleared == 77);
    EXPECT(promshm_family_type(NULL) == PROMSHM_METRIC_TYPE_INVALID);
    EXPECT(promshm_family_name(NULL) == NULL);
    EXPECT(promshm_family_label_count(NULL) == 0);
    EXPECT(promshm_family_clone(NULL) == NULL);
    promshm_family_free(NULL);

    /* ---- series: NULL and wrong types ---- */
    const promshm_series *c = NULL, *g = NULL, *h = NULL, *sm = NULL, *in = NULL, *ss = NULL;
    OK(promshm_family_labels(counter, vals2, 2, &c));
    OK(promshm_family_labels(gauge, NULL, 0, &g));
    OK(promshm_family_labels(hist, NULL, 0, &h));
    OK(promshm_family_labels(summary, NULL, 0, &sm));
    OK(promshm_family_labels(info, NULL, 0, &in));
    OK(promshm_family_labels(stateset, NULL, 0, &ss));
    double d = -7;
    uint64_t u = 77;
    size_t z = 77;

    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_counter_inc(NULL));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_counter_inc(g));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_counter_add(NULL, 1));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_counter_add(h, 1));
    BAD(PROMSHM_RESULT_INVALID_VALUE, promshm_counter_add(c, -1));
    BAD(PROMSHM_RESULT_INVALID_VALUE, promshm_counter_add(c, NAN));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_counter_get(NULL, &d));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_counter_get(c, NULL));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_counter_get(sm, &d));

    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_set(NULL, 1));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_gauge_set(c, 1));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_inc(NULL));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_gauge_inc(c));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_dec(NULL));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_gauge_dec(h));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_add(NULL, 1));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_gauge_add(sm, 1));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_sub(NULL, 1));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_gauge_sub(in, 1));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_set_to_current_time(NULL));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_gauge_set_to_current_time(ss));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_get(NULL, &d));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_get(g, NULL));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_gauge_get(c, &d));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_get_local(NULL, &d));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_gauge_get_local(g, NULL));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_gauge_get_local(c, &d));

    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_histogram_observe(NULL, 1));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_histogram_observe(sm, 1));
    BAD(PROMSHM_RESULT_INVALID_VALUE, promshm_histogram_observe(h, NAN));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_histogram_get(NULL, &u, &d));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_histogram_get(c, &u, &d));

    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_summary_observe(NULL, 1));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_summary_observe(h, 1));
    BAD(PROMSHM_RESULT_INVALID_VALUE, promshm_summary_observe(sm, NAN));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_summary_get(NULL, &u, &d));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_summary_get(h, &u, &d));
    double q_est[2] = {-7, -7};
    const double q_bad[1] = {2.0};
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_summary_quantiles(NULL, q_ok, 2, q_est));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_summary_quantiles(sm, NULL, 2, q_est));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_summary_quantiles(sm, q_ok, 2, NULL));
    BAD(PROMSHM_RESULT_INVALID_SUMMARY, promshm_summary_quantiles(sm, q_bad, 1, q_est));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_summary_quantiles(h, q_ok, 2, q_est));
    EXPECT(d == -7 && u == 77 && q_est[0] == -7);

    promshm_label info_pairs[2] = {{"version", "1"}, {"le", "x"}};
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_info_set(NULL, info_pairs, 1));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_info_set(c, info_pairs, 1));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_info_set(in, NULL, 1));
    BAD(PROMSHM_RESULT_RESERVED_LABEL, promshm_info_set(in, info_pairs, 2));
    info_pairs[1].name = "version";
    BAD(PROMSHM_RESULT_DUPLICATE_LABEL, promshm_info_set(in, info_pairs, 2));
    info_pairs[1].name = "a-b";
    BAD(PROMSHM_RESULT_INVALID_LABEL_NAME, promshm_info_set(in, info_pairs, 2));
    info_pairs[1].name = NULL;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_info_set(in, info_pairs, 2));

    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_stateset_set(NULL, "up"));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_stateset_set(ss, NULL));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_stateset_set(c, "up"));
    BAD(PROMSHM_RESULT_INVALID_STATE, promshm_stateset_set(ss, "sideways"));
    BAD(PROMSHM_RESULT_NOT_UTF8, promshm_stateset_set(ss, NOT_UTF8));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_stateset_set_index(NULL, 0));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_stateset_set_index(g, 0));
    BAD(PROMSHM_RESULT_INVALID_STATE, promshm_stateset_set_index(ss, 2));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_stateset_get(NULL, &z));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_stateset_get(ss, NULL));
    BAD(PROMSHM_RESULT_WRONG_TYPE, promshm_stateset_get(in, &z));
    EXPECT(z == 77);

    EXPECT(promshm_series_type(NULL) == PROMSHM_METRIC_TYPE_INVALID);
    EXPECT(promshm_series_type(ss) == PROMSHM_METRIC_TYPE_STATE_SET);
    EXPECT(promshm_series_clone(NULL) == NULL);
    promshm_series_free(NULL);

    /* ---- flush ---- */
    OK(promshm_flush());
    promshm_flusher *flusher = (promshm_flusher *)SENTINEL_PTR;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_flusher_start(10, NULL));
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_flusher_start(0, &flusher));
    EXPECT(flusher == SENTINEL_PTR);
    promshm_flusher_stop(NULL);

    /* ---- rendering ---- */
    char buf[16];
    memset(buf, '#', sizeof buf);
    size_t need = 77;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_render(NULL, PROMSHM_FORMAT_PROMETHEUS, buf, sizeof buf, &need));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_render(area, PROMSHM_FORMAT_PROMETHEUS, buf, sizeof buf, NULL));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_render(area, PROMSHM_FORMAT_PROMETHEUS, NULL, 10, &need));
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_render(area, 5, buf, sizeof buf, &need));
    EXPECT(need == 77);
    BAD(PROMSHM_RESULT_BUFFER_TOO_SMALL, promshm_area_render(area, PROMSHM_FORMAT_PROMETHEUS, buf, sizeof buf, &need));
    EXPECT(need > sizeof buf && buf[0] == '#' && buf[15] == '#'); /* buffer untouched */
    need = 77;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_render(NULL, PROMSHM_FORMAT_PROMETHEUS, buf, sizeof buf, &need));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_render(reg, PROMSHM_FORMAT_PROMETHEUS, buf, sizeof buf, NULL));
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_registry_render(reg, 5, buf, sizeof buf, &need));
    BAD(PROMSHM_RESULT_BUFFER_TOO_SMALL, promshm_registry_render(reg, PROMSHM_FORMAT_OPENMETRICS, NULL, 0, &need));
    EXPECT(need > 1 && need != 77);

    int calls = 0;
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_render_callback(NULL, PROMSHM_FORMAT_PROMETHEUS, failing_write, &calls));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_render_callback(area, PROMSHM_FORMAT_PROMETHEUS, NULL, &calls));
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_render_callback(area, 3, failing_write, &calls));
    EXPECT(calls == 0);
    BAD(PROMSHM_RESULT_WRITE_FAILED, promshm_area_render_callback(area, PROMSHM_FORMAT_PROMETHEUS, failing_write, &calls));
    EXPECT(calls == 1); /* not called again after a failure */
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_render_callback(NULL, PROMSHM_FORMAT_PROMETHEUS, failing_write, &calls));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_render_callback(reg, PROMSHM_FORMAT_PROMETHEUS, NULL, NULL));
    BAD(PROMSHM_RESULT_WRITE_FAILED, promshm_registry_render_callback(reg, PROMSHM_FORMAT_OPENMETRICS, failing_write, &calls));
    size_t streamed = 0;
    OK(promshm_area_render_callback(ro, PROMSHM_FORMAT_PROMETHEUS, counting_write, &streamed));
    EXPECT(streamed > 0);

    char out_file[300];
    snprintf(out_file, sizeof out_file, "%s/out.prom", dir);
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_render_to_file(NULL, PROMSHM_FORMAT_PROMETHEUS, out_file));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_area_render_to_file(area, PROMSHM_FORMAT_PROMETHEUS, NULL));
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_render_to_file(area, 9, out_file));
    BAD(PROMSHM_RESULT_NOT_UTF8, promshm_area_render_to_file(area, PROMSHM_FORMAT_PROMETHEUS, NOT_UTF8));
    BAD(PROMSHM_RESULT_NOT_FOUND, promshm_area_render_to_file(area, PROMSHM_FORMAT_PROMETHEUS, missing_dir));
    BAD(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_render_to_file(area, PROMSHM_FORMAT_PROMETHEUS, "/"));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_render_to_file(NULL, PROMSHM_FORMAT_PROMETHEUS, out_file));
    BAD(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_render_to_file(reg, PROMSHM_FORMAT_PROMETHEUS, NULL));
    BAD(PROMSHM_RESULT_IO, promshm_registry_render_to_file(reg, PROMSHM_FORMAT_PROMETHEUS, dir)); /* a directory */
    EXPECT(access(out_file, F_OK) != 0);
    OK(promshm_area_render_to_file(ro, PROMSHM_FORMAT_PROMETHEUS, out_file));
    unlink(out_file);

    EXPECT(promshm_format_from_accept(NULL) == PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(promshm_format_from_accept("") == PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(promshm_format_from_accept(NOT_UTF8) == PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(promshm_format_from_accept(";;;,,,==") == PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(promshm_format_from_accept_any(NULL) == PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(promshm_format_from_accept_any(NOT_UTF8) == PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(promshm_format_from_accept_any(";;;,,,==") == PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(promshm_format_content_type(3) == NULL);
    EXPECT(promshm_format_content_type(0xffffffffu) == NULL);

    /* ---- a freed area: what was made from it keeps working ---- */
    promshm_area_free(area);
    promshm_area_free(ro);
    OK(promshm_counter_inc(c));
    OK(promshm_flush());
    OK(promshm_counter_get(c, &d));
    EXPECT(d == 1);
    const promshm_series *c2 = NULL;
    const char *vals_other[2] = {"p", "q"};
    OK(promshm_family_labels(counter, vals_other, 2, &c2));
    char *text = render_text(NULL, reg, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(sample_value(text, "bad_c_total{a=\"x\",b=\"y\"}") == 1);
    free(text);

    const promshm_series *all[] = {c, c2, g, h, sm, in, ss};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) promshm_series_free(all[i]);
    const promshm_family *fams[] = {counter, gauge, hist, summary, info, stateset};
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) promshm_family_free(fams[i]);
    promshm_registry_free(reg);
    promshm_registry_free(ro_reg);
    free(huge);
    unlink(path);
    unlink(garbage);
    unlink(small);
    unlink(link_path);
    rmdir(dir);
    printf("bad_input: %d checks passed\n", g_checks);
    return 0;
}
