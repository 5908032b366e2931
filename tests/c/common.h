/*
 * Helpers shared by the C API tests. Each test is one C file compiled as C11
 * and as C++17 (-Wall -Wextra -Werror), linked against libpromshm.so and
 * libpromshm.a, and run by tests/c_api.rs, which checks the exit status and
 * the last line of output.
 */
#ifndef PROMSHM_TEST_COMMON_H
#define PROMSHM_TEST_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "promshm.h"

static int g_checks = 0;

/* Fail the test (exit 1) with the location, the call and the last error. */
#define FAIL(...)                                                              \
    do {                                                                       \
        char fail_detail_[512];                                                \
        promshm_last_error(fail_detail_, sizeof fail_detail_, NULL);           \
        fprintf(stderr, "%s:%d: FAILED: ", __FILE__, __LINE__);                \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n  last error: %s\n", fail_detail_);                 \
        exit(1);                                                               \
    } while (0)

/* Expect `call` (a promshm_result expression) to return `want`. */
#define EXPECT_RC(want, call)                                                  \
    do {                                                                       \
        promshm_result rc_ = (call);                                           \
        g_checks++;                                                            \
        if (rc_ != (want)) {                                                   \
            FAIL("%s returned %u (%s), expected %u (%s)", #call,               \
                 (unsigned)rc_, promshm_result_message((uint32_t)rc_),         \
                 (unsigned)(want), promshm_result_message((uint32_t)(want)));  \
        }                                                                      \
    } while (0)

#define OK(call) EXPECT_RC(PROMSHM_RESULT_OK, call)

#define EXPECT(cond)                                                           \
    do {                                                                       \
        g_checks++;                                                            \
        if (!(cond)) FAIL("expected %s", #cond);                               \
    } while (0)

/* Fork `n` worker processes, each running `call` with `w` (its index,
 * 0..n-1) in scope; `call` ends the child (`_exit`). stdio is flushed first,
 * so nothing buffered in the parent reaches the children. Then wait for
 * every one and fail unless each exited with status 0. */
#define RUN_WORKERS(n, call)                                                   \
    do {                                                                       \
        fflush(stdout);                                                        \
        fflush(stderr);                                                        \
        pid_t pids_[n];                                                        \
        for (int w = 0; w < (n); w++) {                                        \
            pid_t pid_ = fork();                                               \
            if (pid_ < 0) FAIL("fork");                                        \
            if (pid_ == 0) call;                                               \
            pids_[w] = pid_;                                                   \
        }                                                                      \
        for (int w = 0; w < (n); w++) {                                        \
            int status_ = 0;                                                   \
            if (waitpid(pids_[w], &status_, 0) != pids_[w]) FAIL("waitpid");   \
            if (!WIFEXITED(status_) || WEXITSTATUS(status_) != 0)              \
                FAIL("worker %d ended with status %d", w, status_);            \
        }                                                                      \
    } while (0)

/* A promshm_metric_opts with its size set, the rest zero (C and C++ alike). */
static inline promshm_metric_opts metric_opts(const char *name, const char *help,
                                       const char *const *labels, size_t n) {
    promshm_metric_opts o = PROMSHM_METRIC_OPTS_INIT;
    o.name = name;
    o.help = help;
    o.label_names = labels;
    o.n_label_names = n;
    return o;
}

/* Render an area (or, if `reg` is not NULL, a registry) into a malloc'd
 * NUL-terminated string, using the size query. */
static inline char *render_text(const promshm_area *area, const promshm_registry *reg,
                         promshm_format format) {
    for (int attempt = 0; attempt < 5; attempt++) {
        size_t need = 0;
        promshm_result rc = reg ? promshm_registry_render(reg, format, NULL, 0, &need)
                                : promshm_area_render(area, format, NULL, 0, &need);
        if (rc != PROMSHM_RESULT_BUFFER_TOO_SMALL) FAIL("size query returned %u", (unsigned)rc);
        /* Leave room: the self-metrics may change between the two renders. */
        size_t cap = need + 4096;
        char *buf = (char *)malloc(cap);
        if (!buf) FAIL("out of memory");
        size_t len = 0;
        rc = reg ? promshm_registry_render(reg, format, buf, cap, &len)
                 : promshm_area_render(area, format, buf, cap, &len);
        if (rc == PROMSHM_RESULT_OK) {
            if (buf[len] != '\0' || strlen(buf) != len) FAIL("render length/NUL mismatch");
            return buf;
        }
        free(buf);
        if (rc != PROMSHM_RESULT_BUFFER_TOO_SMALL) FAIL("render returned %u", (unsigned)rc);
    }
    FAIL("render kept growing");
    return NULL;
}

/* The value of the sample line `series` (e.g. `x_total{a="b"}`) in an
 * exposition, which must appear exactly once at the start of a line. */
static inline double sample_value(const char *text, const char *series) {
    size_t n = strlen(series);
    const char *found = NULL;
    for (const char *line = text; line && *line;) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            if (found) FAIL("series %s appears twice", series);
            found = line + n + 1;
        }
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    if (!found) {
        fprintf(stderr, "---- exposition ----\n%s--------------------\n", text);
        FAIL("series %s not found", series);
    }
    char *end = NULL;
    double v = strtod(found, &end);
    if (end == found) FAIL("series %s has no number", series);
    return v;
}

/* The iteration count of a load test: `dflt`, or PROMSHM_C_TEST_ITERATIONS
 * when it is set and smaller (tests/c_api.rs sets one under Valgrind to
 * lower the load tests' counts), rounded down to a multiple of `multiple_of`
 * for the expected totals to be exact. */
static inline long test_iterations(long dflt, long multiple_of) {
    const char *env = getenv("PROMSHM_C_TEST_ITERATIONS");
    if (!env || !*env) return dflt;
    char *end = NULL;
    long n = strtol(env, &end, 10);
    if (*end != '\0' || n <= 0) FAIL("PROMSHM_C_TEST_ITERATIONS=%s: want a positive count", env);
    if (n >= dflt) return dflt;
    n -= n % multiple_of;
    if (n == 0) FAIL("PROMSHM_C_TEST_ITERATIONS=%s: want at least %ld", env, multiple_of);
    return n;
}

static inline int has_line_prefix(const char *text, const char *prefix) {
    size_t n = strlen(prefix);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, n) == 0) return 1;
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

#endif /* PROMSHM_TEST_COMMON_H */
