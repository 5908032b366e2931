/*
 * The C API's hot path, called from a C loop the way a C server calls it:
 * promshm_counter_inc() and promshm_histogram_observe() on series handles
 * resolved once, buffered (the default) and eager (write-through). Built
 * and run by scripts/bench-c.sh, next to benches/cpp/bench_promcpp.cpp
 * (prometheus-cpp) in the same run; both use the same loop, the same label
 * set, the same buckets and the same observed values.
 *
 * Output: one line per operation, "<name> <ns per op>", the best of
 * BENCH_REPEATS runs (default 5) of BENCH_ITERATIONS calls (default 50M).
 * Every total is checked after a flush, so nothing is optimised away.
 *
 * Also measured, as floors: a plain add and a relaxed atomic fetch_add on a
 * MAP_SHARED page; and, resolving 2 label values on every call, the labelled
 * inc through promshm_family_labels() + inc + free, and through
 * promshm_family_inc_by_values() (no handle). The local counter's inc and
 * the local histogram's observe (static inline in the header) too.
 *
 * BENCH_ONLY=<name> runs only that operation (once, BENCH_ITERATIONS calls)
 * and prints nothing: scripts/bench.sh counts its instructions with
 * valgrind --tool=callgrind --toggle-collect=bench_<name>.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "promshm.h"

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void check(promshm_result rc, const char *what) {
    if (rc != PROMSHM_RESULT_OK) {
        char detail[256];
        promshm_last_error(detail, sizeof detail, NULL);
        fprintf(stderr, "bench_hot: %s: %s (%s)\n", what, promshm_result_message(rc), detail);
        exit(1);
    }
}

/* 1024 observed values spread over the default buckets (0 .. 2.046). */
static double VALUES[1024];

#define NOINLINE __attribute__((noinline))

NOINLINE static double bench_counter_inc(const promshm_series *s, long n) {
    uint32_t bad = 0;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) bad |= promshm_counter_inc(s);
    double t1 = now_ns();
    if (bad) check(PROMSHM_RESULT_PANIC, "counter_inc in the loop");
    return (t1 - t0) / (double)n;
}

NOINLINE static double bench_histogram_observe(const promshm_series *s, long n) {
    uint32_t bad = 0;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) bad |= promshm_histogram_observe(s, VALUES[i & 1023]);
    double t1 = now_ns();
    if (bad) check(PROMSHM_RESULT_PANIC, "histogram_observe in the loop");
    return (t1 - t0) / (double)n;
}

/* The same loop as bench_counter_inc, on the eager series (a separate
 * function, so that callgrind can count it alone). */
NOINLINE static double bench_counter_inc_eager(const promshm_series *s, long n) {
    return bench_counter_inc(s, n);
}

/* Resolve 2 label values on every call, through the handle API. */
NOINLINE static double bench_labels_inc(const promshm_family *f, const char *const *values, long n) {
    uint32_t bad = 0;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        const promshm_series *s = NULL;
        bad |= promshm_family_labels(f, values, 2, &s);
        bad |= promshm_counter_inc(s);
        promshm_series_free(s);
    }
    double t1 = now_ns();
    if (bad) check(PROMSHM_RESULT_PANIC, "labels + inc in the loop");
    return (t1 - t0) / (double)n;
}

/* Resolve 2 label values on every call, without a handle. */
NOINLINE static double bench_labels_by_values_inc(const promshm_family *f, const char *const *values,
                                                  long n) {
    uint32_t bad = 0;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) bad |= promshm_family_inc_by_values(f, values, 2, 1.0);
    double t1 = now_ns();
    if (bad) check(PROMSHM_RESULT_PANIC, "inc_by_values in the loop");
    return (t1 - t0) / (double)n;
}

/* The floor: a plain add through a pointer the compiler cannot see into. */
NOINLINE static double bench_plain_add(volatile double *cell, long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) *cell += 1;
    return (now_ns() - t0) / (double)n;
}

/* The local counter: promshm_local_counter_inc(), static inline in the
 * header, on a caller-owned struct. The empty asm (a compiler barrier) keeps
 * each increment a read-modify-write of `count`, as the volatile plain
 * add is, instead of one add of n after the loop; the flush (one buffered
 * add) is outside the timing, as a server flushes once per request. */
NOINLINE static double bench_local_counter_inc(promshm_local_counter *l, long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        promshm_local_counter_inc(l);
        __asm__ volatile("" : : "r"(l) : "memory");
    }
    double t1 = now_ns();
    check(promshm_local_counter_flush(l), "local_counter_flush");
    return (t1 - t0) / (double)n;
}

/* The local histogram: promshm_local_histogram_observe(), static inline in
 * the header, on a caller-owned struct (the same values as
 * bench_histogram_observe). Its flush (straight to the area) is outside
 * the timing, as a server flushes once per request. */
NOINLINE static double bench_local_histogram_observe(promshm_local_histogram *l, long n) {
    uint32_t bad = 0;
    double t0 = now_ns();
    for (long i = 0; i < n; i++) bad |= promshm_local_histogram_observe(l, VALUES[i & 1023]);
    double t1 = now_ns();
    if (bad) check(PROMSHM_RESULT_PANIC, "local_histogram_observe in the loop");
    check(promshm_local_histogram_flush(l), "local_histogram_flush");
    return (t1 - t0) / (double)n;
}

/* The shared-memory floor: a relaxed fetch_add on a MAP_SHARED page. */
NOINLINE static double bench_fetch_add_shared(_Atomic uint64_t *cell, long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) atomic_fetch_add_explicit(cell, 1, memory_order_relaxed);
    return (now_ns() - t0) / (double)n;
}

static double best(double a, double b) { return a < b ? a : b; }

int main(void) {
    const long n = env_long("BENCH_ITERATIONS", 50000000L);
    const long repeats = env_long("BENCH_REPEATS", 5);
    for (int i = 0; i < 1024; i++) VALUES[i] = (double)i * 0.002;

    const promshm_area *area = NULL;
    check(promshm_area_anonymous(NULL, &area), "area");
    const promshm_registry *reg = NULL;
    check(promshm_registry_new(area, "bench", NULL, 0, &reg), "registry");

    const char *req_labels[2] = {"path", "status"};
    promshm_metric_opts o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.name = "requests";
    o.help = "Requests.";
    o.label_names = req_labels;
    o.n_label_names = 2;
    const promshm_family *requests = NULL, *eager = NULL, *latency = NULL;
    check(promshm_registry_counter(reg, &o, &requests), "counter");
    o.name = "requests_eager";
    o.update_mode = PROMSHM_UPDATE_MODE_EAGER;
    check(promshm_registry_counter(reg, &o, &eager), "eager counter");

    const char *lat_labels[1] = {"path"};
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.name = "latency";
    o.help = "Latency.";
    o.unit = "seconds";
    o.label_names = lat_labels;
    o.n_label_names = 1;
    size_t n_buckets = 0;
    const double *buckets = promshm_default_buckets(&n_buckets);
    check(promshm_registry_histogram(reg, &o, buckets, n_buckets, &latency), "histogram");

    const char *values[2] = {"/", "200"};
    const promshm_series *c = NULL, *e = NULL, *h = NULL;
    check(promshm_family_labels(requests, values, 2, &c), "labels");
    check(promshm_family_labels(eager, values, 2, &e), "labels");
    check(promshm_family_labels(latency, values, 1, &h), "labels");

    _Atomic uint64_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) check(PROMSHM_RESULT_IO, "mmap");
    volatile double cell = 0;
    promshm_local_counter local;
    check(promshm_local_counter_init(&local, c), "local_counter_init");
    promshm_local_histogram local_h;
    check(promshm_local_histogram_init(&local_h, h), "local_histogram_init");
    const char *only = getenv("BENCH_ONLY");
    if (only && *only) {
        if (!strcmp(only, "plain_add")) bench_plain_add(&cell, n);
        else if (!strcmp(only, "fetch_add_shared")) bench_fetch_add_shared(page, n);
        else if (!strcmp(only, "counter_inc")) bench_counter_inc(c, n);
        else if (!strcmp(only, "local_counter_inc")) bench_local_counter_inc(&local, n);
        else if (!strcmp(only, "counter_inc_eager")) bench_counter_inc_eager(e, n);
        else if (!strcmp(only, "histogram_observe")) bench_histogram_observe(h, n);
        else if (!strcmp(only, "local_histogram_observe")) bench_local_histogram_observe(&local_h, n);
        else if (!strcmp(only, "labels_inc")) bench_labels_inc(requests, values, n);
        else if (!strcmp(only, "labels_by_values_inc")) bench_labels_by_values_inc(requests, values, n);
        else {
            fprintf(stderr, "bench_hot: unknown BENCH_ONLY=%s\n", only);
            return 2;
        }
        return 0;
    }

    double local_inc = 1e9, inc = 1e9, inc_eager = 1e9, observe = 1e9, plain = 1e9, shared = 1e9, labels = 1e9,
           by_values = 1e9, local_observe = 1e9;
    const long n_labels = n / 10 > 0 ? n / 10 : 1;
    for (long r = 0; r < repeats; r++) {
        plain = best(plain, bench_plain_add(&cell, n));
        shared = best(shared, bench_fetch_add_shared(page, n));
        inc = best(inc, bench_counter_inc(c, n));
        local_inc = best(local_inc, bench_local_counter_inc(&local, n));
        inc_eager = best(inc_eager, bench_counter_inc_eager(e, n));
        observe = best(observe, bench_histogram_observe(h, n));
        local_observe = best(local_observe, bench_local_histogram_observe(&local_h, n));
        labels = best(labels, bench_labels_inc(requests, values, n_labels));
        by_values = best(by_values, bench_labels_by_values_inc(requests, values, n_labels));
        check(promshm_flush(), "flush");
    }

    /* Nothing was optimised away: the totals are exact. */
    double total = 0;
    uint64_t count = 0;
    check(promshm_counter_get(c, &total), "counter_get");
    check(promshm_histogram_get(h, &count, NULL), "histogram_get");
    double want = (double)n * (double)repeats;
    /* The counter took the buffered incs, the labelled ones and the local ones;
     * the histogram the observations and the local histogram's. */
    if (total != 2.0 * want + 2.0 * (double)n_labels * (double)repeats || (double)count != 2.0 * want ||
        atomic_load(page) != (uint64_t)(n * repeats)) {
        fprintf(stderr, "bench_hot: totals %.0f/%llu, expected %.0f\n", total,
                (unsigned long long)count, want);
        return 1;
    }
    check(promshm_counter_get(e, &total), "counter_get");
    if (total != want) return 1;

    printf("plain_add %.3f\n", plain);
    printf("fetch_add_shared %.3f\n", shared);
    printf("labels_inc %.3f\n", labels);
    printf("labels_by_values_inc %.3f\n", by_values);
    printf("counter_inc %.3f\n", inc);
    printf("local_counter_inc %.3f\n", local_inc);
    printf("counter_inc_eager %.3f\n", inc_eager);
    printf("histogram_observe %.3f\n", observe);
    printf("local_histogram_observe %.3f\n", local_observe);

    check(promshm_local_counter_release(&local), "local_counter_release");
    check(promshm_local_histogram_release(&local_h), "local_histogram_release");
    promshm_series_free(c);
    promshm_series_free(e);
    promshm_series_free(h);
    promshm_family_free(requests);
    promshm_family_free(eager);
    promshm_family_free(latency);
    promshm_registry_free(reg);
    promshm_area_free(area);
    return 0;
}
