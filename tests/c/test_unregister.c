/*
 * Unregistering families: promshm_registry_unregister().
 * - 4 forked workers in a 256-page (1 MiB) anonymous area, each CYCLES
 *   times: register family "job_<w>" (a labelled counter, then a gauge of
 *   the same name), update two series, check them exactly, unregister it;
 *   the previous family's handles (series and family) update nothing; a
 *   counter that stays counts the cycles: exact totals, never AREA_FULL,
 *   nothing of the churned families rendered;
 * - unregistering twice gives 0; promshm_family_is_registered();
 * - errors: NULL registry/family, a family of another area, and the _e
 *   variant's error object; the name free again for other labels.
 */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define WORKERS 4
static long CYCLES = 2000;

static void worker(const promshm_registry *reg, int w) {
    char name[32];
    snprintf(name, sizeof name, "job_%d", w);
    const char *labels[] = {"k"};
    const char *a[] = {"a"}, *b[] = {"b"};
    const promshm_family *cycles = NULL;
    const char *wl[] = {"w"};
    promshm_metric_opts o = metric_opts("cycles", "Cycles.", wl, 1);
    OK(promshm_registry_counter(reg, &o, &cycles));
    char wv[8];
    snprintf(wv, sizeof wv, "%d", w);
    const char *wvals[] = {wv};
    const promshm_family *stale_family = NULL;
    const promshm_series *stale_series = NULL;
    for (long i = 0; i < CYCLES; i++) {
        o = metric_opts(name, "Per job.", labels, 1);
        const promshm_family *f = NULL;
        const promshm_series *sa = NULL, *sb = NULL;
        double va = 0, vb = 0;
        uint32_t done = 0;
        if (i % 2 == 0) {
            OK(promshm_registry_counter(reg, &o, &f));
            OK(promshm_family_labels(f, a, 1, &sa));
            OK(promshm_family_labels(f, b, 1, &sb));
            OK(promshm_counter_inc(sa));
            OK(promshm_counter_add(sb, 2));
            OK(promshm_flush());
            OK(promshm_counter_get(sa, &va));
            OK(promshm_counter_get(sb, &vb));
        } else {
            OK(promshm_registry_gauge(reg, &o, PROMSHM_GAUGE_MODE_SUM, &f));
            OK(promshm_family_labels(f, a, 1, &sa));
            OK(promshm_family_labels(f, b, 1, &sb));
            OK(promshm_gauge_set(sa, 1));
            OK(promshm_gauge_set(sb, 2));
            OK(promshm_gauge_get(sa, &va));
            OK(promshm_gauge_get(sb, &vb));
        }
        if (va != 1.0 || vb != 2.0) FAIL("cycle %ld: values %g %g", i, va, vb);
        EXPECT(promshm_family_is_registered(f));
        OK(promshm_registry_unregister(reg, f, &done));
        EXPECT(done);
        EXPECT(!promshm_family_is_registered(f));
        OK(promshm_registry_unregister(reg, f, &done));
        EXPECT(!done);
        /* The previous cycle's family (the same name, the other type). */
        if (stale_family) {
            if (i % 2 == 1) {
                OK(promshm_counter_add(stale_series, 1e6));
                OK(promshm_family_inc_by_values(stale_family, a, 1, 1e6));
                OK(promshm_counter_get(stale_series, &va));
            } else {
                OK(promshm_gauge_set(stale_series, 1e6));
                OK(promshm_gauge_get(stale_series, &va));
            }
            if (va != 0.0) FAIL("cycle %ld: a stale handle reads %g", i, va);
            promshm_series_free(stale_series);
            promshm_family_free(stale_family);
        }
        stale_family = f;
        stale_series = sa;
        promshm_series_free(sb);
        OK(promshm_family_inc_by_values(cycles, wvals, 1, 1));
    }
    promshm_series_free(stale_series);
    promshm_family_free(stale_family);
    promshm_family_free(cycles);
    OK(promshm_flush());
    exit(0);
}

int main(void) {
    CYCLES = test_iterations(CYCLES, 4);
    promshm_area_options options;
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    options.pages = 256;
    options.max_workers = 16;
    const promshm_area *area = NULL;
    OK(promshm_area_anonymous(&options, &area));
    const promshm_registry *reg = NULL;
    OK(promshm_registry_new(area, "u", NULL, 0, &reg));

    RUN_WORKERS(WORKERS, worker(reg, w));
    OK(promshm_flush());
    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    for (int w = 0; w < WORKERS; w++) {
        char series[64];
        snprintf(series, sizeof series, "u_cycles_total{w=\"%d\"}", w);
        EXPECT(sample_value(text, series) == (double)CYCLES);
    }
    EXPECT(strstr(text, "u_job_") == NULL);
    EXPECT(strstr(text, "e+06") == NULL);
    free(text);
    promshm_area_stats stats = PROMSHM_AREA_STATS_INIT;
    OK(promshm_area_get_stats(area, &stats));
    EXPECT(stats.refused == 0);
    EXPECT(stats.families == 1);
    EXPECT(stats.series == WORKERS);

    /* Errors. */
    const char *labels[] = {"k"};
    promshm_metric_opts o = metric_opts("once", "Once.", labels, 1);
    const promshm_family *f = NULL;
    OK(promshm_registry_counter(reg, &o, &f));
    uint32_t done = 1;
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_unregister(NULL, f, &done));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_unregister(reg, NULL, &done));
    EXPECT(!promshm_family_is_registered(NULL));
    const promshm_area *other = NULL;
    OK(promshm_area_anonymous(&options, &other));
    const promshm_registry *other_reg = NULL;
    OK(promshm_area_registry(other, &other_reg));
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_registry_unregister(other_reg, f, &done));
    EXPECT(promshm_family_is_registered(f));
    promshm_error *err = promshm_error_new();
    EXPECT(err != NULL);
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_registry_unregister_e(reg, NULL, &done, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_NULL_PARAMETER);
    OK(promshm_registry_unregister_e(reg, f, NULL, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_OK);
    EXPECT(!promshm_family_is_registered(f));
    promshm_error_free(err);
    /* The name is free again, with other labels. */
    const char *other_labels[] = {"j", "l"};
    o = metric_opts("once", "Once again.", other_labels, 2);
    const promshm_family *again = NULL;
    OK(promshm_registry_counter(reg, &o, &again));
    EXPECT(promshm_family_is_registered(again));

    promshm_family_free(again);
    promshm_family_free(f);
    promshm_registry_free(other_reg);
    promshm_area_free(other);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("unregister: %d workers x %ld cycles, %d checks passed\n", WORKERS, CYCLES, g_checks);
    return 0;
}
