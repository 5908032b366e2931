/*
 * A forked child that never flushes publishes within its parent's flusher
 * interval (issue 18, item 1), through the C API.
 *
 * The parent starts a 20 ms flusher (promshm_flusher_start, inherited by
 * children by default), forks a child at once that increments a buffered
 * counter 5,000 times and then loops forever without flushing; the parent
 * reads the counter and must see the exact total within 2 s, then kills the
 * child and stops the flusher. ROUNDS times, and as many with
 * promshm_flusher_start_ex() and its defaults; the slowest and the mean time
 * from the child's last update to visibility are printed. With no_inherit = 1
 * the child publishes nothing (it is killed, so its updates never come).
 * Bad options are INVALID_ARGUMENT.
 *
 * Each round forks right after a flusher started: before the start waited
 * for its thread to run, the fork could catch that thread in the C runtime's
 * start-up, and under GCC 12's AddressSanitizer (whose allocator has no fork
 * handlers) the child then inherited an allocator lock held by a thread it
 * does not have: its own flusher blocked forever in its first allocation
 * (every few runs).
 */
#define _POSIX_C_SOURCE 200809L
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#endif
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define INCS 5000
#define ROUNDS 10

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

/* Fork a child that increments `s` INCS times, writes the time of its last
 * update to `last` (shared memory) and loops. */
static pid_t fork_worker(const promshm_series *s, volatile double *last) {
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
        *last = now_s();
        for (int i = 0; i < 3000; i++) sleep_ms(10);
        _exit(12);
    }
    return pid;
}

/* Kill the child, which must still be running (it never exits by itself). */
static void kill_worker(pid_t pid) {
    int status = 0;
    kill(pid, SIGKILL);
    if (waitpid(pid, &status, 0) != pid) FAIL("waitpid");
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        FAIL("the child ended by itself (status %#x)", (unsigned)status);
}

/* Seconds from the child's last update (`*last`) until `s` reads `want`
 * (fails 2 s after the fork if it does not). */
static double visible_within_2_s(const promshm_series *s, double want, volatile double *last,
                                 const char *what) {
    double t0 = now_s();
    for (;;) {
        double v = value(s);
        if (v == want && *last > 0) return now_s() - *last;
        if (v > want) FAIL("%s: %g > %g", what, v, want);
        if (now_s() - t0 > 2.0) FAIL("%s: still %g of %g after 2 s (never published)", what, v, want);
        sleep_ms(1);
    }
}

/* ROUNDS times: start a flusher (`fo`, or promshm_flusher_start(20) if
 * NULL), fork a worker at once, wait for its exact total, kill it, stop the
 * flusher. Prints and returns the slowest time to visibility. */
static double rounds(const promshm_series *s, const promshm_flusher_options *fo, volatile double *last,
                     const char *what) {
    double worst = 0, sum = 0;
    for (int r = 1; r <= ROUNDS; r++) {
        promshm_flusher *f = NULL;
        if (fo != NULL)
            OK(promshm_flusher_start_ex(fo, &f));
        else
            OK(promshm_flusher_start(20, &f));
        *last = 0;
        pid_t pid = fork_worker(s, last);
        double took = visible_within_2_s(s, (double)r * INCS, last, what);
        kill_worker(pid);
        promshm_flusher_stop(f);
        sum += took;
        if (took > worst) worst = took;
    }
    fprintf(stderr, "%s: exact total visible %.1f ms (mean) / %.1f ms (max) after the child's last update, %d rounds\n",
            what, sum / ROUNDS * 1e3, worst * 1e3, ROUNDS);
    return worst;
}

int main(void) {
    /* The children's time of their last update, seen by the parent. */
    volatile double *last = (volatile double *)mmap(NULL, sizeof(double), PROT_READ | PROT_WRITE,
                                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (last == (volatile double *)MAP_FAILED) FAIL("mmap");
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
    double t_start = rounds(by_start, NULL, last, "promshm_flusher_start child");

    /* promshm_flusher_start_ex with the defaults but a 20 ms interval. */
    promshm_flusher_options fo = PROMSHM_FLUSHER_OPTIONS_INIT;
    fo.interval_ms = 20;
    double t_start_ex = rounds(by_start_ex, &fo, last, "promshm_flusher_start_ex child");

    /* no_inherit = 1: the child gets no flusher. */
    promshm_flusher *f = NULL;
    fo.no_inherit = 1;
    OK(promshm_flusher_start_ex(&fo, &f));
    pid_t pid = fork_worker(by_no_inherit, last);
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
    munmap((void *)last, sizeof(double));
    printf("flusher_inherit: children's totals visible at most %.1f ms and %.1f ms after their last update "
           "(%d rounds each), %d checks passed\n",
           t_start * 1e3, t_start_ex * 1e3, ROUNDS, g_checks);
    return 0;
}
