/*
 * Pre-fork: the parent makes an anonymous area and registers the families,
 * forks 8 workers that each make 1,000,000 labelled counter increments and
 * 1,000,000 labelled histogram observations (fewer with
 * PROMSHM_C_TEST_ITERATIONS, as under Valgrind), then the parent renders the
 * area and checks the exact totals in the text.
 *
 * Even workers flush explicitly and leave with _exit() (no atexit): their
 * counts must come from promshm_flush(). Odd workers just exit(): their
 * counts must come from the flush promshm runs at process exit.
 */
#define _POSIX_C_SOURCE 200809L
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define WORKERS 8
/* 1,000,000 per worker; PROMSHM_C_TEST_ITERATIONS (a multiple of 20) overrides it. */
static long ITERATIONS = 1000000L;

static const char *const PATHS[4] = {"/p0", "/p1", "/p2", "/p3"};

static void worker(int id, const promshm_family *requests, const promshm_family *latency) {
    const promshm_series *by_path[4];
    for (int p = 0; p < 4; p++) {
        const char *values[2] = {PATHS[p], "200"};
        OK(promshm_family_labels(requests, values, 2, &by_path[p]));
    }
    const promshm_series *by_method[2];
    const char *get[1] = {"GET"};
    OK(promshm_family_labels(latency, get, 1, &by_method[0]));
    /* The same series, resolved by name. */
    promshm_label post = {"method", "POST"};
    OK(promshm_family_labels_by_name(latency, &post, 1, &by_method[1]));

    for (long i = 0; i < ITERATIONS; i++) {
        if (promshm_counter_inc(by_path[i % 4]) != PROMSHM_RESULT_OK) _exit(10);
        if (promshm_histogram_observe(by_method[i % 2], (double)(i % 5)) != PROMSHM_RESULT_OK)
            _exit(11);
    }
    for (int p = 0; p < 4; p++) promshm_series_free(by_path[p]);
    promshm_series_free(by_method[0]);
    promshm_series_free(by_method[1]);
    if (id % 2 == 0) {
        OK(promshm_flush());
        _exit(0);
    }
    exit(0);
}

int main(void) {
    ITERATIONS = test_iterations(ITERATIONS, 20);
    promshm_area_options options;
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    options.pages = 1024;
    options.max_workers = 16;
    const promshm_area *area = NULL;
    OK(promshm_area_anonymous(&options, &area));

    const promshm_registry *reg = NULL;
    OK(promshm_registry_new(area, "prefork", NULL, 0, &reg));
    const char *req_labels[2] = {"path", "status"};
    promshm_metric_opts o = metric_opts("requests", "Requests by path.", req_labels, 2);
    const promshm_family *requests = NULL;
    OK(promshm_registry_counter(reg, &o, &requests));

    const char *lat_labels[1] = {"method"};
    o = metric_opts("latency", "Latency.", lat_labels, 1);
    o.unit = "seconds";
    const double buckets[4] = {0.5, 1.5, 2.5, 3.5};
    const promshm_family *latency = NULL;
    OK(promshm_registry_histogram(reg, &o, buckets, 4, &latency));

    /* Nothing buffered in the parent may reach the children. */
    RUN_WORKERS(WORKERS, worker(w, requests, latency));

    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    const double per_path = (double)WORKERS * ITERATIONS / 4;
    for (int p = 0; p < 4; p++) {
        char series[128];
        snprintf(series, sizeof series, "prefork_requests_total{path=\"%s\",status=\"200\"}",
                 PATHS[p]);
        EXPECT(sample_value(text, series) == per_path);
    }
    /* Each method saw the values 0..4 equally often. */
    const double per_value = (double)WORKERS * ITERATIONS / 2 / 5;
    const char *methods[2] = {"GET", "POST"};
    for (int m = 0; m < 2; m++) {
        char series[160];
        const char *les[5] = {"0.5", "1.5", "2.5", "3.5", "+Inf"};
        for (int b = 0; b < 5; b++) {
            snprintf(series, sizeof series,
                     "prefork_latency_seconds_bucket{method=\"%s\",le=\"%s\"}", methods[m], les[b]);
            EXPECT(sample_value(text, series) == per_value * (b + 1));
        }
        snprintf(series, sizeof series, "prefork_latency_seconds_count{method=\"%s\"}", methods[m]);
        EXPECT(sample_value(text, series) == per_value * 5);
        snprintf(series, sizeof series, "prefork_latency_seconds_sum{method=\"%s\"}", methods[m]);
        EXPECT(sample_value(text, series) == per_value * (0 + 1 + 2 + 3 + 4));
    }
    EXPECT(has_line_prefix(text, "# TYPE prefork_requests_total counter"));
    EXPECT(has_line_prefix(text, "# HELP prefork_latency_seconds Latency."));
    free(text);

    /* The same totals through the typed getters. */
    const promshm_series *s = NULL;
    const char *values[2] = {"/p2", "200"};
    OK(promshm_family_labels(requests, values, 2, &s));
    double total = 0;
    OK(promshm_counter_get(s, &total));
    EXPECT(total == per_path);
    promshm_series_free(s);

    promshm_family_free(requests);
    promshm_family_free(latency);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("prefork: %d workers x %ld iterations, %d checks passed\n", WORKERS, ITERATIONS,
           g_checks);
    return 0;
}
