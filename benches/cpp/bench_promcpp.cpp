// The reference for benches/c/bench_hot.c: prometheus-cpp (Debian's
// prometheus-cpp-dev) Counter::Increment and Histogram::Observe, in the same
// loop, with the same labels, buckets and observed values. prometheus-cpp
// keeps its metrics in the process (one process, no sharing): its counter is
// an atomic double, its histogram takes a mutex per observation.
//
// Output: "<name> <ns per op>", best of BENCH_REPEATS runs (default 5) of
// BENCH_ITERATIONS calls (default 50M). Built and run by scripts/bench-c.sh.
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace {

long env_long(const char* name, long dflt) {
    const char* v = std::getenv(name);
    return v && *v ? std::strtol(v, nullptr, 10) : dflt;
}

double values[1024];

template <class F>
double time_ns(long n, F&& body) {
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; i++) body(i);
    auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n);
}

}  // namespace

int main() {
    const long n = env_long("BENCH_ITERATIONS", 50000000L);
    const long repeats = env_long("BENCH_REPEATS", 5);
    for (int i = 0; i < 1024; i++) values[i] = i * 0.002;

    auto registry = std::make_shared<prometheus::Registry>();
    auto& requests = prometheus::BuildCounter()
                         .Name("bench_requests_total")
                         .Help("Requests.")
                         .Register(*registry);
    auto& latency = prometheus::BuildHistogram()
                        .Name("bench_latency_seconds")
                        .Help("Latency.")
                        .Register(*registry);
    // Resolved once, like a promshm series handle.
    prometheus::Counter& c = requests.Add({{"path", "/"}, {"status", "200"}});
    prometheus::Histogram& h = latency.Add(
        {{"path", "/"}},
        prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                                5, 10});

    double inc = 1e9, observe = 1e9, labels = 1e9;
    const long n_labels = n / 10 > 0 ? n / 10 : 1;
    for (long r = 0; r < repeats; r++) {
        inc = std::min(inc, time_ns(n, [&](long) { c.Increment(); }));
        observe = std::min(observe, time_ns(n, [&](long i) { h.Observe(values[i & 1023]); }));
        // 2 label values looked up on every call (Family::Add finds the existing series).
        labels = std::min(labels, time_ns(n_labels, [&](long) {
                              requests.Add({{"path", "/"}, {"status", "200"}}).Increment();
                          }));
    }
    const double want = static_cast<double>(n + n_labels) * static_cast<double>(repeats);
    if (c.Value() != want ||
        h.Collect().histogram.sample_count != static_cast<uint64_t>(n) * static_cast<uint64_t>(repeats)) {
        std::fprintf(stderr, "bench_promcpp: wrong totals\n");
        return 1;
    }
    std::printf("counter_inc %.3f\n", inc);
    std::printf("histogram_observe %.3f\n", observe);
    std::printf("labels_inc %.3f\n", labels);
    return 0;
}
