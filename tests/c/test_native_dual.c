/*
 * A native histogram with classic buckets too, through the C API, pre-fork:
 * the parent registers it with promshm_registry_native_histogram_buckets()
 * (bucket factor 2: schema 0; classic bounds 0.5, 1, 2.5, 10), 4 forked
 * workers observe known values through the inherited handles (by handle, by
 * label values, and with an exemplar), then the parent checks the exact
 * classic view in the text formats (every cumulative _bucket, _count,
 * _sum), the exact count and sum of the getter, a classic bucket's exemplar
 * in OpenMetrics, and the errors. Given a path as its argument, it writes
 * the protobuf render there: tests/c_api.rs decodes it and checks the
 * native buckets and the classic ones of the same message.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define WORKERS 4
static long ROUNDS = 10000L;

/* Dyadic values: sums are exact in any order. 2^30 is above the window. */
static const double VALUES[6] = {0.0, 0.5, 1.0, 3.0, -2.0, 1073741824.0};

static void worker(int id, const promshm_family *fam, const promshm_series *s) {
    const char *values[1] = {"GET"};
    for (long r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 6; k++) {
            double v = VALUES[(k + r + id) % 6];
            promshm_result rc;
            if (r == 0 && v == 3.0) {
                promshm_label l[1] = {{"trace_id", "w"}};
                rc = promshm_native_histogram_observe_exemplar(s, v, l, 1);
            } else if (r % 2) {
                rc = promshm_native_histogram_observe(s, v);
            } else {
                rc = promshm_family_observe_by_values(fam, values, 1, v);
            }
            if (rc != PROMSHM_RESULT_OK) _exit(10 + k);
        }
    }
    _exit(0);
}

int main(int argc, char **argv) {
    ROUNDS = test_iterations(ROUNDS, 2);
    promshm_area_options options;
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    options.pages = 256;
    const promshm_area *area = NULL;
    OK(promshm_area_anonymous(&options, &area));
    const promshm_registry *reg = NULL;
    OK(promshm_area_registry(area, &reg));

    const char *labels[1] = {"method"};
    promshm_metric_opts o = metric_opts("latency", "Latency.", labels, 1);
    o.unit = "seconds";
    const double bounds[5] = {0.5, 1.0, 2.5, 10.0, INFINITY};
    const promshm_family *fam = NULL;
    /* Factor 2: schema 0; zero threshold 0.25; no bucket limit; window 2^-10..2^20. */
    OK(promshm_registry_native_histogram_buckets(reg, &o, 2.0, 0.25, 0, 0.0009765625, 1048576.0,
                                                 bounds, 5, &fam));
    EXPECT(promshm_family_type(fam) == PROMSHM_METRIC_TYPE_NATIVE_HISTOGRAM);
    /* The same again (the trailing +Inf is implied) finds it. */
    const promshm_family *again = NULL;
    OK(promshm_registry_native_histogram_buckets(reg, &o, 2.0, 0.25, 0, 0.0009765625, 1048576.0,
                                                 bounds, 4, &again));
    promshm_family_free(again);
    const char *get[1] = {"GET"};
    const promshm_series *s = NULL;
    OK(promshm_family_labels(fam, get, 1, &s));

    /* Errors: other classic bounds, none, bad ones, a NULL array. */
    const promshm_family *bad = NULL;
    EXPECT_RC(PROMSHM_RESULT_SHAPE_MISMATCH,
              promshm_registry_native_histogram_buckets(reg, &o, 2.0, 0.25, 0, 0.0009765625,
                                                        1048576.0, bounds, 3, &bad));
    EXPECT_RC(PROMSHM_RESULT_SHAPE_MISMATCH,
              promshm_registry_native_histogram(reg, &o, 2.0, 0.25, 0, 0.0009765625, 1048576.0,
                                                &bad));
    promshm_metric_opts ob = metric_opts("bad", "Bad.", NULL, 0);
    const double down[2] = {2.0, 1.0};
    EXPECT_RC(PROMSHM_RESULT_INVALID_BUCKETS,
              promshm_registry_native_histogram_buckets(reg, &ob, 0, 0, 0, 0, 0, down, 2, &bad));
    EXPECT_RC(PROMSHM_RESULT_INVALID_BUCKETS,
              promshm_registry_native_histogram_buckets(reg, &ob, 0.5, 0, 0, 0, 0, bounds, 1, &bad));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER,
              promshm_registry_native_histogram_buckets(reg, &ob, 0, 0, 0, 0, 0, NULL, 2, &bad));
    EXPECT(bad == NULL);
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_native_histogram_observe(s, NAN));

    RUN_WORKERS(WORKERS, worker(w, fam, s));

    const double n = (double)WORKERS * ROUNDS;
    double sum_values = 0;
    for (int k = 0; k < 6; k++) sum_values += VALUES[k];
    uint64_t count = 0;
    double sum = 0;
    OK(promshm_native_histogram_get(s, &count, &sum));
    EXPECT((double)count == n * 6);
    EXPECT(sum == n * sum_values);

    /* Classic: 0, 0.5, -2 <= 0.5; 1 <= 1; 3 <= 10; 2^30 only in +Inf. */
    for (int f = 0; f < 2; f++) {
        char *text = render_text(area, NULL, f ? PROMSHM_FORMAT_OPENMETRICS : PROMSHM_FORMAT_PROMETHEUS);
        EXPECT(has_line_prefix(text, "# TYPE latency_seconds histogram"));
        EXPECT(sample_value(text, "latency_seconds_bucket{method=\"GET\",le=\"0.5\"}") == n * 3);
        EXPECT(sample_value(text, "latency_seconds_bucket{method=\"GET\",le=\"1.0\"}") == n * 4);
        EXPECT(sample_value(text, "latency_seconds_bucket{method=\"GET\",le=\"2.5\"}") == n * 4);
        EXPECT(sample_value(text, "latency_seconds_bucket{method=\"GET\",le=\"10.0\"}") == n * 5);
        EXPECT(sample_value(text, "latency_seconds_bucket{method=\"GET\",le=\"+Inf\"}") == n * 6);
        EXPECT(sample_value(text, "latency_seconds_count{method=\"GET\"}") == n * 6);
        EXPECT(sample_value(text, "latency_seconds_sum{method=\"GET\"}") == n * sum_values);
        EXPECT(sample_value(text, "promshm_native_observations_clamped_total") == n);
        if (f) {
            /* The exemplar of 3.0 is on its classic bucket, le="10.0". */
            const char *line = strstr(text, "latency_seconds_bucket{method=\"GET\",le=\"10.0\"}");
            const char *nl = line ? strchr(line, '\n') : NULL;
            const char *ex = line ? strstr(line, " # {trace_id=\"w\"} 3") : NULL;
            EXPECT(ex != NULL && nl != NULL && ex < nl);
        }
        free(text);
    }

    char *pb = NULL;
    size_t pb_len = 0;
    OK(promshm_area_render_alloc(area, PROMSHM_FORMAT_PROTOBUF, &pb, &pb_len, NULL));
    EXPECT(pb_len > 0);
    if (argc > 1) {
        FILE *out = fopen(argv[1], "wb");
        if (!out) FAIL("cannot write %s", argv[1]);
        if (fwrite(pb, 1, pb_len, out) != pb_len || fclose(out) != 0) FAIL("write %s", argv[1]);
    }
    promshm_render_free(pb);

    promshm_series_free(s);
    promshm_family_free(fam);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("native_dual: %d workers x %ld rounds, %d checks passed\n", WORKERS, ROUNDS, g_checks);
    return 0;
}
