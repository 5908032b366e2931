/*
 * Local counters (promshm_local_counter): the header's static inline
 * increments, init / flush / release and their errors, then 4 forked workers
 * that each count 1,000,000 (fewer with PROMSHM_C_TEST_ITERATIONS, as under
 * Valgrind) on their own local counter, flushing every 1000, and the parent
 * checks the exact total. What the parent had pending at the fork is not
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

static double total_of(const promshm_series *s) {
    double v = -1;
    OK(promshm_flush());
    OK(promshm_counter_get(s, &v));
    return v;
}

/* One process: the increments, flush, release, re-init and the errors. */
static void single_process(const promshm_family *counters, const promshm_family *gauges) {
    const promshm_series *s = NULL, *g = NULL;
    OK(promshm_family_labels(counters, NULL, 0, &s));
    OK(promshm_family_labels(gauges, NULL, 0, &g));

    promshm_local_counter l;
    memset(&l, 0, sizeof l);
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_counter_flush(&l)); /* not initialised */
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_counter_init(NULL, s));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_counter_init(&l, NULL));
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_local_counter_init(&l, g));
    EXPECT(l.series == NULL); /* left as it was */
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_local_counter_flush(NULL));
    OK(promshm_local_counter_release(NULL));

    OK(promshm_local_counter_init(&l, s));
    promshm_series_free(s); /* the local counter holds its own reference */
    for (int i = 0; i < 1000; i++) promshm_local_counter_inc(&l);
    OK(promshm_local_counter_add(&l, 0.5));
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_local_counter_add(&l, -1.0));
    EXPECT_RC(PROMSHM_RESULT_INVALID_VALUE, promshm_local_counter_add(&l, NAN));
    EXPECT(l.count == 1000 && l.pending == 0.5);
    EXPECT(total_of(l.series) == 0.0); /* nothing before a flush */
    OK(promshm_local_counter_flush(&l));
    EXPECT(l.count == 0 && l.pending == 0.0);
    OK(promshm_local_counter_flush(&l)); /* nothing twice */
    EXPECT(total_of(l.series) == 1000.5);

    /* Release flushes and gives the reference back; a second release is a no-op. */
    const promshm_series *keep = promshm_series_clone(l.series);
    OK(promshm_local_counter_add(&l, 2.0));
    OK(promshm_local_counter_release(&l));
    EXPECT(l.series == NULL);
    OK(promshm_local_counter_release(&l));
    EXPECT(total_of(keep) == 1002.5);

    /* The _e variant reports into an error object. */
    promshm_error *err = promshm_error_new();
    EXPECT_RC(PROMSHM_RESULT_WRONG_TYPE, promshm_local_counter_init_e(&l, g, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_WRONG_TYPE);
    OK(promshm_local_counter_init_e(&l, keep, err));
    promshm_local_counter_inc(&l);
    OK(promshm_local_counter_release_e(&l, err));
    EXPECT(total_of(keep) == 1003.5);
    promshm_error_free(err);

    /* Reset: back to 0 for the next part. */
    OK(promshm_counter_reset(keep));
    promshm_series_free(keep);
    promshm_series_free(g);
}

static void worker(int id, const promshm_family *counters, promshm_local_counter *inherited) {
    /* The parent's pending 7: dropped by the first flush in this process. */
    if (promshm_local_counter_flush(inherited) != PROMSHM_RESULT_OK) _exit(10);
    if (inherited->count != 0 || inherited->pending != 0.0) _exit(11);
    const promshm_series *s = NULL;
    if (promshm_family_labels(counters, NULL, 0, &s) != PROMSHM_RESULT_OK) _exit(12);
    promshm_local_counter l;
    if (promshm_local_counter_init(&l, s) != PROMSHM_RESULT_OK) _exit(13);
    promshm_series_free(s);
    for (long i = 0; i < ITERATIONS; i++) {
        promshm_local_counter_inc(&l);
        if (i % 1000 == 999 - id && promshm_local_counter_flush(&l) != PROMSHM_RESULT_OK) _exit(14);
    }
    if (promshm_local_counter_release(&l) != PROMSHM_RESULT_OK) _exit(15);
    if (promshm_flush() != PROMSHM_RESULT_OK) _exit(16);
    _exit(0);
}

int main(void) {
    ITERATIONS = test_iterations(ITERATIONS, 1000);
    promshm_area_options options = PROMSHM_AREA_OPTIONS_INIT;
    options.pages = 256;
    options.max_workers = 8;
    const promshm_area *area = NULL;
    OK(promshm_area_anonymous(&options, &area));
    const promshm_registry *reg = NULL;
    OK(promshm_registry_new(area, "local", NULL, 0, &reg));
    promshm_metric_opts o = metric_opts("events", "Events.", NULL, 0);
    const promshm_family *counters = NULL, *gauges = NULL;
    OK(promshm_registry_counter(reg, &o, &counters));
    o = metric_opts("level", "A gauge.", NULL, 0);
    OK(promshm_registry_gauge(reg, &o, PROMSHM_GAUGE_MODE_SUM, &gauges));

    single_process(counters, gauges);

    const promshm_series *s = NULL;
    OK(promshm_family_labels(counters, NULL, 0, &s));
    promshm_local_counter inherited;
    OK(promshm_local_counter_init(&inherited, s));
    OK(promshm_local_counter_add(&inherited, 5.0));
    promshm_local_counter_inc(&inherited);
    promshm_local_counter_inc(&inherited);

    RUN_WORKERS(WORKERS, worker(w, counters, &inherited));
    const double want = (double)WORKERS * ITERATIONS;
    EXPECT(total_of(s) == want);
    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(sample_value(text, "local_events_total") == want);
    free(text);
    /* The parent's own pending 7 counts once, when the parent flushes it. */
    OK(promshm_local_counter_release(&inherited));
    EXPECT(total_of(s) == want + 7.0);

    promshm_series_free(s);
    promshm_family_free(counters);
    promshm_family_free(gauges);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("local: %d workers x %ld iterations, %d checks passed\n", WORKERS, ITERATIONS, g_checks);
    return 0;
}
