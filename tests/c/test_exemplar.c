/*
 * Exemplars through the C API, pre-fork: 4 forked workers add to a counter
 * and observe into a classic histogram with exemplars naming the worker and
 * the round (the value is the worker's), through the inherited handles. The
 * parent checks the exact totals, that the OpenMetrics render has the
 * counter's exemplar and one on each bucket, each one whole (its trace_id's
 * worker matches its value), that 0.0.4 text has none, and the errors: 129
 * characters, a bad label name, NaN, the wrong series type, NULL.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define WORKERS 4
static long ROUNDS = 5000L;

/* Worker w observes BASE[k] + w / 8 (in bucket k) and adds w + 1. */
static const double BASE[3] = {0.5, 1.5, 8.0};

static void worker(int id, const promshm_series *c, const promshm_series *h) {
    char trace[64];
    for (long r = 0; r < ROUNDS; r++) {
        int k = (int)((r + id) % 3);
        snprintf(trace, sizeof trace, "w%d-i%ld", id, r);
        promshm_label l[1] = {{"trace_id", trace}};
        if (promshm_counter_add_exemplar(c, (double)(id + 1), l, 1) != PROMSHM_RESULT_OK) _exit(10);
        if (promshm_histogram_observe_exemplar(h, BASE[k] + id / 8.0, l, 1) != PROMSHM_RESULT_OK)
            _exit(11);
    }
    promshm_flush();
    _exit(0);
}

/* Check the exemplar after `series` (a line prefix): `# {trace_id="wW-iI"} V ...`,
 * V being what worker W gave (`counter`: W + 1; else BASE[bucket] + W / 8). */
static void check_line(const char *text, const char *series, int bucket) {
    const char *line = strstr(text, series);
    if (!line) FAIL("no %s", series);
    const char *nl = strchr(line, '\n');
    const char *ex = strstr(line, " # {trace_id=\"w");
    if (!ex || (nl && ex > nl)) FAIL("no exemplar on %s", series);
    int w = -1;
    long r = -1;
    double v = 0, ts = 0;
    if (sscanf(ex, " # {trace_id=\"w%d-i%ld\"} %lf %lf", &w, &r, &v, &ts) != 4)
        FAIL("bad exemplar on %s", series);
    EXPECT(w >= 0 && w < WORKERS && r >= 0 && r < ROUNDS);
    EXPECT(ts > 1.6e9);
    if (bucket < 0) {
        EXPECT(v == (double)(w + 1));
    } else {
        EXPECT(v == BASE[bucket] + w / 8.0);
    }
}

int main(void) {
    ROUNDS = test_iterations(ROUNDS, 3);
    promshm_area_options options;
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    options.pages = 256;
    const promshm_area *area = NULL;
    OK(promshm_area_anonymous(&options, &area));
    const promshm_registry *reg = NULL;
    OK(promshm_area_registry(area, &reg));

    promshm_metric_opts oc = metric_opts("jobs", "Jobs.", NULL, 0);
    const promshm_family *cf = NULL;
    OK(promshm_registry_counter(reg, &oc, &cf));
    const promshm_series *c = NULL;
    OK(promshm_family_labels(cf, NULL, 0, &c));
    promshm_metric_opts oh = metric_opts("latency", "Latency.", NULL, 0);
    const double bounds[2] = {1.0, 2.0};
    const promshm_family *hf = NULL;
    OK(promshm_registry_histogram(reg, &oh, bounds, 2, &hf));
    const promshm_series *h = NULL;
    OK(promshm_family_labels(hf, NULL, 0, &h));

    /* Errors: nothing is counted. */
    char long_value[130];
    memset(long_value, 'x', sizeof long_value);
    long_value[129 - 8] = '\0'; /* "trace_id" + 121 = 129 characters */
    promshm_label too_long[1] = {{"trace_id", long_value}};
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_counter_add_exemplar(c, 1.0, too_long, 1));
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT,
              promshm_histogram_observe_exemplar(h, 1.0, too_long, 1));
    promshm_label bad_name[1] = {{"bad-name", "x"}};
    EXPECT_RC(PROMSHM_RESULT_INVALID_LABEL_NAME, promshm_counter_inc_exemplar(c, bad_name, 1));
    promshm_label ok[1] = {{"trace_id", "x"}};
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_histogram_observe_exemplar(h, NAN, ok, 1));
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_counter_add_exemplar(c, -1.0, ok, 1));
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_histogram_observe_exemplar(c, 1.0, ok, 1));
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_native_histogram_observe_exemplar(h, 1.0, ok, 1));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_counter_inc_exemplar(NULL, ok, 1));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_counter_inc_exemplar(c, NULL, 1));
    /* No labels at all is an exemplar too (OpenMetrics allows `# {}`). */
    OK(promshm_counter_inc_exemplar(c, NULL, 0));
    promshm_error *err = promshm_error_new();
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT,
              promshm_counter_add_exemplar_e(c, 1.0, too_long, 1, err));
    promshm_error_free(err);

    RUN_WORKERS(WORKERS, worker(w, c, h));
    OK(promshm_flush());

    double total = 0;
    OK(promshm_counter_get(c, &total));
    EXPECT(total == 1.0 + ROUNDS * (1.0 + 2 + 3 + 4));
    uint64_t count = 0;
    OK(promshm_histogram_get(h, &count, NULL));
    EXPECT(count == (uint64_t)WORKERS * ROUNDS);

    char *om = render_text(area, NULL, PROMSHM_FORMAT_OPENMETRICS);
    check_line(om, "jobs_total ", -1);
    check_line(om, "latency_bucket{le=\"1.0\"}", 0);
    check_line(om, "latency_bucket{le=\"2.0\"}", 1);
    check_line(om, "latency_bucket{le=\"+Inf\"}", 2);
    free(om);
    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(strstr(text, "trace_id") == NULL);
    free(text);

    promshm_series_free(c);
    promshm_series_free(h);
    promshm_family_free(cf);
    promshm_family_free(hf);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("exemplar: %d workers x %ld rounds, %d checks passed\n", WORKERS, ROUNDS, g_checks);
    return 0;
}
