/*
 * The error object (promshm_error): 8 threads fail 8 different calls at the
 * same time, over and over, each through the `_e` variant (or a function
 * taking `err`) with an error object of its own, and each checks that the
 * object holds its own call's status and detail, never another thread's;
 * a success through the same object clears it. The thread-local last error
 * keeps working beside it. The objects are then read by the main thread
 * (an error object does not belong to the thread that filled it), and NULL
 * error objects are accepted everywhere.
 */
#include <pthread.h>
#include <stdint.h>

#include "common.h"

#define THREADS 8

static const promshm_area *g_area;
static const promshm_registry *g_reg;
static const promshm_family *g_counter;
static const promshm_series *g_series;
static long g_iterations;

typedef struct {
    int index;
    promshm_error *err;
    long failures;
    char last_want[128];
    promshm_result last_code;
} worker;

/* Make thread `w`'s call `i` fail; return the code it must fail with and
 * write a substring its detail must contain to `want`. */
static promshm_result fail_once(worker *w, long i, char *want, size_t cap) {
    char s[96];
    const promshm_family *fam = NULL;
    const promshm_registry *reg = NULL;
    const promshm_area *area = NULL;
    const promshm_series *series = NULL;
    promshm_result rc;
    switch (w->index) {
    case 0: /* a bad metric name, unique per call */
        snprintf(s, sizeof s, "bad-name-%d-%ld", w->index, i);
        snprintf(want, cap, "%s", s);
        rc = promshm_registry_counter_simple(g_reg, s, NULL, NULL, 0, &fam, w->err);
        if (rc == PROMSHM_RESULT_INVALID_METRIC_NAME) return rc;
        break;
    case 1: { /* two label values for a family with one */
        const char *values[] = {"a", "b"};
        snprintf(want, cap, "label");
        rc = promshm_family_labels_e(g_counter, values, 2, &series, w->err);
        if (rc == PROMSHM_RESULT_LABEL_COUNT) return rc;
        break;
    }
    case 2: /* a file that does not exist, unique per call */
        snprintf(s, sizeof s, "/nonexistent-promshm-dir/area-%d-%ld", w->index, i);
        snprintf(want, cap, "%s", s);
        rc = promshm_area_open_e(s, PROMSHM_OPEN_MODE_READ_ONLY, &area, w->err);
        if (rc == PROMSHM_RESULT_NOT_FOUND) return rc;
        break;
    case 3: /* a negative counter increment */
        snprintf(want, cap, "-%ld", i + 1);
        rc = promshm_counter_add_e(g_series, -(double)(i + 1), w->err);
        if (rc == PROMSHM_RESULT_INVALID_VALUE) return rc;
        break;
    case 4: /* a gauge update on a counter */
        snprintf(want, cap, "counter");
        rc = promshm_gauge_set_e(g_series, 1.0, w->err);
        if (rc == PROMSHM_RESULT_WRONG_TYPE) return rc;
        break;
    case 5: { /* decreasing buckets */
        const double buckets[] = {2.0, 1.0};
        snprintf(want, cap, "increase strictly");
        rc = promshm_registry_histogram_simple(g_reg, "h_ok", NULL, NULL, 0, buckets, 2, &fam,
                                               w->err);
        if (rc == PROMSHM_RESULT_INVALID_BUCKETS) return rc;
        break;
    }
    case 6: { /* an unknown format, unique per call */
        char *text = NULL;
        uint32_t format = (uint32_t)(1000 + i);
        snprintf(want, cap, "unknown format %u", (unsigned)format);
        rc = promshm_area_render_alloc(g_area, format, &text, NULL, w->err);
        if (rc == PROMSHM_RESULT_INVALID_ARGUMENT && text == NULL) return rc;
        promshm_render_free(text);
        break;
    }
    default: { /* a bad constant label name, unique per call */
        snprintf(s, sizeof s, "bad-label-%d-%ld", w->index, i);
        promshm_label l = {s, "v"};
        snprintf(want, cap, "%s", s);
        rc = promshm_registry_new_e(g_area, NULL, &l, 1, &reg, w->err);
        if (rc == PROMSHM_RESULT_INVALID_LABEL_NAME) return rc;
        break;
    }
    }
    FAIL("thread %d call %ld returned %u (%s)", w->index, i, (unsigned)rc,
         promshm_result_message((uint32_t)rc));
    return rc;
}

static void *thread_main(void *arg) {
    worker *w = (worker *)arg;
    char want[128];
    char tl[512];
    for (long i = 0; i < g_iterations; i++) {
        promshm_result rc = fail_once(w, i, want, sizeof want);
        const char *detail = promshm_error_detail(w->err);
        if (promshm_error_code(w->err) != rc)
            FAIL("thread %d: error object code %u, call returned %u", w->index,
                 (unsigned)promshm_error_code(w->err), (unsigned)rc);
        if (!strstr(detail, want))
            FAIL("thread %d call %ld: detail \"%s\" lacks \"%s\"", w->index, i, detail, want);
        /* The thread-local detail, for C, says the same. */
        promshm_last_error(tl, sizeof tl, NULL);
        if (strcmp(tl, detail) != 0)
            FAIL("thread %d: last error \"%s\" differs from \"%s\"", w->index, tl, detail);
        w->failures++;
        if (i % 16 == 15) {
            /* A success through the same object clears it. */
            if (promshm_counter_inc_e(g_series, w->err) != PROMSHM_RESULT_OK)
                FAIL("thread %d: counter_inc_e failed", w->index);
            if (promshm_error_code(w->err) != PROMSHM_RESULT_OK ||
                strcmp(promshm_error_detail(w->err), "") != 0)
                FAIL("thread %d: success left code %u detail \"%s\"", w->index,
                     (unsigned)promshm_error_code(w->err), promshm_error_detail(w->err));
        }
    }
    /* End on a failure, read again by the main thread. */
    w->last_code = fail_once(w, g_iterations, w->last_want, sizeof w->last_want);
    return NULL;
}

int main(void) {
    /* At most 2000 calls per thread, also under Valgrind (whose count is larger). */
    g_iterations = test_iterations(2000, 16);
    if (g_iterations > 2000) g_iterations = 2000;
    promshm_error *err = promshm_error_new();
    EXPECT(err != NULL);
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_OK);
    EXPECT(strcmp(promshm_error_detail(err), "") == 0);
    EXPECT(promshm_error_code(NULL) == PROMSHM_RESULT_OK);
    EXPECT(strcmp(promshm_error_detail(NULL), "") == 0);

    OK(promshm_area_anonymous_e(NULL, &g_area, err));
    OK(promshm_registry_new_e(g_area, "t", NULL, 0, &g_reg, NULL));
    const char *labels[] = {"k"};
    OK(promshm_registry_counter_simple(g_reg, "c", "A counter.", labels, 1, &g_counter, err));
    const char *values[] = {"v"};
    OK(promshm_family_labels_e(g_counter, values, 1, &g_series, err));

    /* A failure without its own detail gets the code's message. */
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_counter_inc_e(NULL, err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_NULL_PARAMETER);
    EXPECT(strstr(promshm_error_detail(err), "NULL") != NULL);
    /* The _e variants take a NULL error object: the plain call. */
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_counter_inc_e(NULL, NULL));
    OK(promshm_flush_e(err));
    EXPECT(promshm_error_code(err) == PROMSHM_RESULT_OK);

    worker workers[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&workers[t], 0, sizeof workers[t]);
        workers[t].index = t;
        workers[t].err = promshm_error_new();
        EXPECT(workers[t].err != NULL);
    }
    for (int t = 0; t < THREADS; t++)
        if (pthread_create(&threads[t], NULL, thread_main, &workers[t]) != 0) FAIL("pthread_create");
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);

    long failures = 0;
    for (int t = 0; t < THREADS; t++) {
        failures += workers[t].failures;
        EXPECT(promshm_error_code(workers[t].err) == workers[t].last_code);
        EXPECT(strstr(promshm_error_detail(workers[t].err), workers[t].last_want) != NULL);
        promshm_error_free(workers[t].err);
    }
    EXPECT(failures == THREADS * g_iterations);

    /* The counter got exactly the successes of every thread. */
    double total = 0;
    OK(promshm_flush());
    OK(promshm_counter_get(g_series, &total));
    EXPECT(total == (double)(THREADS * (g_iterations / 16)));

    promshm_error_free(NULL);
    promshm_series_free(g_series);
    promshm_family_free(g_counter);
    promshm_registry_free(g_reg);
    promshm_area_free(g_area);
    promshm_error_free(err);
    printf("error_object: %d checks passed (%ld failures in %d threads)\n", g_checks, failures,
           THREADS);
    return 0;
}
