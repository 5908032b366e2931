/*
 * Rendering without a size loop, and the FFI-friendly inputs:
 * - the size query's answer always fits the next render (exactly that size,
 *   no slack), on a fresh idle area, after other renders, with the area
 *   growing between the two calls, for areas and registries, both formats;
 * - promshm_area_render_alloc / promshm_registry_render_alloc and
 *   promshm_render_free, with exact totals from 2 processes;
 * - the _simple registrations of every type and the uint32_t flag variants.
 */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* Query, then render into a buffer of exactly the size answered. */
static void query_then_render(const promshm_area *area, const promshm_registry *reg,
                              promshm_format format, const promshm_family *grow, int round) {
    size_t need = 0;
    promshm_result rc = reg ? promshm_registry_render(reg, format, NULL, 0, &need)
                            : promshm_area_render(area, format, NULL, 0, &need);
    EXPECT_RC(PROMSHM_RESULT_BUFFER_TOO_SMALL, rc);
    if (grow) {
        /* The area grows between the query and the render. */
        char v[32];
        snprintf(v, sizeof v, "grown-%d", round);
        const char *values[] = {v};
        const promshm_series *s = NULL;
        OK(promshm_family_labels(grow, values, 1, &s));
        OK(promshm_counter_inc(s));
        promshm_series_free(s);
    }
    char *buf = (char *)malloc(need);
    if (!buf) FAIL("out of memory");
    size_t len = 0;
    rc = reg ? promshm_registry_render(reg, format, buf, need, &len)
             : promshm_area_render(area, format, buf, need, &len);
    if (rc != PROMSHM_RESULT_OK)
        FAIL("round %d: the size query said %zu, the render returned %u", round, need,
             (unsigned)rc);
    EXPECT(len + 1 == need);
    EXPECT(strlen(buf) == len);
    free(buf);
}

int main(void) {
    const long n = test_iterations(100000, 1);
    const promshm_area *area = NULL;
    const promshm_registry *reg = NULL;
    OK(promshm_area_anonymous(NULL, &area));
    OK(promshm_registry_new(area, "app", NULL, 0, &reg));

    /* A fresh, idle area: the first render after the query. */
    query_then_render(area, NULL, PROMSHM_FORMAT_PROMETHEUS, NULL, 0);

    const char *labels[] = {"path"};
    const promshm_family *c = NULL, *h = NULL, *g = NULL, *s = NULL, *i = NULL, *st = NULL;
    const promshm_family *grow = NULL;
    const double buckets[] = {0.1, 1, 10};
    const double quantiles[] = {0.5, 0.9};
    const char *states[] = {"up", "down"};
    OK(promshm_registry_counter_simple(reg, "requests", "Requests.", labels, 1, &c, NULL));
    OK(promshm_registry_histogram_simple(reg, "latency", "Latency.", labels, 1, buckets, 3, &h,
                                         NULL));
    OK(promshm_registry_gauge_simple(reg, "temp", NULL, NULL, 0, PROMSHM_GAUGE_MODE_MAX, &g, NULL));
    OK(promshm_registry_summary_simple(reg, "size", NULL, NULL, 0, quantiles, 2, 0, 0, &s, NULL));
    OK(promshm_registry_info_simple(reg, "build", NULL, NULL, 0, &i, NULL));
    OK(promshm_registry_stateset_simple(reg, "state", NULL, NULL, 0, states, 2, &st, NULL));
    OK(promshm_registry_counter_simple(reg, "grow", NULL, labels, 1, &grow, NULL));
    EXPECT(promshm_family_type(st) == PROMSHM_METRIC_TYPE_STATE_SET);
    EXPECT(strcmp(promshm_family_name(c), "app_requests") == 0);
    /* The same shape through the options struct is the same family. */
    promshm_metric_opts o = metric_opts("requests", "Requests.", labels, 1);
    const promshm_family *c2 = NULL;
    OK(promshm_registry_counter(reg, &o, &c2));
    promshm_family_free(c2);
    /* Plain arguments are checked as the struct's fields are. */
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER,
              promshm_registry_counter_simple(reg, NULL, NULL, NULL, 0, &c2, NULL));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER,
              promshm_registry_counter_simple(reg, "x", NULL, NULL, 1, &c2, NULL));

    /* The query always fits the next render. */
    for (int round = 1; round <= 200; round++) {
        promshm_format f = round % 2 ? PROMSHM_FORMAT_PROMETHEUS : PROMSHM_FORMAT_OPENMETRICS;
        query_then_render(area, NULL, f, round % 3 == 0 ? grow : NULL, round);
        query_then_render(area, reg, f, round % 3 == 1 ? grow : NULL, 1000 + round);
        /* Another render in between does not disturb the next pair. */
        char *text = NULL;
        OK(promshm_area_render_alloc(area, f, &text, NULL, NULL));
        promshm_render_free(text);
    }

    /* Two processes update; render_alloc gives exact totals. */
    const char *home[] = {"/"};
    const promshm_series *cs = NULL, *hs = NULL;
    OK(promshm_family_labels(c, home, 1, &cs));
    OK(promshm_family_labels(h, home, 1, &hs));
    pid_t pid = fork();
    if (pid < 0) FAIL("fork");
    for (long k = 0; k < n; k++) {
        OK(promshm_counter_inc(cs));
        OK(promshm_histogram_observe(hs, 0.5));
    }
    OK(promshm_flush());
    if (pid == 0) _exit(0);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("child failed");

    char *text = NULL;
    size_t len = 0;
    promshm_error *err = promshm_error_new();
    OK(promshm_registry_render_alloc(reg, PROMSHM_FORMAT_PROMETHEUS, &text, &len, err));
    EXPECT(text != NULL && strlen(text) == len);
    EXPECT(sample_value(text, "app_requests_total{path=\"/\"}") == (double)(2 * n));
    EXPECT(sample_value(text, "app_latency_count{path=\"/\"}") == (double)(2 * n));
    EXPECT(sample_value(text, "app_latency_bucket{path=\"/\",le=\"1.0\"}") == (double)(2 * n));
    EXPECT(sample_value(text, "app_latency_bucket{path=\"/\",le=\"0.1\"}") == 0.0);
    promshm_render_free(text);
    text = NULL;
    OK(promshm_area_render_alloc(area, PROMSHM_FORMAT_OPENMETRICS, &text, NULL, err));
    EXPECT(has_line_prefix(text, "# EOF"));
    EXPECT(has_line_prefix(text, "promshm_render_duration_seconds "));
    promshm_render_free(text);
    promshm_render_free(NULL);

    /* Bad input: nothing written, the error object says why. */
    text = (char *)"untouched";
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_area_render_alloc(area, 7, &text, &len, err));
    EXPECT(strcmp(text, "untouched") == 0);
    EXPECT(strstr(promshm_error_detail(err), "unknown format 7") != NULL);
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER,
              promshm_area_render_alloc(NULL, PROMSHM_FORMAT_PROMETHEUS, &text, &len, err));
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER,
              promshm_registry_render_alloc(reg, PROMSHM_FORMAT_PROMETHEUS, NULL, &len, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_NULL_PARAMETER);

    /* uint32_t flags instead of bool. */
    EXPECT(promshm_area_is_read_only_u32(area) == 0);
    EXPECT(promshm_area_is_read_only_u32(NULL) == 0);
    uint32_t removed = 7;
    OK(promshm_family_remove_u32(c, home, 1, &removed, err));
    EXPECT(removed == 1);
    OK(promshm_family_remove_u32(c, home, 1, &removed, err));
    EXPECT(removed == 0);
    OK(promshm_family_remove_u32(c, home, 1, NULL, NULL));
    EXPECT_RC(PROMSHM_RESULT_LABEL_COUNT, promshm_family_remove_u32(c, NULL, 0, &removed, err));
    EXPECT(removed == 0);
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_LABEL_COUNT);

    promshm_error_free(err);
    promshm_series_free(cs);
    promshm_series_free(hs);
    const promshm_family *all[] = {c, h, g, s, i, st, grow};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) promshm_family_free(all[k]);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("render_alloc: %d checks passed\n", g_checks);
    return 0;
}
