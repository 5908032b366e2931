/*
 * Local histograms (promshm_local_histogram): the header's static inline
 * observe (its buckets the same as promshm_histogram_observe()'s, with 0 to
 * 40 bounds), init / flush / release and
 * their errors (NULL, another type's series, flush and observe after
 * release), then 4 forked workers that each observe 1,000,000 values
 * (fewer with PROMSHM_C_TEST_ITERATIONS, as under Valgrind) on their own
 * local histogram, flushing every 1000, and the parent checks the exact
 * buckets, count and sum. What the parent had pending at the fork is not
 * counted by the children (it is the parent's to flush).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define WORKERS 4
/* 1,000,000 per worker; PROMSHM_C_TEST_ITERATIONS (a multiple of 1000) overrides it. */
static long ITERATIONS = 1000000L;

/* The values the workers observe in turn: exact in binary, so every partial sum is exact. */
static const double VALUES[4] = {0.25, 1.5, 2.75, 8.0};
static const double BOUNDS[3] = {1.0, 2.0, 3.0};

/* The rendered sample `name{via="<via>",le="<le>"}` (le NULL: `name{via="<via>"}`). */
static double sample(const char *text, const char *name, const char *via, const char *le) {
    char series[160];
    if (le) {
        snprintf(series, sizeof series, "%s{via=\"%s\",le=\"%s\"}", name, via, le);
    } else {
        snprintf(series, sizeof series, "%s{via=\"%s\"}", name, via);
    }
    return sample_value(text, series);
}

/* The series `via` of `family`, owned by the caller. */
static const promshm_series *series_of(const promshm_family *family, const char *via) {
    const promshm_series *s = NULL;
    OK(promshm_family_labels(family, &via, 1, &s));
    return s;
}

/* The bad input: NULL, another type's series (a counter, a native
 * histogram), a zeroed struct, the _e forms. */
static void bad_input(const promshm_registry *reg, const promshm_family *counters,
                      const promshm_series *h) {
    const promshm_series *c = series_of(counters, "local"), *native = NULL;
    promshm_metric_opts o = metric_opts("native", "A native histogram.", NULL, 0);
    const promshm_family *natives = NULL;
    OK(promshm_registry_native_histogram(reg, &o, 0, 0, 0, 0, 0, &natives));
    OK(promshm_family_labels(natives, NULL, 0, &native));
    promshm_local_histogram l;
    memset(&l, 0, sizeof l);
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_histogram_flush(&l)); /* not initialised */
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_histogram_observe(&l, 1.0));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_histogram_init(NULL, h));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_histogram_init(&l, NULL));
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_local_histogram_init(&l, c));
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_local_histogram_init(&l, native));
    EXPECT(l.series == NULL && l.counts == NULL); /* left as it was */
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_histogram_flush(NULL));
    OK(promshm_local_histogram_release(NULL));
    OK(promshm_local_histogram_release(&l)); /* never initialised: nothing to do */

    promshm_error *err = promshm_error_new();
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_local_histogram_init_e(&l, c, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_WRONG_TYPE);
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_histogram_flush_e(NULL, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_NULL_PARAMETER);
    OK(promshm_local_histogram_init_e(&l, h, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_OK);
    OK(promshm_local_histogram_flush_e(&l, err)); /* nothing pending */
    OK(promshm_local_histogram_release_e(&l, err));
    EXPECT(l.series == NULL && l.counts == NULL && l.bounds == NULL && l.n_bounds == 0);
    /* After release: flush and observe are NULL_PARAMETER, release a no-op. */
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_histogram_flush_e(&l, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_NULL_PARAMETER);
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_histogram_observe(&l, 0.5));
    OK(promshm_local_histogram_release_e(&l, err));
    promshm_error_free(err);
    promshm_series_free(c);
    promshm_series_free(native);
    promshm_family_free(natives);
}

/* One process: observe, flush, release and the errors on `h` (bounds 1, 2, 3). */
static void single_process(const promshm_series *h) {
    promshm_local_histogram l;
    OK(promshm_local_histogram_init(&l, h));
    EXPECT(l.n_bounds == 3 && l.bounds[0] == 1.0 && l.bounds[2] == 3.0 && l.sum == 0.0);
    const double values[] = {-2.0, -1.0, 1.0, 1.5, 2.0, 3.0, 3.5, 100.0};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        OK(promshm_local_histogram_observe(&l, values[i]));
    }
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_local_histogram_observe(&l, NAN));
    EXPECT(l.counts[0] == 3 && l.counts[1] == 2 && l.counts[2] == 1 && l.counts[3] == 2);
    uint64_t count = 1;
    double sum = 1;
    OK(promshm_histogram_get(h, &count, &sum));
    EXPECT(count == 0 && sum == 0.0); /* nothing before a flush */
    OK(promshm_local_histogram_flush(&l));
    EXPECT(l.counts[0] == 0 && l.counts[1] == 0 && l.counts[2] == 0 && l.counts[3] == 0);
    EXPECT(l.sum == 0.0);
    OK(promshm_local_histogram_flush(&l)); /* nothing twice */
    OK(promshm_histogram_get(h, &count, &sum));
    EXPECT(count == 8 && sum == 108.0); /* straight to the area: no promshm_flush() */

    /* Release flushes what is left. */
    OK(promshm_local_histogram_observe(&l, 2.5));
    OK(promshm_local_histogram_release(&l));
    OK(promshm_histogram_get(h, &count, &sum));
    EXPECT(count == 9 && sum == 110.5);
}

/* The inline search picks promshm_histogram_observe()'s bucket, on and
 * between the bounds, with `n` bounds 1, 2, ..., n (at most 64). */
static void same_buckets(const promshm_registry *reg, const char *name, size_t n) {
    double bounds[64];
    if (n > 0) OK(promshm_buckets_linear(1.0, 1.0, n, bounds));
    const char *labels[] = {"via"};
    promshm_metric_opts o = metric_opts(name, "Same buckets.", labels, 1);
    const promshm_family *fam = NULL;
    OK(promshm_registry_histogram(reg, &o, n > 0 ? bounds : NULL, n, &fam));
    const promshm_series *direct = series_of(fam, "direct"), *local = series_of(fam, "local");
    promshm_local_histogram l;
    OK(promshm_local_histogram_init(&l, local));
    EXPECT(l.n_bounds == n);
    for (double v = -0.5; v <= (double)n + 1.0; v += 0.25) {
        OK(promshm_histogram_observe(direct, v));
        OK(promshm_local_histogram_observe(&l, v));
    }
    OK(promshm_local_histogram_release(&l));
    OK(promshm_flush());
    char *text = render_text(NULL, reg, PROMSHM_FORMAT_PROMETHEUS);
    char bucket[96], le[32];
    snprintf(bucket, sizeof bucket, "lh_%s_bucket", name);
    for (size_t i = 0; i <= n; i++) {
        if (i < n) snprintf(le, sizeof le, "%zu.0", i + 1);
        else snprintf(le, sizeof le, "+Inf");
        EXPECT(sample(text, bucket, "local", le) == sample(text, bucket, "direct", le));
    }
    snprintf(bucket, sizeof bucket, "lh_%s_sum", name);
    EXPECT(sample(text, bucket, "local", NULL) == sample(text, bucket, "direct", NULL));
    free(text);
    promshm_series_free(direct);
    promshm_series_free(local);
    promshm_family_free(fam);
}

static void worker(int id, const promshm_series *h, promshm_local_histogram *inherited) {
    /* The parent's pending observations: dropped by the first flush in this process. */
    if (promshm_local_histogram_flush(inherited) != PROMSHM_RESULT_OK) _exit(10);
    if (inherited->counts[0] != 0 || inherited->sum != 0.0) _exit(11);
    promshm_local_histogram l;
    if (promshm_local_histogram_init(&l, h) != PROMSHM_RESULT_OK) _exit(13);
    for (long i = 0; i < ITERATIONS; i++) {
        if (promshm_local_histogram_observe(&l, VALUES[i % 4]) != PROMSHM_RESULT_OK) _exit(14);
        if (i % 1000 == 999 - id && promshm_local_histogram_flush(&l) != PROMSHM_RESULT_OK) _exit(15);
    }
    if (promshm_local_histogram_release(&l) != PROMSHM_RESULT_OK) _exit(16);
    _exit(0);
}

/* 4 forked workers, exact buckets, count and sum. */
static void prefork(const promshm_area *area, const promshm_series *h) {
    promshm_local_histogram inherited;
    OK(promshm_local_histogram_init(&inherited, h));
    OK(promshm_local_histogram_observe(&inherited, 0.5));
    OK(promshm_local_histogram_observe(&inherited, 0.5));

    RUN_WORKERS(WORKERS, worker(w, h, &inherited));
    const double each = (double)WORKERS * ITERATIONS / 4;
    const double sum = each * (VALUES[0] + VALUES[1] + VALUES[2] + VALUES[3]);
    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    const char *les[] = {"1.0", "2.0", "3.0", "+Inf"};
    for (int i = 0; i < 4; i++) {
        EXPECT(sample(text, "lh_latency_bucket", "workers", les[i]) == each * (i + 1));
    }
    EXPECT(sample(text, "lh_latency_count", "workers", NULL) == each * 4);
    EXPECT(sample(text, "lh_latency_sum", "workers", NULL) == sum);
    free(text);
    /* The parent's own two observations count once, when the parent flushes them. */
    OK(promshm_local_histogram_release(&inherited));
    uint64_t count = 0;
    double got = 0;
    OK(promshm_histogram_get(h, &count, &got));
    EXPECT(count == (uint64_t)(each * 4) + 2 && got == sum + 1.0);
}

int main(void) {
    ITERATIONS = test_iterations(ITERATIONS, 1000);
    promshm_area_options options = PROMSHM_AREA_OPTIONS_INIT;
    options.pages = 256;
    options.max_workers = 8;
    const promshm_area *area = NULL;
    OK(promshm_area_anonymous(&options, &area));
    const promshm_registry *reg = NULL;
    OK(promshm_registry_new(area, "lh", NULL, 0, &reg));
    const char *labels[] = {"via"};
    promshm_metric_opts o = metric_opts("latency", "Latency.", labels, 1);
    const promshm_family *hists = NULL, *counters = NULL;
    OK(promshm_registry_histogram(reg, &o, BOUNDS, 3, &hists));
    o = metric_opts("events", "Events.", labels, 1);
    OK(promshm_registry_counter(reg, &o, &counters));

    const promshm_series *h = series_of(hists, "local");
    bad_input(reg, counters, h);
    single_process(h);
    promshm_series_free(h);
    const size_t sizes[] = {0, 1, 2, 3, 11, 33, 40};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "b%zu", sizes[i]);
        same_buckets(reg, name, sizes[i]);
    }
    h = series_of(hists, "workers");
    prefork(area, h);

    promshm_series_free(h);
    promshm_family_free(hists);
    promshm_family_free(counters);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("local histogram: %d workers x %ld iterations, %d checks passed\n", WORKERS, ITERATIONS,
           g_checks);
    return 0;
}
