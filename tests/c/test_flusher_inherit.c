/*
 * A forked child that never flushes publishes within its parent's flusher
 * interval (issue 18, item 1), through the C API.
 *
 * The parent starts a 20 ms flusher (promshm_flusher_start, inherited by
 * children by default), forks a child that increments a buffered counter
 * 5,000 times and then loops forever without flushing; the parent reads the
 * counter and must see the exact total within 2 s (the time is printed),
 * then kills the child. The same with promshm_flusher_start_ex() and its
 * defaults, and with no_inherit = 1: that child publishes nothing (it is
 * killed, so its updates never come). Bad options are INVALID_ARGUMENT.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define INCS 5000

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double value(const promshm_series *s) {
    double v = -1;
    OK(promshm_counter_get(s, &v));
    return v;
}

/* Fork a child that increments `s` INCS times and loops forever. */
static pid_t fork_worker(const promshm_series *s) {
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) FAIL("fork");
    if (pid == 0) {
        /* Bounded even if the parent fails (FAIL exits): die with it, and
         * never loop longer than 30 s. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(11);
        for (int i = 0; i < INCS; i++)
            if (promshm_counter_inc(s) != PROMSHM_RESULT_OK) _exit(10);
        for (int i = 0; i < 3000; i++) sleep_ms(10);
        _exit(12);
    }
    return pid;
}

static void kill_worker(pid_t pid) {
    int status = 0;
    kill(pid, SIGKILL);
    if (waitpid(pid, &status, 0) != pid) FAIL("waitpid");
}

/* Seconds until `s` reads INCS (fails after 2 s). */
static double visible_within_2_s(const promshm_series *s, const char *what) {
    double t0 = now_s();
    for (;;) {
        double v = value(s);
        if (v == INCS) {
            double took = now_s() - t0;
            fprintf(stderr, "%s: exact total %d visible after %.1f ms\n", what, INCS, took * 1e3);
            return took;
        }
        if (v > INCS) FAIL("%s: %g > %d", what, v, INCS);
        if (now_s() - t0 > 2.0) FAIL("%s: still %g of %d after 2 s (never published)", what, v, INCS);
        sleep_ms(1);
    }
}

int main(void) {
    promshm_area_options options = PROMSHM_AREA_OPTIONS_INIT;
    options.pages = 64;
    const promshm_area *area = NULL;
    OK(promshm_area_anonymous(&options, &area));
    const promshm_registry *reg = NULL;
    OK(promshm_registry_new(area, "inherit", NULL, 0, &reg));
    const char *labels[1] = {"case"};
    promshm_metric_opts o = metric_opts("jobs", "Jobs.", labels, 1);
    o.update_mode = PROMSHM_UPDATE_MODE_BUFFERED;
    const promshm_family *jobs = NULL;
    OK(promshm_registry_counter(reg, &o, &jobs));
    const promshm_series *by_start = NULL, *by_start_ex = NULL, *by_no_inherit = NULL;
    const char *v1[1] = {"start"}, *v2[1] = {"start_ex"}, *v3[1] = {"no_inherit"};
    OK(promshm_family_labels(jobs, v1, 1, &by_start));
    OK(promshm_family_labels(jobs, v2, 1, &by_start_ex));
    OK(promshm_family_labels(jobs, v3, 1, &by_no_inherit));

    /* promshm_flusher_start: inherited by default. */
    promshm_flusher *f = NULL;
    OK(promshm_flusher_start(20, &f));
    pid_t pid = fork_worker(by_start);
    double t_start = visible_within_2_s(by_start, "promshm_flusher_start child");
    kill_worker(pid);
    promshm_flusher_stop(f);

    /* promshm_flusher_start_ex with the defaults but a 20 ms interval. */
    promshm_flusher_options fo = PROMSHM_FLUSHER_OPTIONS_INIT;
    fo.interval_ms = 20;
    OK(promshm_flusher_start_ex(&fo, &f));
    pid = fork_worker(by_start_ex);
    double t_start_ex = visible_within_2_s(by_start_ex, "promshm_flusher_start_ex child");
    kill_worker(pid);
    promshm_flusher_stop(f);

    /* no_inherit = 1: the child gets no flusher. */
    fo.no_inherit = 1;
    OK(promshm_flusher_start_ex(&fo, &f));
    pid = fork_worker(by_no_inherit);
    sleep_ms(1000); /* 50 intervals */
    EXPECT(value(by_no_inherit) == 0);
    kill_worker(pid);
    promshm_flusher_stop(f);

    /* Bad options: nothing started, nothing written. */
    promshm_flusher *none = NULL;
    promshm_flusher_options bad = PROMSHM_FLUSHER_OPTIONS_INIT;
    bad.no_inherit = 2;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_flusher_start_ex(&bad, &none));
    bad.no_inherit = 0;
    bad.size = 0;
    EXPECT_RC(PROMSHM_RESULT_INVALID_ARGUMENT, promshm_flusher_start_ex(&bad, &none));
    EXPECT(none == NULL);
    EXPECT_RC(PROMSHM_RESULT_NULL_PARAMETER, promshm_flusher_start_ex(NULL, NULL));
    /* NULL options: the defaults (1 s, inherited). */
    OK(promshm_flusher_start_ex(NULL, &none));
    EXPECT(none != NULL);
    promshm_flusher_stop(none);

    promshm_series_free(by_start);
    promshm_series_free(by_start_ex);
    promshm_series_free(by_no_inherit);
    promshm_family_free(jobs);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("flusher_inherit: children visible after %.1f ms and %.1f ms, %d checks passed\n",
           t_start * 1e3, t_start_ex * 1e3, g_checks);
    return 0;
}
