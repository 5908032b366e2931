// The promshm C++ wrapper (bindings/cpp/promshm.hpp) in a pre-fork program:
// the parent creates an anonymous shared area and registers the families,
// forks N workers that each process a batch of jobs (counting them by kind
// and outcome, timing them in a histogram, observing their sizes in a
// summary whose quantiles are merged across processes, and setting a
// last-success timestamp gauge), then waits for them and prints the
// exposition of the shared area: the exact totals of all the workers.
//
//     ./main [WORKERS] [--openmetrics]      (WORKERS: default 4)
#include "promshm.hpp"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr int kJobsPerWorker = 10000;

// What a worker does with the handles it inherited.
int worker(int id, const promshm::Family<promshm::Counter>& jobs,
           const promshm::Family<promshm::Histogram>& duration,
           const promshm::Family<promshm::Summary>& sizes,
           const promshm::Family<promshm::Gauge>& last_success) {
    // Resolve the series once (validating); update them in the loop.
    const promshm::Counter resize_ok = jobs.labels({"resize", "ok"});
    const promshm::Counter resize_failed = jobs.labels({"resize", "failed"});
    const promshm::Counter thumbnail_ok = jobs.labels({"thumbnail", "ok"});
    const promshm::Histogram seconds = duration.get();
    const promshm::Summary bytes = sizes.get();

    unsigned seed = static_cast<unsigned>(id) * 7919u + 1u;
    for (int i = 0; i < kJobsPerWorker; i++) {
        seed = seed * 1103515245u + 12345u;  // a small LCG: deterministic "work"
        double work = static_cast<double>(seed % 1000) / 10000.0;  // 0 .. 0.1 s
        if (i % 2 == 0) {
            (i % 100 == 0 ? resize_failed : resize_ok).inc();
        } else {
            thumbnail_ok.inc();
        }
        seconds.observe(work);
        bytes.observe(1024.0 + static_cast<double>(seed % 4096));
    }
    last_success.get().set_to_current_time();
    promshm::flush();  // e.g. at the end of each request or batch
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int workers = 4;
    auto format = promshm::format::prometheus;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--openmetrics") == 0) {
            format = promshm::format::openmetrics;
        } else {
            workers = std::atoi(argv[i]);
            if (workers < 1 || workers > 64) {
                std::fprintf(stderr, "usage: %s [WORKERS 1..64] [--openmetrics]\n", argv[0]);
                return 2;
            }
        }
    }

    try {
        // Before fork(): the area and the families.
        auto area = promshm::Area::anonymous();
        auto reg = area.registry("batch", {{"app", "cpp-example"}});
        auto jobs = reg.counter(
            promshm::Opts("jobs", "Jobs processed, by kind and outcome.").labels({"kind", "outcome"}));
        auto duration = reg.histogram(
            promshm::Opts("job_duration", "Time per job.").unit("seconds"),
            promshm::exponential_buckets(0.001, 4, 5));
        auto sizes = reg.summary(promshm::Opts("job_size", "Job input sizes.").unit("bytes"),
                                 {0.5, 0.9, 0.99});
        auto last_success = reg.gauge(
            promshm::Opts("last_success_time", "When a worker last finished its batch.")
                .unit("seconds"),
            promshm::gauge_mode::mostrecent);

        std::cout.flush();
        std::vector<pid_t> pids;
        for (int w = 0; w < workers; w++) {
            pid_t pid = fork();
            if (pid < 0) {
                std::perror("fork");
                return 1;
            }
            if (pid == 0) {
                int status = 1;
                try {
                    status = worker(w, jobs, duration, sizes, last_success);
                } catch (const promshm::error& e) {
                    std::fprintf(stderr, "worker %d: %s\n", w, e.what());
                }
                std::exit(status);
            }
            pids.push_back(pid);
        }
        int failed = 0;
        for (pid_t pid : pids) {
            int status = 0;
            if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                failed++;
        }

        // Every worker's counts, exact, from the shared area.
        reg.render(std::cout, format);
        return failed ? 1 : 0;
    } catch (const promshm::error& e) {
        std::fprintf(stderr, "promshm: %s\n", e.what());
        return 1;
    }
}
