/*
 * Updates by label values without a series handle:
 * promshm_family_inc_by_values() and promshm_family_observe_by_values().
 * - exact totals with values in fresh buffers on every call (the per-thread
 *   cache compares bytes, not pointers), values that are prefixes of each
 *   other, more series than the cache has slots, 2 threads and a child process;
 * - a removed series is not updated through the cache: the values resolve
 *   to the fresh series;
 * - a freed family's cached entry never serves another family; a thread
 *   exiting with the last reference to a family in its cache loses nothing;
 * - errors: NULL family/values/value, wrong family type (nothing created),
 *   label count, not UTF-8, negative delta / NaN (nothing added, on a cache
 *   hit and a miss), and the _e variant's error object.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static long g_n;
static const promshm_family *g_reqs;

/* inc_by_values n times with the values copied into a fresh buffer each time. */
static void inc_copies(const promshm_family *f, const char *a, const char *b, long n) {
    for (long i = 0; i < n; i++) {
        char va[32], vb[32];
        snprintf(va, sizeof va, "%s", a);
        snprintf(vb, sizeof vb, "%s", b);
        const char *values[] = {va, vb};
        OK(promshm_family_inc_by_values(f, values, 2, 1.0));
    }
}

static void *thread_main(void *arg) {
    (void)arg;
    inc_copies(g_reqs, "GET", "200", g_n);
    OK(promshm_flush());
    return NULL;
}

/* Updates a family by values 100 times, frees the handle it was given, and
 * exits: the thread's cache then holds the last reference, dropped at exit. */
static void *last_reference_main(void *arg) {
    const promshm_family *f = (const promshm_family *)arg;
    const char *values[] = {"GET", "200"};
    for (int i = 0; i < 100; i++) OK(promshm_family_inc_by_values(f, values, 2, 1));
    promshm_family_free(f);
    return NULL;
}

static double value_of(const promshm_area *area, const char *series) {
    OK(promshm_flush());
    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    double v = sample_value(text, series);
    free(text);
    return v;
}

static int has_series(const promshm_area *area, const char *prefix) {
    OK(promshm_flush());
    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    int found = has_line_prefix(text, prefix);
    free(text);
    return found;
}

int main(void) {
    g_n = test_iterations(20000, 1);
    const promshm_area *area = NULL;
    const promshm_registry *reg = NULL;
    OK(promshm_area_anonymous(NULL, &area));
    OK(promshm_registry_new(area, "app", NULL, 0, &reg));
    const char *names[] = {"method", "code"};
    promshm_metric_opts o = metric_opts("reqs", "Requests.", names, 2);
    OK(promshm_registry_counter(reg, &o, &g_reqs));

    /* Fresh buffers every call, from the main thread, 2 threads and a child. */
    inc_copies(g_reqs, "GET", "200", g_n);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) EXPECT(pthread_create(&t[i], NULL, thread_main, NULL) == 0);
    for (int i = 0; i < 2; i++) EXPECT(pthread_join(t[i], NULL) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        inc_copies(g_reqs, "GET", "200", g_n);
        _exit(promshm_flush() == PROMSHM_RESULT_OK ? 0 : 1);
    }
    int status = 0;
    EXPECT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(value_of(area, "app_reqs_total{method=\"GET\",code=\"200\"}") == 4.0 * (double)g_n);

    /* Prefixes of each other, and more series than the cache holds, in turn. */
    const char *codes[] = {"2", "20", "200x", "201", "404", "500", ""};
    for (long i = 0; i < 7 * 100; i++) {
        const char *values[] = {"PUT", codes[i % 7]};
        OK(promshm_family_inc_by_values(g_reqs, values, 2, 0.5));
    }
    EXPECT(value_of(area, "app_reqs_total{method=\"PUT\",code=\"2\"}") == 50.0);
    EXPECT(value_of(area, "app_reqs_total{method=\"PUT\",code=\"20\"}") == 50.0);
    EXPECT(value_of(area, "app_reqs_total{method=\"PUT\",code=\"200x\"}") == 50.0);
    EXPECT(value_of(area, "app_reqs_total{method=\"PUT\",code=\"\"}") == 50.0);

    /* The same values give the same series as promshm_family_labels. */
    const char *get200[] = {"GET", "200"};
    const promshm_series *s = NULL;
    OK(promshm_family_labels(g_reqs, get200, 2, &s));
    OK(promshm_counter_add(s, 7));
    EXPECT(value_of(area, "app_reqs_total{method=\"GET\",code=\"200\"}") == 4.0 * (double)g_n + 7);
    promshm_series_free(s);

    /* Removed: the cached series is dead, the values resolve to a fresh one. */
    const char *del[] = {"DELETE", "204"};
    OK(promshm_family_inc_by_values(g_reqs, del, 2, 5));
    EXPECT(value_of(area, "app_reqs_total{method=\"DELETE\",code=\"204\"}") == 5.0);
    bool removed = false;
    OK(promshm_family_remove(g_reqs, del, 2, &removed));
    EXPECT(removed);
    EXPECT(!has_series(area, "app_reqs_total{method=\"DELETE\""));
    OK(promshm_family_inc_by_values(g_reqs, del, 2, 2));
    EXPECT(value_of(area, "app_reqs_total{method=\"DELETE\",code=\"204\"}") == 2.0);

    /* A freed family: its entry keeps it alive, so no other family is served it. */
    for (int round = 0; round < 8; round++) {
        char name[32];
        snprintf(name, sizeof name, "short_lived_%d", round);
        promshm_metric_opts so = metric_opts(name, "Short-lived.", names, 2);
        const promshm_family *f = NULL;
        OK(promshm_registry_counter(reg, &so, &f));
        OK(promshm_family_inc_by_values(f, get200, 2, (double)(round + 1)));
        promshm_family_free(f);
    }
    for (int round = 0; round < 8; round++) {
        char series[96];
        snprintf(series, sizeof series, "app_short_lived_%d_total{method=\"GET\",code=\"200\"}", round);
        EXPECT(value_of(area, series) == (double)(round + 1));
    }

    /* A thread exits holding the last reference to a family in its cache:
     * nothing is lost (the family's buffered values are flushed when it goes). */
    {
        promshm_metric_opts lo = metric_opts("last_ref", "Last reference.", names, 2);
        const promshm_family *f = NULL;
        OK(promshm_registry_counter(reg, &lo, &f));
        pthread_t lt;
        EXPECT(pthread_create(&lt, NULL, last_reference_main, (void *)f) == 0);
        EXPECT(pthread_join(lt, NULL) == 0);
        EXPECT(value_of(area, "app_last_ref_total{method=\"GET\",code=\"200\"}") == 100.0);
    }

    /* Histogram and summary. */
    const char *path[] = {"path"};
    promshm_metric_opts ho = metric_opts("lat", "Latency.", path, 1);
    const double buckets[] = {0.1, 1, 10};
    const promshm_family *hist = NULL, *summ = NULL, *gauge = NULL;
    OK(promshm_registry_histogram(reg, &ho, buckets, 3, &hist));
    promshm_metric_opts qo = metric_opts("size", "Sizes.", path, 1);
    const double quantiles[] = {0.5};
    OK(promshm_registry_summary(reg, &qo, quantiles, 1, 0, 0, &summ));
    const char *root[] = {"/"};
    for (int i = 0; i < 100; i++) {
        OK(promshm_family_observe_by_values(hist, root, 1, 0.5));
        OK(promshm_family_observe_by_values(summ, root, 1, 2.0));
    }
    EXPECT(value_of(area, "app_lat_bucket{path=\"/\",le=\"0.1\"}") == 0);
    EXPECT(value_of(area, "app_lat_bucket{path=\"/\",le=\"1.0\"}") == 100);
    EXPECT(value_of(area, "app_lat_sum{path=\"/\"}") == 50);
    EXPECT(value_of(area, "app_size_count{path=\"/\"}") == 100);
    EXPECT(value_of(area, "app_size_sum{path=\"/\"}") == 200);

    /* Errors. Nothing is added by a rejected update, hit or miss. */
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_inc_by_values(NULL, get200, 2, 1));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_inc_by_values(g_reqs, NULL, 2, 1));
    const char *with_null[] = {"GET", NULL};
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_family_inc_by_values(g_reqs, with_null, 2, 1));
    EXPECT_RC(PROMSHM_RESULT_LABEL_COUNT, promshm_family_inc_by_values(g_reqs, get200, 1, 1));
    const char *bad_utf8[] = {"GET", "\xff"};
    EXPECT_RC(PROMSHM_RESULT_NOT_UTF8, promshm_family_inc_by_values(g_reqs, bad_utf8, 2, 1));
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_family_inc_by_values(g_reqs, get200, 2, -1));
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_family_inc_by_values(g_reqs, get200, 2, NAN));
    const char *fresh[] = {"PATCH", "418"};
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_family_inc_by_values(g_reqs, fresh, 2, -1));
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_family_observe_by_values(hist, root, 1, NAN));
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_family_observe_by_values(g_reqs, get200, 2, 1));
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_family_inc_by_values(hist, root, 1, 1));
    promshm_metric_opts go = metric_opts("temp", "Temperature.", path, 1);
    OK(promshm_registry_gauge(reg, &go, PROMSHM_GAUGE_MODE_ALL, &gauge));
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_family_inc_by_values(gauge, root, 1, 1));
    EXPECT(!has_series(area, "app_temp{"));
    EXPECT(value_of(area, "app_reqs_total{method=\"GET\",code=\"200\"}") == 4.0 * (double)g_n + 7);
    EXPECT(value_of(area, "app_lat_count{path=\"/\"}") == 100);
    promshm_error *err = promshm_error_new();
    EXPECT(err != NULL);
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_family_inc_by_values_e(gauge, root, 1, 1, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_WRONG_TYPE);
    EXPECT(strstr(promshm_error_detail(err), "not a counter") != NULL);
    OK(promshm_family_observe_by_values_e(hist, root, 1, 0.05, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_OK);
    promshm_error_free(err);
    EXPECT(value_of(area, "app_lat_bucket{path=\"/\",le=\"0.1\"}") == 1);

    promshm_family_free(g_reqs);
    promshm_family_free(hist);
    promshm_family_free(summ);
    promshm_family_free(gauge);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("by_values: %d checks passed\n", g_checks);
    return 0;
}
