// Tests of bindings/cpp/promshm.hpp, the C++17 RAII wrapper. Compiled with
// `c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror`, linked against
// libpromshm.so and libpromshm.a, and run by tests/c_api.rs (also under
// AddressSanitizer and Valgrind), which checks the exit status and the last
// line ("cpp_wrapper: N checks passed").
#include "promshm.hpp"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

int g_checks = 0;

[[noreturn]] void fail(const char* file, int line, const std::string& what) {
    std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
    std::exit(1);
}

#define EXPECT(cond)                                                     \
    do {                                                                 \
        g_checks++;                                                      \
        if (!(cond)) fail(__FILE__, __LINE__, "expected " #cond);        \
    } while (0)

// Expect `stmt` to throw promshm::error with `want`; returns the error.
#define EXPECT_ERROR(want, stmt)                                                        \
    [&]() -> promshm::error {                                                           \
        g_checks++;                                                                     \
        try {                                                                           \
            stmt;                                                                       \
        } catch (const promshm::error& e) {                                             \
            if (e.code() != (want))                                                     \
                fail(__FILE__, __LINE__,                                                \
                     std::string(#stmt " threw code ") + std::to_string(e.code()) +     \
                         " (" + e.what() + "), expected " + std::to_string(want));      \
            return e;                                                                   \
        }                                                                               \
        fail(__FILE__, __LINE__, #stmt " did not throw");                               \
    }()

// The value of the sample line `series` (e.g. `x_total{a="b"}`), which must
// appear exactly once at the start of a line.
double sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    bool found = false;
    double value = 0;
    while (std::getline(in, line)) {
        if (line.compare(0, series.size(), series) == 0 && line.size() > series.size() &&
            line[series.size()] == ' ') {
            if (found) fail(__FILE__, __LINE__, "series " + series + " appears twice");
            found = true;
            value = std::strtod(line.c_str() + series.size() + 1, nullptr);
        }
    }
    if (!found) fail(__FILE__, __LINE__, "series " + series + " not found in:\n" + text);
    return value;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

long iterations(long dflt) {
    const char* env = std::getenv("PROMSHM_C_TEST_ITERATIONS");
    return env && *env ? std::strtol(env, nullptr, 10) : dflt;
}

// ---- the types ------------------------------------------------------------------

template <class T>
constexpr bool move_only_raii =
    !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
    std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T> &&
    std::is_nothrow_destructible_v<T> && std::is_nothrow_default_constructible_v<T>;

static_assert(move_only_raii<promshm::Area>);
static_assert(move_only_raii<promshm::Registry>);
static_assert(move_only_raii<promshm::Family<promshm::Counter>>);
static_assert(move_only_raii<promshm::Family<promshm::StateSet>>);
static_assert(move_only_raii<promshm::Counter>);
static_assert(move_only_raii<promshm::Gauge>);
static_assert(move_only_raii<promshm::Histogram>);
static_assert(move_only_raii<promshm::NativeHistogram>);
static_assert(move_only_raii<promshm::Family<promshm::NativeHistogram>>);
static_assert(move_only_raii<promshm::Summary>);
static_assert(move_only_raii<promshm::Info>);
static_assert(move_only_raii<promshm::StateSet>);
static_assert(move_only_raii<promshm::Flusher>);
template <class T>
constexpr bool move_only_guard =
    !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
    std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>;

static_assert(move_only_guard<promshm::Histogram::timer>);
static_assert(move_only_guard<promshm::Summary::timer>);
static_assert(move_only_guard<promshm::NativeHistogram::timer>);
static_assert(move_only_guard<promshm::Gauge::in_progress>);
static_assert(std::is_base_of_v<std::runtime_error, promshm::error>);
static_assert(promshm::Counter::type == promshm::metric_type::counter);

// ---- tests ----------------------------------------------------------------------

void test_basics_and_rendering() {
    EXPECT(promshm::library_matches_header());
    EXPECT(std::string(promshm::version()) == PROMSHM_VERSION_STRING);

    auto area = promshm::Area::anonymous({256, 16, false});
    EXPECT(area);
    EXPECT(!area.read_only());
    auto reg = area.registry("cpp", {{"service", "wrapper"}});
    auto requests = reg.counter(
        promshm::Opts("requests", "Requests by path.").labels({"path", "status"}));
    EXPECT(requests.type() == promshm::metric_type::counter);
    EXPECT(requests.name() == "cpp_requests");
    EXPECT(requests.label_count() == 2);

    auto home = requests.labels({"/", "200"});
    home.inc();
    home.add(2.5);
    std::vector<std::string> values{"/", "200"};
    auto same = requests.labels(values);  // any range of strings
    same.inc();
    auto by_name = requests.labels_by_name({{"status", "200"}, {"path", "/"}});
    by_name.inc();
    promshm::flush();
    EXPECT(home.value() == 5.5);

    auto clone = home.clone();
    EXPECT(clone && clone.handle() != nullptr);
    clone.inc();

    auto latency = reg.histogram(promshm::Opts("latency", "Latency.").unit("seconds"),
                                 {0.1, 0.5, 1});
    auto lat = latency.get();
    lat.observe(0.05);
    lat.observe(0.7);
    { auto t = lat.time(); }  // a tiny observation, well under 0.1
    promshm::flush();
    promshm::sample_stats st = lat.stats();
    EXPECT(st.count == 3);
    EXPECT(st.sum >= 0.75 && st.sum < 0.8);

    std::string text = reg.render();
    EXPECT(sample(text, "cpp_requests_total{service=\"wrapper\",path=\"/\",status=\"200\"}") ==
           6.5);
    EXPECT(sample(text, "cpp_latency_seconds_bucket{service=\"wrapper\",le=\"0.1\"}") == 2);
    EXPECT(sample(text, "cpp_latency_seconds_bucket{service=\"wrapper\",le=\"+Inf\"}") == 3);
    EXPECT(contains(text, "# HELP cpp_requests_total Requests by path.\n"));
    EXPECT(!contains(text, "promshm_"));  // a prefixed registry: its namespace only

    // OpenMetrics, through a stream and through a callback.
    std::ostringstream os;
    reg.render(os, promshm::format::openmetrics);
    EXPECT(os.str().size() > 6 && os.str().compare(os.str().size() - 6, 6, "# EOF\n") == 0);
    size_t chunks = 0, bytes = 0;
    area.render(promshm::format::prometheus, [&](std::string_view chunk) {
        chunks++;
        bytes += chunk.size();
    });
    EXPECT(chunks >= 1 && bytes > text.size());  // the area: self-metrics too
    EXPECT(contains(area.render(), "promshm_"));

    // An exception from the callback comes back out of render(), unchanged.
    struct sink_full {};
    bool caught = false;
    try {
        area.render(promshm::format::prometheus, [](std::string_view) { throw sink_full{}; });
    } catch (const sink_full&) {
        caught = true;
    }
    EXPECT(caught);
    // A callback returning false stops the render: WRITE_FAILED.
    EXPECT_ERROR(PROMSHM_RESULT_WRITE_FAILED,
                 area.render(promshm::format::prometheus, [](std::string_view) { return false; }));

    // Atomic file render.
    char path[] = "/tmp/promshm-cpp-XXXXXX";
    int fd = mkstemp(path);
    EXPECT(fd >= 0);
    close(fd);
    reg.render_to_file(path);
    std::ifstream in(path);
    std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT(file == reg.render());
    std::remove(path);

    // Content negotiation.
    EXPECT(promshm::format_from_accept("application/openmetrics-text; version=1.0.0") ==
           promshm::format::openmetrics);
    EXPECT(promshm::format_from_accept("text/plain") == promshm::format::prometheus);
    EXPECT(promshm::format_from_accept("") == promshm::format::prometheus);
    EXPECT(std::string(promshm::content_type(promshm::format::prometheus))
               .find("text/plain; version=0.0.4") == 0);
    EXPECT(std::string(promshm::content_type(promshm::format::openmetrics))
               .find("application/openmetrics-text") == 0);

    // Remove and clear.
    auto other = requests.labels({"/other", "404"});
    other.inc();
    EXPECT(requests.remove({"/other", "404"}));
    EXPECT(!requests.remove({"/other", "404"}));
    EXPECT(!contains(reg.render(), "/other"));
    EXPECT(requests.clear() >= 1);
    EXPECT(!contains(reg.render(), "cpp_requests_total{"));

    // Area information.
    EXPECT(area.attach() == area.attach());
    EXPECT(area.reap() == 0);
    promshm_area_stats stats = area.stats();
    EXPECT(stats.pages_total == 256 && stats.max_workers == 16);
    EXPECT(stats.families >= 2);
    auto workers = area.workers();
    EXPECT(workers.size() == 1 && workers[0].pid == static_cast<uint32_t>(getpid()));
}

void test_every_type() {
    auto area = promshm::Area::anonymous();
    auto reg = area.registry("types").without_self_metrics();

    auto g = reg.gauge(promshm::Opts("temperature", "Gauge.").labels({"room"}),
                       promshm::gauge_mode::max);
    auto kitchen = g.labels({"kitchen"});
    kitchen.set(20);
    kitchen.inc();
    kitchen.add(1.5);
    kitchen.sub(0.5);
    kitchen.dec();
    EXPECT(kitchen.local_value() == 21);
    EXPECT(kitchen.value() == 21);
    {
        auto guard = kitchen.track_inprogress();
        EXPECT(kitchen.local_value() == 22);
    }
    EXPECT(kitchen.local_value() == 21);
    auto now = reg.gauge(promshm::Opts("last_run", "Time."), promshm::gauge_mode::mostrecent).get();
    now.set_to_current_time();
    EXPECT(now.value() > 1.6e9);

    auto sizes = reg.summary(promshm::Opts("sizes", "Summary.").unit("bytes"), {0.5, 0.9},
                             std::chrono::minutes(1), 3);
    auto s = sizes.get();
    for (int i = 1; i <= 100; i++) s.observe(i);
    EXPECT(s.stats().count == 100 && s.stats().sum == 5050);
    double median = s.quantile(0.5);
    EXPECT(median > 49 && median < 52);
    std::vector<double> qs = s.quantiles({0.1, 0.9});
    EXPECT(qs.size() == 2 && qs[0] < qs[1]);
    { auto t = s.time(); }
    EXPECT(s.stats().count == 101);

    auto build = reg.info(promshm::Opts("build", "Info.")).get();
    build.set({{"version", "1.2.3"}, {"commit", "abc"}});

    auto st = reg.stateset(promshm::Opts("phase", "State set."), {"starting", "running", "done"})
                  .get();
    EXPECT(st.state() == 0);
    st.set("running");
    EXPECT(st.state() == 1);
    st.set(size_t{2});
    EXPECT(st.state() == 2);

    auto eager = reg.counter(promshm::Opts("eager", "Eager.").eager()).get();
    eager.add(3);
    EXPECT(eager.value() == 3);  // no flush needed

    auto lin = promshm::linear_buckets(1, 1, 3);
    EXPECT(lin.size() == 3 && lin[2] == 3);
    auto expo = promshm::exponential_buckets(1, 2, 4);
    EXPECT(expo.size() == 4 && expo[3] == 8);
    EXPECT(promshm::default_buckets().size() == PROMSHM_DEFAULT_BUCKETS_COUNT);
    auto h = reg.histogram(promshm::Opts("default_buckets", "Histogram."));
    h.get().observe(0.3);

    std::string text = reg.render(promshm::format::openmetrics);
    EXPECT(sample(text, "types_temperature{room=\"kitchen\"}") == 21);
    EXPECT(sample(text, "types_build_info{version=\"1.2.3\",commit=\"abc\"}") == 1);
    EXPECT(sample(text, "types_phase{types_phase=\"done\"}") == 1);
    EXPECT(sample(text, "types_phase{types_phase=\"running\"}") == 0);
    EXPECT(sample(text, "types_sizes_bytes_count") == 101);
    EXPECT(sample(text, "types_eager_total") == 3);
    EXPECT(sample(text, "types_default_buckets_bucket{le=\"0.5\"}") == 1);
    EXPECT(!contains(text, "promshm_"));
}

// A guard owns the series it updates: made from a temporary (the natural
// `family.get().time()`), it outlives that temporary, and the family and
// registry it came from. Under ASan or Valgrind a guard keeping a pointer to
// the temporary fails here (use after scope / after free).
void test_guards_outlive_their_series() {
    auto area = promshm::Area::anonymous();
    auto reg = area.registry("guard").without_self_metrics();
    auto latency = reg.histogram(promshm::Opts("latency", "x").unit("seconds"), {60});
    auto sizes = reg.summary(promshm::Opts("sizes", "x"));
    auto busy = reg.gauge(promshm::Opts("busy", "x").labels({"pool"}), promshm::gauge_mode::sum);
    {
        auto timed = latency.get().time();  // the temporary Histogram dies at the `;`
        auto sized = sizes.get().time();
        auto working = busy.labels({"a"}).track_inprogress();
        EXPECT(busy.labels({"a"}).local_value() == 1);
        auto more = busy.labels({"a"}).track_inprogress();
        EXPECT(busy.labels({"a"}).local_value() == 2);
    }
    EXPECT(busy.labels({"a"}).local_value() == 0);
    promshm::flush();
    EXPECT(latency.get().stats().count == 1);
    EXPECT(sizes.get().stats().count == 1);

    // A guard can be moved (into a container, out of a function); only the
    // last owner observes or decrements.
    {
        auto timed = latency.get().time();
        auto moved = std::move(timed);
        auto working = busy.labels({"a"}).track_inprogress();
        auto moved_working = std::move(working);
        EXPECT(busy.labels({"a"}).local_value() == 1);
    }
    EXPECT(busy.labels({"a"}).local_value() == 0);
    promshm::flush();
    EXPECT(latency.get().stats().count == 2);

    // The registry, family and series of the guard are all gone before it ends.
    auto timer_of_nothing_kept = [&area] {
        return area.registry("kept").histogram(promshm::Opts("h", "x"), {60}).get().time();
    };
    auto gauge_of_nothing_kept = [&area] {
        return area.registry("kept")
            .gauge(promshm::Opts("g", "x"), promshm::gauge_mode::sum)
            .get()
            .track_inprogress();
    };
    {
        auto t = timer_of_nothing_kept();
        auto g = gauge_of_nothing_kept();
        EXPECT(sample(area.render(), "kept_g") == 1);
    }
    std::string text = area.render();
    EXPECT(sample(text, "kept_h_count") == 1);
    EXPECT(sample(text, "kept_g") == 0);
}

void test_errors() {
    auto area = promshm::Area::anonymous();
    auto reg = area.registry();

    promshm::error e = EXPECT_ERROR(PROMSHM_RESULT_INVALID_METRIC_NAME,
                                    reg.counter(promshm::Opts("bad-name", "x")));
    EXPECT(e.is_argument_error() && !e.is_area_error());
    EXPECT(contains(e.detail(), "bad-name"));
    EXPECT(contains(e.what(), "invalid metric name"));
    EXPECT(std::string(e.message()) == promshm_result_message(PROMSHM_RESULT_INVALID_METRIC_NAME));

    EXPECT_ERROR(PROMSHM_RESULT_RESERVED_LABEL,
                 reg.counter(promshm::Opts("c1", "x").labels({"le"})));
    auto fam = reg.counter(promshm::Opts("c2", "x").labels({"a"}));
    e = EXPECT_ERROR(PROMSHM_RESULT_SHAPE_MISMATCH,
                     reg.gauge(promshm::Opts("c2", "x").labels({"a"}), promshm::gauge_mode::sum));
    EXPECT(e.is_registry_error());
    EXPECT_ERROR(PROMSHM_RESULT_LABEL_COUNT, fam.labels({"1", "2"}));
    EXPECT_ERROR(PROMSHM_RESULT_UNKNOWN_LABEL, fam.labels_by_name({{"b", "1"}}));
    auto c = fam.labels({"1"});
    EXPECT_ERROR(PROMSHM_RESULT_INVALID_VALUE, c.add(-1));
    EXPECT_ERROR(PROMSHM_RESULT_INVALID_BUCKETS,
                 reg.histogram(promshm::Opts("h1", "x"), {2.0, 1.0}));
    EXPECT_ERROR(PROMSHM_RESULT_INVALID_BUCKETS, promshm::linear_buckets(0, -1, 3));
    EXPECT_ERROR(PROMSHM_RESULT_INVALID_SUMMARY,
                 reg.summary(promshm::Opts("s1", "x"), {1.5}));
    EXPECT_ERROR(PROMSHM_RESULT_INVALID_STATE,
                 reg.stateset(promshm::Opts("st1", "x"), {"a", "a"}));
    auto hist = reg.histogram(promshm::Opts("h2", "x")).get();
    EXPECT_ERROR(PROMSHM_RESULT_INVALID_VALUE, hist.observe(std::nan("")));

    // A NUL inside a string_view cannot reach C.
    using namespace std::string_view_literals;
    e = EXPECT_ERROR(PROMSHM_RESULT_INVALID_ARGUMENT, fam.labels({"a\0b"sv}));
    EXPECT(contains(e.detail(), "NUL"));

    // Moved-from handles: NULL_PARAMETER, never a crash.
    promshm::Counter moved = std::move(c);
    EXPECT(!c && moved);
    EXPECT_ERROR(PROMSHM_RESULT_NULL_PARAMETER, c.inc());
    EXPECT_ERROR(PROMSHM_RESULT_NULL_PARAMETER, c.clone());
    promshm::Family<promshm::Counter> fam2 = std::move(fam);
    EXPECT(fam.type() == promshm::metric_type::invalid && fam.name().empty());
    EXPECT_ERROR(PROMSHM_RESULT_NULL_PARAMETER, fam.labels({"1"}));
    promshm::Area empty;
    EXPECT_ERROR(PROMSHM_RESULT_NULL_PARAMETER, empty.render());
    EXPECT_ERROR(PROMSHM_RESULT_NULL_PARAMETER, promshm::Histogram().time());
    moved = promshm::Counter();  // move-assigning frees the old handle
    EXPECT(!moved);

    // Adopting raw C handles checks the type.
    EXPECT_ERROR(PROMSHM_RESULT_WRONG_TYPE,
                 promshm::Family<promshm::Gauge>::adopt(fam2.clone().release()));
    auto back = promshm::Family<promshm::Counter>::adopt(fam2.clone().release());
    EXPECT(back.name() == "c2");
    EXPECT_ERROR(PROMSHM_RESULT_WRONG_TYPE, promshm::Gauge::adopt(back.labels({"x"}).release()));

    // Read-only areas and files.
    EXPECT_ERROR(PROMSHM_RESULT_NOT_FOUND,
                 promshm::Area::open("/nonexistent/promshm/area", promshm::open_mode::read_only));
    char dir[] = "/tmp/promshm-cpp-area-XXXXXX";
    EXPECT(mkdtemp(dir) != nullptr);
    std::string file = std::string(dir) + "/metrics.promshm";
    {
        auto writer = promshm::Area::create(file, {64, 8, false});
        writer.registry().counter(promshm::Opts("file_counter", "x")).get().inc();
        promshm::flush();
        auto reader = promshm::Area::open(file, promshm::open_mode::read_only);
        EXPECT(reader.read_only());
        EXPECT(sample(reader.render(), "file_counter_total") == 1);
        EXPECT_ERROR(PROMSHM_RESULT_READ_ONLY,
                     reader.registry().counter(promshm::Opts("ro", "x")));
    }
    std::remove(file.c_str());
    rmdir(dir);

    EXPECT_ERROR(PROMSHM_RESULT_INVALID_ARGUMENT, promshm::Flusher(std::chrono::milliseconds(0)));
}

void test_threads_and_flusher() {
    auto area = promshm::Area::anonymous();
    auto reg = area.registry("thr");
    auto family = reg.counter(promshm::Opts("ops", "x"));
    const promshm::Counter ops = family.get();  // const: updates are const
    const long n = iterations(100000);
    promshm::Flusher flusher(std::chrono::milliseconds(5));
    EXPECT(flusher);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++)
        threads.emplace_back([&ops, n] {
            for (long i = 0; i < n; i++) ops.inc();
        });
    for (auto& t : threads) t.join();  // a thread's buffer is flushed at its exit
    promshm::Flusher moved = std::move(flusher);
    EXPECT(!flusher && moved);
    moved.stop();
    EXPECT(!moved);
    EXPECT(ops.value() == 4.0 * static_cast<double>(n));
}

void test_prefork() {
    auto area = promshm::Area::anonymous({1024, 16, false});
    auto reg = area.registry("fork");
    auto requests = reg.counter(promshm::Opts("requests", "x").labels({"worker"}));
    auto total = reg.counter(promshm::Opts("all", "x"));
    auto latency = reg.histogram(promshm::Opts("latency", "x").unit("seconds"), {0.5, 1.5});
    const long n = iterations(100000);
    const int workers = 4;
    std::cout.flush();
    std::vector<pid_t> pids;
    for (int w = 0; w < workers; w++) {
        pid_t pid = fork();
        if (pid < 0) fail(__FILE__, __LINE__, "fork");
        if (pid == 0) {
            int status = 0;
            try {
                auto mine = requests.labels({std::to_string(w)});
                auto all = total.get();
                auto lat = latency.get();
                for (long i = 0; i < n; i++) {
                    mine.inc();
                    all.inc();
                    lat.observe(static_cast<double>(i % 2));
                }
                promshm::flush();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "worker %d: %s\n", w, e.what());
                status = 1;
            }
            // exit() leaves the parent's objects in this frame alive (reachable,
            // not leaked); the atexit flush finds nothing left to flush.
            std::exit(status);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int status = 0;
        EXPECT(waitpid(pid, &status, 0) == pid);
        EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    std::string text = reg.render();
    for (int w = 0; w < workers; w++)
        EXPECT(sample(text, "fork_requests_total{worker=\"" + std::to_string(w) + "\"}") ==
               static_cast<double>(n));
    EXPECT(sample(text, "fork_all_total") == static_cast<double>(workers * n));
    EXPECT(sample(text, "fork_latency_seconds_bucket{le=\"0.5\"}") ==
           static_cast<double>(workers * ((n + 1) / 2)));
    EXPECT(sample(text, "fork_latency_seconds_count") == static_cast<double>(workers * n));
    // The render reaped the dead workers; the parent never attached.
    EXPECT(area.workers().empty());
}

// A native histogram family: 4 forked workers observe dyadic values (an exact
// sum in any order) into one series; count, sum and the text formats' view
// (_count, _sum, one +Inf bucket) are exact in the parent; the protobuf page
// names the family; a bucket factor <= 1 is refused.
void test_native_histogram() {
    auto area = promshm::Area::anonymous({1024, 16, false});
    auto reg = area.registry("nat");
    promshm::native_opts no;
    no.bucket_factor = 2.0;  // schema 0
    no.zero_threshold = 0.125;
    auto latency =
        reg.native_histogram(promshm::Opts("latency", "x").unit("seconds").labels({"route"}), no);
    EXPECT(latency.type() == promshm::metric_type::native_histogram);
    const double values[] = {0.0, 0.25, 1.0, 3.0, 4.0, -0.5, -6.0};
    const long rounds = iterations(2000);
    const int workers = 4;
    std::cout.flush();
    std::vector<pid_t> pids;
    for (int w = 0; w < workers; w++) {
        pid_t pid = fork();
        if (pid < 0) fail(__FILE__, __LINE__, "fork");
        if (pid == 0) {
            int status = 0;
            try {
                auto s = latency.labels({"/a"});
                for (long r = 0; r < rounds; r++)
                    for (size_t k = 0; k < 7; k++) s.observe(values[(k + r + w) % 7]);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "worker %d: %s\n", w, e.what());
                status = 1;
            }
            std::exit(status);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int status = 0;
        EXPECT(waitpid(pid, &status, 0) == pid);
        EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    auto s = latency.labels({"/a"});
    const uint64_t count = static_cast<uint64_t>(workers * rounds * 7);
    const double sum = static_cast<double>(workers * rounds) * (0.0 + 0.25 + 1 + 3 + 4 - 0.5 - 6);
    promshm::sample_stats st = s.stats();
    EXPECT(st.count == count);
    EXPECT(st.sum == sum);
    { auto t = s.time(); }  // one more, written through
    EXPECT(s.stats().count == count + 1);

    std::string text = reg.render();
    EXPECT(sample(text, "nat_latency_seconds_count{route=\"/a\"}") == static_cast<double>(count + 1));
    EXPECT(sample(text, "nat_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"}") ==
           static_cast<double>(count + 1));
    EXPECT(!contains(text, "le=\"1\""));  // no classic buckets in the text formats
    std::string pb = reg.render(promshm::format::protobuf);
    EXPECT(contains(pb, "nat_latency_seconds"));
    EXPECT(!contains(pb, "# HELP"));

    promshm::native_opts bad;
    bad.bucket_factor = 0.5;
    EXPECT_ERROR(PROMSHM_RESULT_INVALID_BUCKETS,
                 reg.native_histogram(promshm::Opts("bad_factor", "x"), bad));
    // The name is taken by a native histogram: a classic one is refused.
    EXPECT_ERROR(PROMSHM_RESULT_SHAPE_MISMATCH,
                 reg.histogram(promshm::Opts("latency", "x").unit("seconds").labels({"route"})));
}

// A native histogram with classic buckets too: the text formats show the
// classic buckets, exact; other bounds under the name are refused.
void test_native_histogram_buckets() {
    auto area = promshm::Area::anonymous({1024, 16, false});
    auto reg = area.registry("dual");
    promshm::native_opts no;
    no.bucket_factor = 2.0;
    no.buckets = {1.0, 2.0};
    auto h = reg.native_histogram(promshm::Opts("lat", "x"), no).get();
    for (double v : {0.5, 1.0, 1.5, 3.0}) h.observe(v);
    EXPECT(h.stats().count == 4 && h.stats().sum == 6.0);
    std::string text = reg.render();
    EXPECT(sample(text, "dual_lat_bucket{le=\"1.0\"}") == 2.0);
    EXPECT(sample(text, "dual_lat_bucket{le=\"2.0\"}") == 3.0);
    EXPECT(sample(text, "dual_lat_bucket{le=\"+Inf\"}") == 4.0);
    EXPECT(sample(text, "dual_lat_count") == 4.0);
    no.buckets = {1.0};
    EXPECT_ERROR(PROMSHM_RESULT_SHAPE_MISMATCH, reg.native_histogram(promshm::Opts("lat", "x"), no));
}

}  // namespace

int main() {
    try {
        test_basics_and_rendering();
        test_every_type();
        test_guards_outlive_their_series();
        test_errors();
        test_threads_and_flusher();
        test_prefork();
        test_native_histogram();
        test_native_histogram_buckets();
    } catch (const promshm::error& e) {
        std::fprintf(stderr, "unexpected promshm::error %u: %s\n", static_cast<unsigned>(e.code()),
                     e.what());
        return 1;
    }
    std::printf("cpp_wrapper: %d checks passed\n", g_checks);
    return 0;
}
