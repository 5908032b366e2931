/*
 * The whole API on its happy path, in one process: an area file created,
 * reopened read-write and read-only; registries with prefixes and constant
 * labels; every family type with its options; series by values and by
 * name; every update and getter; remove and clear; every way to render;
 * format negotiation; stats and the worker table.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

/* Collects the streamed rendering. */
typedef struct {
    char *data;
    size_t len, cap;
    int calls;
} sink;

static int sink_write(void *userdata, const uint8_t *data, size_t len) {
    sink *s = (sink *)userdata;
    if (len == 0) return 1; /* never called with nothing */
    if (s->len + len + 1 > s->cap) {
        size_t cap = (s->len + len + 1) * 2;
        char *p = (char *)realloc(s->data, cap);
        if (!p) return 1;
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->len, data, len);
    s->len += len;
    s->data[s->len] = '\0';
    s->calls++;
    return 0;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) FAIL("cannot open %s", path);
    char *buf = (char *)malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int main(void) {
    char dir[] = "/tmp/promshm-c-basic-XXXXXX";
    if (!mkdtemp(dir)) FAIL("mkdtemp");
    char path[256], prom[256];
    snprintf(path, sizeof path, "%s/metrics.promshm", dir);
    snprintf(prom, sizeof prom, "%s/app.prom", dir);

    /* ---- areas ---- */
    promshm_area_options options;
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    options.pages = 256;
    options.max_workers = 8;
    const promshm_area *area = NULL;
    OK(promshm_area_create(path, &options, &area));
    struct stat st;
    EXPECT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    EXPECT(!promshm_area_is_read_only(area));
    uint32_t slot = 99;
    OK(promshm_area_attach(area, &slot));
    EXPECT(slot == 0);
    OK(promshm_area_attach(area, NULL));
    promshm_area_stats stats = PROMSHM_AREA_STATS_INIT;
    OK(promshm_area_get_stats(area, &stats));
    EXPECT(stats.pages_total == 256 && stats.max_workers == 8 && stats.families == 0);
    promshm_worker_info workers[8] = {PROMSHM_WORKER_INFO_INIT};
    size_t n_workers = 0;
    EXPECT_RC(PROMSHM_RESULT_BUFFER_TOO_SMALL, promshm_area_workers(area, NULL, 0, &n_workers));
    EXPECT(n_workers == 1);
    OK(promshm_area_workers(area, workers, 8, &n_workers));
    EXPECT(n_workers == 1 && workers[0].pid == (uint32_t)getpid() && workers[0].alive);
    uint32_t reaped = 99;
    OK(promshm_area_reap(area, &reaped));
    EXPECT(reaped == 0);
    const promshm_area *again = NULL;
    OK(promshm_area_create(path, NULL, &again)); /* existing file: opened */
    promshm_area_free(again);
    const promshm_area *clone = promshm_area_clone(area);
    EXPECT(clone == area);
    promshm_area_free(clone);

    /* ---- registries ---- */
    const promshm_registry *root = NULL;
    OK(promshm_area_registry(area, &root));
    promshm_label consts[1] = {{"app", "shop"}};
    const promshm_registry *app = NULL;
    OK(promshm_registry_new(area, "shop", consts, 1, &app));
    const promshm_registry *other = NULL;
    OK(promshm_registry_new(area, "other", NULL, 0, &other));
    const promshm_registry *quiet = NULL;
    OK(promshm_registry_without_self_metrics(root, &quiet));

    /* ---- families ---- */
    const char *path_status[2] = {"path", "status"};
    promshm_metric_opts o = metric_opts("requests", "Requests served.", path_status, 2);
    const promshm_family *requests = NULL;
    OK(promshm_registry_counter(app, &o, &requests));
    const promshm_family *requests2 = NULL;
    OK(promshm_registry_counter(app, &o, &requests2)); /* same shape: the same family */
    EXPECT(promshm_family_type(requests) == PROMSHM_METRIC_TYPE_COUNTER);
    EXPECT(strcmp(promshm_family_name(requests), "shop_requests") == 0);
    EXPECT(promshm_family_label_count(requests) == 2);

    o = metric_opts("temperature", "Temperature.", NULL, 0);
    o.unit = "celsius";
    const promshm_family *temp = NULL;
    OK(promshm_registry_gauge(app, &o, PROMSHM_GAUGE_MODE_MAX, &temp));
    EXPECT(strcmp(promshm_family_name(temp), "shop_temperature_celsius") == 0);
    o = metric_opts("busy", "Busy per worker.", NULL, 0);
    const promshm_family *busy = NULL;
    OK(promshm_registry_gauge(app, &o, PROMSHM_GAUGE_MODE_ALL, &busy));

    o = metric_opts("duration", "Duration.", NULL, 0);
    o.unit = "seconds";
    o.update_mode = PROMSHM_UPDATE_MODE_EAGER;
    size_t n_default = 0;
    const double *def = promshm_default_buckets(&n_default);
    const promshm_family *duration = NULL;
    OK(promshm_registry_histogram(app, &o, def, n_default, &duration));
    double exp_buckets[4];
    OK(promshm_buckets_exponential(1, 2, 4, exp_buckets));
    EXPECT(exp_buckets[0] == 1 && exp_buckets[3] == 8);

    o = metric_opts("size", "Sizes.", NULL, 0);
    o.unit = "bytes";
    const double q[3] = {0.5, 0.9, 0.99};
    const promshm_family *size = NULL;
    OK(promshm_registry_summary(app, &o, q, 3, 60000, 0, &size));

    o = metric_opts("build", "Build information.", NULL, 0);
    const promshm_family *build = NULL;
    OK(promshm_registry_info(app, &o, &build));
    EXPECT(promshm_family_type(build) == PROMSHM_METRIC_TYPE_INFO);

    o = metric_opts("state", "Service state.", NULL, 0);
    const char *states[3] = {"starting", "running", "stopping"};
    const promshm_family *state = NULL;
    OK(promshm_registry_stateset(app, &o, states, 3, &state));

    o = metric_opts("other_total", "Counter in another namespace.", NULL, 0);
    const promshm_family *other_total = NULL;
    OK(promshm_registry_counter(other, &o, &other_total));
    EXPECT(strcmp(promshm_family_name(other_total), "other_other") == 0);

    /* ---- names: every name a family renders is reserved in the area ---- */
    uint32_t taken = 7;
    OK(promshm_area_name_taken(area, "shop_requests_total", PROMSHM_METRIC_TYPE_GAUGE, &taken));
    EXPECT(taken == 1); /* the counter shop_requests renders it */
    OK(promshm_area_name_taken(area, "shop_requests_other", PROMSHM_METRIC_TYPE_GAUGE, &taken));
    EXPECT(taken == 0);
    OK(promshm_area_name_taken(area, "shop", PROMSHM_METRIC_TYPE_COUNTER, &taken));
    EXPECT(taken == 0);
    {
        promshm_area_stats before = PROMSHM_AREA_STATS_INIT, after = PROMSHM_AREA_STATS_INIT;
        OK(promshm_area_get_stats(area, &before));
        o = metric_opts("requests_created", "Clashes with shop_requests.", NULL, 0);
        const promshm_family *clash = NULL;
        EXPECT_RC(PROMSHM_RESULT_NAME_TAKEN, promshm_registry_gauge(app, &o, PROMSHM_GAUGE_MODE_SUM, &clash));
        EXPECT(clash == NULL);
        o = metric_opts("temperature_count", "A reserved suffix on a gauge.", NULL, 0);
        EXPECT_RC(PROMSHM_RESULT_INVALID_METRIC_NAME,
                  promshm_registry_gauge(root, &o, PROMSHM_GAUGE_MODE_SUM, &clash));
        /* Only the clash is counted (promshm_registrations_name_taken_total). */
        OK(promshm_area_get_stats(area, &after));
        EXPECT(after.name_clashes == before.name_clashes + 1);
    }
    EXPECT(strcmp(promshm_metric_type_suffix(PROMSHM_METRIC_TYPE_SUMMARY, 0), "") == 0);
    EXPECT(strcmp(promshm_metric_type_suffix(PROMSHM_METRIC_TYPE_SUMMARY, 1), "_count") == 0);
    EXPECT(strcmp(promshm_metric_type_suffix(PROMSHM_METRIC_TYPE_INFO, 1), "_info") == 0);
    EXPECT(promshm_metric_type_suffix(PROMSHM_METRIC_TYPE_GAUGE, 1) == NULL);
    EXPECT(promshm_metric_type_suffix(0, 0) == NULL && promshm_metric_type_suffix(99, 0) == NULL);

    /* ---- series and updates ---- */
    const char *home_ok[2] = {"/", "200"};
    const promshm_series *home = NULL;
    OK(promshm_family_labels(requests, home_ok, 2, &home));
    promshm_label by_name[2] = {{"status", "200"}, {"path", "/"}};
    const promshm_series *home2 = NULL;
    OK(promshm_family_labels_by_name(requests2, by_name, 2, &home2));
    EXPECT(promshm_series_type(home) == PROMSHM_METRIC_TYPE_COUNTER);
    OK(promshm_counter_inc(home));
    OK(promshm_counter_add(home2, 2.5));
    OK(promshm_flush());
    double v = 0;
    OK(promshm_counter_get(home, &v));
    EXPECT(v == 3.5);
    const promshm_series *home3 = promshm_series_clone(home);
    EXPECT(home3 == home);
    promshm_series_free(home3);

    const promshm_series *t = NULL;
    OK(promshm_family_labels(temp, NULL, 0, &t));
    OK(promshm_gauge_set(t, 20));
    OK(promshm_gauge_inc(t));
    OK(promshm_gauge_dec(t));
    OK(promshm_gauge_dec(t));
    OK(promshm_gauge_add(t, 3));
    OK(promshm_gauge_sub(t, 0.5));
    OK(promshm_gauge_get(t, &v));
    EXPECT(v == 21.5);
    OK(promshm_gauge_get_local(t, &v));
    EXPECT(v == 21.5);
    const promshm_series *b = NULL;
    OK(promshm_family_labels(busy, NULL, 0, &b));
    OK(promshm_gauge_set_to_current_time(b));
    OK(promshm_gauge_get(b, &v));
    EXPECT(v > 1.6e9);

    const promshm_series *d = NULL;
    OK(promshm_family_labels(duration, NULL, 0, &d));
    OK(promshm_histogram_observe(d, 0.2));
    OK(promshm_histogram_observe(d, 3));
    uint64_t count = 0;
    double sum = 0;
    OK(promshm_histogram_get(d, &count, &sum)); /* eager: visible without a flush */
    EXPECT(count == 2 && sum == 3.2);
    OK(promshm_histogram_get(d, NULL, NULL));

    const promshm_series *sz = NULL;
    OK(promshm_family_labels(size, NULL, 0, &sz));
    for (int i = 1; i <= 1000; i++) OK(promshm_summary_observe(sz, i));
    OK(promshm_summary_get(sz, &count, &sum));
    EXPECT(count == 1000 && sum == 500500);
    double est[2];
    const double wanted[2] = {0.5, 1.0};
    OK(promshm_summary_quantiles(sz, wanted, 2, est));
    EXPECT(fabs(est[0] - 500) <= 15 && fabs(est[1] - 1000) <= 15); /* sketch: <= 1 % */

    const promshm_series *bi = NULL;
    OK(promshm_family_labels(build, NULL, 0, &bi));
    promshm_label info[2] = {{"version", "1.2.3"}, {"commit", "abc"}};
    OK(promshm_info_set(bi, info, 2));

    const promshm_series *st_ = NULL;
    OK(promshm_family_labels(state, NULL, 0, &st_));
    size_t current = 99;
    OK(promshm_stateset_get(st_, &current));
    EXPECT(current == 0);
    OK(promshm_stateset_set(st_, "stopping"));
    OK(promshm_stateset_get(st_, &current));
    EXPECT(current == 2);
    OK(promshm_stateset_set_index(st_, 1));
    OK(promshm_stateset_get(st_, &current));
    EXPECT(current == 1);

    /* ---- rendering ---- */
    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(sample_value(text, "shop_requests_total{app=\"shop\",path=\"/\",status=\"200\"}") == 3.5);
    EXPECT(sample_value(text, "shop_temperature_celsius{app=\"shop\"}") == 21.5);
    EXPECT(sample_value(text, "shop_duration_seconds_count{app=\"shop\"}") == 2);
    EXPECT(sample_value(text, "shop_duration_seconds_bucket{app=\"shop\",le=\"0.25\"}") == 1);
    EXPECT(sample_value(text, "shop_size_bytes_count{app=\"shop\"}") == 1000);
    EXPECT(sample_value(text,
                        "shop_build_info{app=\"shop\",version=\"1.2.3\",commit=\"abc\"}") == 1);
    EXPECT(sample_value(text, "shop_state{app=\"shop\",shop_state=\"running\"}") == 1);
    EXPECT(sample_value(text, "shop_state{app=\"shop\",shop_state=\"stopping\"}") == 0);
    EXPECT(has_line_prefix(text, "shop_busy{app=\"shop\",worker=\"0\"}"));
    EXPECT(has_line_prefix(text, "# TYPE other_other_total counter")); /* no series yet */
    EXPECT(has_line_prefix(text, "promshm_series ")); /* self-metrics */
    free(text);

    text = render_text(NULL, app, PROMSHM_FORMAT_OPENMETRICS);
    EXPECT(has_line_prefix(text, "# EOF"));
    EXPECT(has_line_prefix(text, "# UNIT shop_duration_seconds seconds"));
    EXPECT(!has_line_prefix(text, "other_")); /* only the shop namespace */
    EXPECT(!has_line_prefix(text, "promshm_"));
    sink s;
    memset(&s, 0, sizeof s);
    OK(promshm_registry_render_callback(app, PROMSHM_FORMAT_OPENMETRICS, sink_write, &s));
    EXPECT(s.calls >= 1 && s.data && strlen(text) == s.len);
    free(s.data);
    free(text);

    text = render_text(NULL, quiet, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(has_line_prefix(text, "shop_requests_total") &&
           has_line_prefix(text, "# TYPE other_other_total"));
    EXPECT(!has_line_prefix(text, "promshm_"));
    free(text);

    memset(&s, 0, sizeof s);
    OK(promshm_area_render_callback(area, PROMSHM_FORMAT_PROMETHEUS, sink_write, &s));
    EXPECT(s.len > 0 && has_line_prefix(s.data, "shop_requests_total"));
    free(s.data);

    OK(promshm_area_render_to_file(area, PROMSHM_FORMAT_PROMETHEUS, prom));
    OK(promshm_registry_render_to_file(app, PROMSHM_FORMAT_PROMETHEUS, prom)); /* replaced */
    text = read_file(prom);
    EXPECT(has_line_prefix(text, "shop_requests_total") && !has_line_prefix(text, "other_"));
    free(text);

    /* ---- content negotiation ---- */
    EXPECT(promshm_format_from_accept("application/openmetrics-text; version=1.0.0, "
                                      "text/plain;version=0.0.4;q=0.5") ==
           PROMSHM_FORMAT_OPENMETRICS);
    EXPECT(promshm_format_from_accept("text/plain") == PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(promshm_format_from_accept(NULL) == PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(strcmp(promshm_format_content_type(PROMSHM_FORMAT_PROMETHEUS),
                  "text/plain; version=0.0.4; charset=utf-8") == 0);
    EXPECT(strncmp(promshm_format_content_type(PROMSHM_FORMAT_OPENMETRICS),
                   "application/openmetrics-text", 28) == 0);
    {
        /* Protobuf only where the caller takes binary renders. */
        const char *proto_first =
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
            "encoding=delimited;q=0.5,application/openmetrics-text;q=0.4,*/*;q=0.1";
        char *pb = NULL;
        size_t pb_len = 0;
        EXPECT(promshm_format_from_accept_any(proto_first) == PROMSHM_FORMAT_PROTOBUF);
        EXPECT(promshm_format_from_accept(proto_first) == PROMSHM_FORMAT_OPENMETRICS);
        EXPECT(strncmp(promshm_format_content_type(PROMSHM_FORMAT_PROTOBUF),
                       "application/vnd.google.protobuf", 31) == 0);
        OK(promshm_area_render_alloc(area, PROMSHM_FORMAT_PROTOBUF, &pb, &pb_len, NULL));
        /* Length-delimited messages: zeros inside, so strlen() is shorter. */
        EXPECT(pb_len > 0 && memchr(pb, 0, pb_len) != NULL && strlen(pb) < pb_len);
        promshm_render_free(pb);
    }

    /* ---- remove and clear ---- */
    const char *missing[2] = {"/missing", "404"};
    const promshm_series *m = NULL;
    OK(promshm_family_labels(requests, missing, 2, &m));
    promshm_series_free(m);
    bool removed = false;
    OK(promshm_family_remove(requests, missing, 2, &removed));
    EXPECT(removed);
    OK(promshm_family_remove(requests, missing, 2, &removed));
    EXPECT(!removed);
    size_t cleared = 0;
    OK(promshm_family_clear(requests, &cleared));
    EXPECT(cleared == 1);
    OK(promshm_family_clear(requests, NULL));
    text = render_text(NULL, app, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(!has_line_prefix(text, "shop_requests_total{"));
    free(text);
    /* The handle still works; resolving again creates a fresh series. */
    OK(promshm_counter_inc(home));
    const promshm_series *fresh = NULL;
    OK(promshm_family_labels(requests, home_ok, 2, &fresh));
    OK(promshm_counter_inc(fresh));
    OK(promshm_flush());
    OK(promshm_counter_get(fresh, &v));
    EXPECT(v == 1);
    promshm_series_free(fresh);

    /* ---- another process's view: the same file, read-only ---- */
    const promshm_area *ro = NULL;
    OK(promshm_area_open(path, PROMSHM_OPEN_MODE_READ_ONLY, &ro));
    EXPECT(promshm_area_is_read_only(ro));
    text = render_text(ro, NULL, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(sample_value(text, "shop_temperature_celsius{app=\"shop\"}") == 21.5);
    free(text);
    const promshm_area *rw = NULL;
    OK(promshm_area_open(path, PROMSHM_OPEN_MODE_READ_WRITE, &rw));
    OK(promshm_area_get_stats(rw, &stats));
    EXPECT(stats.families == 8 && stats.series >= 7);

    /* ---- the timer flusher ---- */
    promshm_flusher *flusher = NULL;
    OK(promshm_flusher_start(1, &flusher));
    OK(promshm_counter_inc(home2));
    promshm_flusher_stop(flusher);

    /* ---- cleanup, in an unusual order: objects outlive their parents ---- */
    promshm_area_free(area);
    promshm_registry_free(root);
    promshm_registry_free(app);
    promshm_registry_free(other);
    promshm_registry_free(quiet);
    OK(promshm_counter_inc(home2)); /* still fine: the series keeps the mapping */
    promshm_family_free(requests);
    promshm_family_free(requests2);
    promshm_family_free(temp);
    promshm_family_free(busy);
    promshm_family_free(duration);
    promshm_family_free(size);
    promshm_family_free(build);
    promshm_family_free(state);
    promshm_family_free(other_total);
    const promshm_series *all[] = {home, home2, t, b, d, sz, bi, st_};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) promshm_series_free(all[i]);
    promshm_area_free(ro);
    promshm_area_free(rw);
    unlink(prom);
    unlink(path);
    rmdir(dir);
    printf("basic: %d checks passed\n", g_checks);
    return 0;
}
