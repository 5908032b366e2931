/*
 * Threads: 2 worker processes x 4 threads each update shared series
 * (buffered counter and histogram, eager counter, summary, gauge), each
 * thread resolving its own handles, one process with a timer flusher; the
 * parent renders concurrently while they run, then checks exact totals.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define PROCESSES 2
#define THREADS 4
/* Per thread; PROMSHM_C_TEST_ITERATIONS overrides it (Valgrind runs). */
static long ITERATIONS = 200000L;

typedef struct {
    const promshm_family *ops, *eager, *sizes, *lat, *inflight;
} shared_families;

static int thread_failed;
static void *const FAILED = (void *)&thread_failed;

static void *thread_main(void *arg) {
    shared_families *f = (shared_families *)arg;
    const promshm_series *ops = NULL, *eager = NULL, *sizes = NULL, *lat = NULL, *inflight = NULL;
    const char *kind[1] = {"read"};
    if (promshm_family_labels(f->ops, kind, 1, &ops) != PROMSHM_RESULT_OK ||
        promshm_family_labels(f->eager, NULL, 0, &eager) != PROMSHM_RESULT_OK ||
        promshm_family_labels(f->sizes, NULL, 0, &sizes) != PROMSHM_RESULT_OK ||
        promshm_family_labels(f->lat, NULL, 0, &lat) != PROMSHM_RESULT_OK ||
        promshm_family_labels(f->inflight, NULL, 0, &inflight) != PROMSHM_RESULT_OK) {
        return FAILED;
    }
    void *result = NULL;
    for (long i = 0; i < ITERATIONS; i++) {
        promshm_result rc = promshm_counter_inc(ops);
        rc = rc ? rc : promshm_counter_add(eager, 2.0);
        rc = rc ? rc : promshm_histogram_observe(lat, (double)(i % 3));
        rc = rc ? rc : promshm_gauge_inc(inflight);
        if (i % 16 == 0) rc = rc ? rc : promshm_summary_observe(sizes, 100.0);
        if (rc != PROMSHM_RESULT_OK) {
            result = FAILED;
            break;
        }
    }
    promshm_series_free(ops);
    promshm_series_free(eager);
    promshm_series_free(sizes);
    promshm_series_free(lat);
    promshm_series_free(inflight);
    /* The thread's buffer is flushed when the thread exits. */
    return result;
}

static void worker_process(int id, shared_families *f) {
    promshm_flusher *flusher = NULL;
    if (id == 0) OK(promshm_flusher_start(5, &flusher));
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        if (pthread_create(&threads[t], NULL, thread_main, f) != 0) FAIL("pthread_create");
    int failed = 0;
    for (int t = 0; t < THREADS; t++) {
        void *r = NULL;
        pthread_join(threads[t], &r);
        failed |= r == FAILED;
    }
    promshm_flusher_stop(flusher);
    if (failed) FAIL("a thread failed");
    OK(promshm_flush());
    _exit(0);
}

int main(void) {
    ITERATIONS = test_iterations(ITERATIONS, 1);
    const promshm_area *area = NULL;
    OK(promshm_area_anonymous(NULL, &area));
    const promshm_registry *reg = NULL;
    OK(promshm_area_registry(area, &reg));

    shared_families f;
    memset(&f, 0, sizeof f);
    const char *kind[1] = {"kind"};
    promshm_metric_opts o = metric_opts("thr_ops", "Operations.", kind, 1);
    OK(promshm_registry_counter(reg, &o, &f.ops));
    o = metric_opts("thr_eager", "Eager operations.", NULL, 0);
    o.update_mode = PROMSHM_UPDATE_MODE_EAGER;
    OK(promshm_registry_counter(reg, &o, &f.eager));
    o = metric_opts("thr_sizes", "Sizes.", NULL, 0);
    const double q[2] = {0.5, 0.99};
    OK(promshm_registry_summary(reg, &o, q, 2, 0, 0, &f.sizes));
    o = metric_opts("thr_latency", "Latency.", NULL, 0);
    double buckets[3];
    OK(promshm_buckets_linear(0.5, 1.0, 3, buckets)); /* 0.5 1.5 2.5 */
    OK(promshm_registry_histogram(reg, &o, buckets, 3, &f.lat));
    o = metric_opts("thr_inflight", "Gauge incremented by every thread.", NULL, 0);
    OK(promshm_registry_gauge(reg, &o, PROMSHM_GAUGE_MODE_SUM, &f.inflight));

    fflush(stdout);
    pid_t pids[PROCESSES];
    for (int p = 0; p < PROCESSES; p++) {
        pid_t pid = fork();
        if (pid < 0) FAIL("fork");
        if (pid == 0) worker_process(p, &f);
        pids[p] = pid;
    }

    /* Render while the workers run: never blocked, totals never go back. */
    const promshm_series *ops = NULL;
    const char *read[1] = {"read"};
    OK(promshm_family_labels(f.ops, read, 1, &ops));
    double last = 0;
    int renders = 0;
    for (int done = 0; done < PROCESSES;) {
        char *text = render_text(area, NULL, PROMSHM_FORMAT_OPENMETRICS);
        renders++;
        free(text);
        double now = 0;
        OK(promshm_counter_get(ops, &now));
        EXPECT(now >= last);
        last = now;
        int status = 0;
        for (int p = 0; p < PROCESSES; p++) {
            if (pids[p] == 0) continue;
            pid_t r = waitpid(pids[p], &status, WNOHANG);
            if (r == pids[p]) {
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                    FAIL("worker %d ended with status %d", p, status);
                pids[p] = 0;
                done++;
            }
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }

    const double n = (double)PROCESSES * THREADS * ITERATIONS;
    char *text = render_text(area, NULL, PROMSHM_FORMAT_PROMETHEUS);
    EXPECT(sample_value(text, "thr_ops_total{kind=\"read\"}") == n);
    EXPECT(sample_value(text, "thr_eager_total") == 2 * n);
    EXPECT(sample_value(text, "thr_latency_count") == n);
    EXPECT(sample_value(text, "thr_latency_bucket{le=\"+Inf\"}") == n);
    /* i % 3 over 0..ITERATIONS per thread (200000: 66667 zeros, 66667 ones,
     * 66666 twos); a summary observation for every i % 16 == 0. */
    const double per_thread_0 = (double)((ITERATIONS + 2) / 3);
    const double per_thread_1 = (double)((ITERATIONS + 1) / 3);
    const double per_thread_2 = (double)(ITERATIONS / 3);
    const double per_thread_sizes = (double)((ITERATIONS + 15) / 16);
    const double tt = (double)PROCESSES * THREADS;
    EXPECT(sample_value(text, "thr_latency_bucket{le=\"0.5\"}") == tt * per_thread_0);
    EXPECT(sample_value(text, "thr_latency_bucket{le=\"1.5\"}") == tt * (per_thread_0 + per_thread_1));
    EXPECT(sample_value(text, "thr_latency_sum") == tt * (per_thread_1 * 1 + per_thread_2 * 2));
    EXPECT(sample_value(text, "thr_sizes_count") == tt * per_thread_sizes);
    EXPECT(sample_value(text, "thr_sizes_sum") == tt * per_thread_sizes * 100);
    double median = sample_value(text, "thr_sizes{quantile=\"0.5\"}");
    EXPECT(median > 99 && median < 101);
    /* Gauge, sum mode: the dead workers' values are kept. */
    EXPECT(sample_value(text, "thr_inflight") == n);
    free(text);

    uint64_t count = 0;
    double sum = 0;
    const promshm_series *sizes = NULL;
    OK(promshm_family_labels(f.sizes, NULL, 0, &sizes));
    OK(promshm_summary_get(sizes, &count, &sum));
    EXPECT(count == (uint64_t)(tt * per_thread_sizes));
    double est[1];
    const double half[1] = {0.5};
    OK(promshm_summary_quantiles(sizes, half, 1, est));
    EXPECT(est[0] > 99 && est[0] < 101);
    promshm_series_free(sizes);

    promshm_series_free(ops);
    promshm_family_free(f.ops);
    promshm_family_free(f.eager);
    promshm_family_free(f.sizes);
    promshm_family_free(f.lat);
    promshm_family_free(f.inflight);
    promshm_registry_free(reg);
    promshm_area_free(area);
    printf("threads: %d processes x %d threads x %ld iterations, %d renders meanwhile, "
           "%d checks passed\n",
           PROCESSES, THREADS, ITERATIONS, renders, g_checks);
    return 0;
}
