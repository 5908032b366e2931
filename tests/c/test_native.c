/*
 * Native histograms through the C API, pre-fork: the parent registers a
 * native histogram (bucket factor 2: schema 0) and resolves its series, 4
 * forked workers observe known values through the inherited handles (by
 * handle and by label values), then the parent checks the exact count and
 * sum (getter and text exposition, which shows _count, _sum and one +Inf
 * bucket), the clamped-values self-metric, that the protobuf render is not
 * empty, and the errors: NaN, a bad bucket factor, a window too large, the
 * wrong series type.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
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
            /* Half by handle, half by label values. */
            promshm_result rc = (r % 2) ? promshm_native_histogram_observe(s, v)
                                        : promshm_family_observe_by_values(fam, values, 1, v);
            if (rc != PROMSHM_RESULT_OK) _exit(10 + k);
        }
    }
    _exit(0);
}

int main(void) {
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
    const promshm_family *fam = NULL;
    /* Factor 2: schema 0; zero threshold 0.25; no bucket limit; window 2^-10..2^20. */
    OK(promshm_registry_native_histogram(reg, &o, 2.0, 0.25, 0, 0.0009765625, 1048576.0, &fam));
    EXPECT(promshm_family_type(fam) == PROMSHM_METRIC_TYPE_NATIVE_HISTOGRAM);
    const char *get[1] = {"GET"};
    const promshm_series *s = NULL;
    OK(promshm_family_labels(fam, get, 1, &s));
    EXPECT(promshm_series_type(s) == PROMSHM_METRIC_TYPE_NATIVE_HISTOGRAM);

    /* Errors. */
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_native_histogram_observe(s, NAN));
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_histogram_observe(s, 1.0));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_native_histogram_observe(NULL, 1.0));
    const promshm_family *bad = NULL;
    promshm_metric_opts ob = metric_opts("bad", "Bad.", NULL, 0);
    EXPECT_RC(PROMSHM_RESULT_INVALID_BUCKETS,
              promshm_registry_native_histogram(reg, &ob, 0.5, 0, 0, 0, 0, &bad));
    EXPECT_RC(PROMSHM_RESULT_INVALID_BUCKETS,
              promshm_registry_native_histogram(reg, &ob, 1.0001, 0, 0, 1e-300, 1e300, &bad));
    EXPECT(bad == NULL);

    RUN_WORKERS(WORKERS, worker(w, fam, s));

    const double n = (double)WORKERS * ROUNDS;
    double sum_values = 0;
    for (int k = 0; k < 6; k++) sum_values += VALUES[k];
    uint64_t count = 0;
    double sum = 0;
    OK(promshm_native_histogram_get(s, &count, &sum));
    EXPECT((double)count == n * 6);
    EXPECT(sum == n * sum_values);

    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(has_line_prefix(text, "# TYPE latency_seconds histogram"));
    EXPECT(sample_value(text, "latency_seconds_bucket{method=\"GET\",le=\"+Inf\"}") == n * 6);
    EXPECT(sample_value(text, "latency_seconds_count{method=\"GET\"}") == n * 6);
    EXPECT(sample_value(text, "latency_seconds_sum{method=\"GET\"}") == n * sum_values);
    EXPECT(sample_value(text, "promshm_native_observations_clamped_total") == n);
    EXPECT(!has_line_prefix(text, "latency_seconds_bucket{method=\"GET\",le=\"1"));
    free(text);

    char *pb = NULL;
    size_t pb_len = 0;
    OK(promshm_area_render_alloc(area, PROMSHM_FORMAT_PROTOBUF, &pb, &pb_len, NULL));
    EXPECT(pb_len > 0);
    promshm_render_free(pb);

    promshm_series_free(s);
    promshm_family_free(fam);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("native: %d workers x %ld rounds, %d checks passed\n", WORKERS, ROUNDS, g_checks);
    return 0;
}
