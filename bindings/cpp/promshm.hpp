// promshm.hpp: a header-only C++17 wrapper of the promshm C API
// (include/promshm.h), Prometheus metrics in a shared-memory area that every
// worker process of a pre-fork server updates.
//
// Errors are exceptions. Every wrapped call that fails throws
// `promshm::error`, which carries the `promshm_result` code (`code()`), the
// code's static message and the library's detail for this failure
// (`promshm_last_error()`); `what()` is "message: detail". The wrapper itself
// throws `promshm::error` with `PROMSHM_RESULT_INVALID_ARGUMENT` for a string
// with an embedded NUL (C strings cannot carry one), and lets
// `std::bad_alloc` through. Functions marked `noexcept` never throw; the
// destructors never throw. Exceptions were chosen over an expected-style
// result because failures are rare and happen on the slow paths
// (registration, resolution, rendering): the hot-path updates on a handle
// (`Counter::inc`, `Histogram::observe`, ...) fail only on a moved-from
// handle or a NaN, and cost what the C call costs when they succeed.
//
// Ownership: every class wraps one C handle and is move-only RAII: the
// destructor calls the handle's `*_free` (`promshm_flusher_stop` for
// `Flusher`). A moved-from object holds no handle; using it throws
// `promshm::error` with `PROMSHM_RESULT_NULL_PARAMETER`. `clone()` makes a
// second owner of the same object (`*_clone`). To mix with C code,
// `handle()` gives the C handle (still owned by the object), `release()`
// gives up ownership of it, and `T::adopt(p)` takes ownership of one (and
// checks its metric type). As in C, objects keep what they were made from
// alive: a `Counter` stays valid after its `Family`, `Registry` and `Area`
// are destroyed, and a guard (`Histogram::time()`, `Summary::time()`,
// `Gauge::track_inprogress()`) holds its own reference to the series, so
// `family.get().time()` on a temporary is safe.
//
// Threads and processes: the handles are safe to use from many threads at
// once, which is why the update methods are `const`. Create the `Area` (and
// register families) before `fork()`; children use the objects they
// inherited. Buffered updates reach the area at `promshm::flush()` (call it
// at request end), before a render, at thread exit and at process exit.
//
// Strings are taken as `std::string_view` (copied, with a NUL, for the C
// call) and label lists as `std::initializer_list`s or any range of strings.
//
//     #include "promshm.hpp"
//
//     auto area = promshm::Area::anonymous();
//     auto reg = area.registry("app");
//     auto requests = reg.counter(
//         promshm::Opts("http_requests", "Requests.").labels({"path", "status"}));
//     auto ok = requests.labels({"/", "200"});   // once: validating
//     ok.inc();                                  // per request: nanoseconds
//     promshm::flush();                          // at request end
//     std::cout << reg.render(promshm::format::prometheus);
//
// Build: c++ -std=c++17 -I<promshm include dir> app.cpp -lpromshm (the
// header is installed next to promshm.h; see scripts/install.sh and
// `pkg-config --cflags --libs promshm`).
#ifndef PROMSHM_HPP
#define PROMSHM_HPP

#include "promshm.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__GNUC__) || defined(__clang__)
#define PROMSHM_HPP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define PROMSHM_HPP_UNLIKELY(x) (x)
#endif

namespace promshm {

// ---- errors -----------------------------------------------------------------

/// A failed promshm call: the C status code, its message and the detail.
class error : public std::runtime_error {
public:
    /// An error with `code` and `detail` (the library's last-error text, or
    /// the wrapper's own explanation).
    error(promshm_result code, const std::string& detail)
        : std::runtime_error(describe(code, detail)), code_(code), detail_(detail) {}

    /// The `PROMSHM_RESULT_*` code.
    promshm_result code() const noexcept { return code_; }

    /// The static message of the code, e.g. "invalid label name".
    const char* message() const noexcept {
        const char* m = promshm_result_message(static_cast<uint32_t>(code_));
        return m ? m : "";
    }

    /// The detail of this failure, e.g. `invalid label name "a-b": ...`.
    const std::string& detail() const noexcept { return detail_; }

    /// 1xx: a bad argument (name, label, value, NULL, buffer...).
    bool is_argument_error() const noexcept { return block() == 1; }
    /// 2xx: an operating-system error on a file or mapping.
    bool is_io_error() const noexcept { return block() == 2; }
    /// 3xx: the shared area (full, incompatible, damaged, read-only...).
    bool is_area_error() const noexcept { return block() == 3; }
    /// 4xx: the registry (a family registered with another shape).
    bool is_registry_error() const noexcept { return block() == 4; }

private:
    static std::string describe(promshm_result code, const std::string& detail) {
        const char* m = promshm_result_message(static_cast<uint32_t>(code));
        std::string s = m ? m : "promshm error";
        if (!detail.empty()) s += ": " + detail;
        return s;
    }
    uint32_t block() const noexcept { return static_cast<uint32_t>(code_) / 100; }

    promshm_result code_;
    std::string detail_;
};

namespace detail {

/// Throw the `error` for `rc`, with this thread's last-error detail.
[[noreturn]] inline void throw_error(promshm_result rc) {
    std::string detail;
    size_t need = 0;
    if (promshm_last_error(nullptr, 0, &need) == PROMSHM_RESULT_OK && need > 0) {
        detail.resize(need + 1);
        size_t len = 0;
        promshm_last_error(&detail[0], detail.size(), &len);
        detail.resize(len < need ? len : need);
    }
    throw error(rc, detail);
}

/// Throw unless `rc` is `PROMSHM_RESULT_OK`.
inline void check(promshm_result rc) {
    if (PROMSHM_HPP_UNLIKELY(rc != PROMSHM_RESULT_OK)) throw_error(rc);
}

[[noreturn]] inline void throw_nul(const char* what) {
    throw error(PROMSHM_RESULT_INVALID_ARGUMENT,
                std::string(what) + " contains a NUL byte, which a C string cannot hold");
}

/// A NUL-terminated copy of a string_view.
inline std::string c_string(std::string_view v, const char* what) {
    if (v.find('\0') != std::string_view::npos) throw_nul(what);
    return std::string(v);
}

/// NUL-terminated copies of a list of strings, laid out in one buffer, and
/// the `const char *` array C takes. Up to 16 strings of 15 bytes together
/// need no heap allocation (short-string buffer and an inline array).
class c_strings {
public:
    template <class It>
    c_strings(It first, It last, const char* what) {
        size_t total = 0;
        size_t n = 0;
        for (It it = first; it != last; ++it, ++n) {
            std::string_view v(*it);
            if (v.find('\0') != std::string_view::npos) throw_nul(what);
            total += v.size() + 1;
        }
        buf_.reserve(total);
        for (It it = first; it != last; ++it) {
            std::string_view v(*it);
            buf_.append(v.data(), v.size());
            buf_.push_back('\0');
        }
        if (n > inline_.size()) heap_.resize(n);
        const char** out = n > inline_.size() ? heap_.data() : inline_.data();
        const char* p = buf_.data();
        for (size_t i = 0; i < n; i++) {
            out[i] = p;
            p += std::char_traits<char>::length(p) + 1;
        }
        ptrs_ = out;
        n_ = n;
    }
    c_strings(const c_strings&) = delete;
    c_strings& operator=(const c_strings&) = delete;

    const char* const* data() const noexcept { return n_ ? ptrs_ : nullptr; }
    size_t size() const noexcept { return n_; }

private:
    std::string buf_;
    std::array<const char*, 16> inline_{};
    std::vector<const char*> heap_;
    const char** ptrs_ = nullptr;
    size_t n_ = 0;
};

/// Move-only owner of one C handle `P` (a pointer, NULL when empty), given
/// back with `Free` (which takes NULL): the move, free and release code of
/// every wrapper class (`Flusher` directly, the others through
/// `shared_handle`).
template <class P, void (*Free)(P)>
class unique_handle {
public:
    unique_handle() noexcept = default;
    unique_handle(const unique_handle&) = delete;
    unique_handle& operator=(const unique_handle&) = delete;
    unique_handle(unique_handle&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    unique_handle& operator=(unique_handle&& other) noexcept {
        if (this != &other) reset(std::exchange(other.p_, nullptr));
        return *this;
    }
    ~unique_handle() { Free(p_); }

    /// The C handle, still owned by this object (NULL if moved from).
    P handle() const noexcept { return p_; }
    /// Whether this object holds a handle (false once moved from).
    explicit operator bool() const noexcept { return p_ != nullptr; }
    /// Give up ownership: the caller must `*_free` the returned handle.
    P release() noexcept { return std::exchange(p_, nullptr); }

protected:
    explicit unique_handle(P p) noexcept : p_(p) {}
    /// Own `p` instead of the current handle (which is freed).
    void reset(P p) noexcept { Free(std::exchange(p_, p)); }

private:
    P p_ = nullptr;
};

/// Move-only owner of one reference-counted C handle, which `clone_raw`
/// shares with a new owner.
template <class T, void (*Free)(const T*), const T* (*Clone)(const T*)>
class shared_handle : public unique_handle<const T*, Free> {
    using base = unique_handle<const T*, Free>;

public:
    shared_handle() noexcept = default;

protected:
    explicit shared_handle(const T* p) noexcept : base(p) {}
    /// A new owner of the same C object (throws on a moved-from handle).
    const T* clone_raw() const {
        if (!*this) throw error(PROMSHM_RESULT_NULL_PARAMETER, "cannot clone a moved-from handle");
        return Clone(this->handle());
    }
};

/// What the C getter `get(h, &out)` writes to `out`, after checking its
/// result (`Counter::value`, `Area::attach`, ...).
template <class H, class T>
T read(promshm_result (*get)(H, T*), H h) {
    T out{};
    check(get(h, &out));
    return out;
}

/// An owned reference to a series, taken by the guards (`Histogram::timer`,
/// `Gauge::in_progress`) so that they stay valid after the series object
/// they were made from (often a temporary: `family.get().time()`).
class series_ref
    : public shared_handle<promshm_series, promshm_series_free, promshm_series_clone> {
    using base = shared_handle<promshm_series, promshm_series_free, promshm_series_clone>;

public:
    series_ref() noexcept = default;
    /// A new reference to `s`; throws `PROMSHM_RESULT_NULL_PARAMETER` for
    /// NULL (a moved-from series).
    explicit series_ref(const promshm_series* s) : base(checked_clone(s)) {}

private:
    static const promshm_series* checked_clone(const promshm_series* s) {
        if (!s) throw error(PROMSHM_RESULT_NULL_PARAMETER, "series is moved from");
        return promshm_series_clone(s);
    }
};

}  // namespace detail

// ---- enumerations and small types ---------------------------------------------

/// An exposition format.
enum class format : uint32_t {
    prometheus = PROMSHM_FORMAT_PROMETHEUS,    ///< text 0.0.4
    openmetrics = PROMSHM_FORMAT_OPENMETRICS,  ///< OpenMetrics 1.0 text
    protobuf = PROMSHM_FORMAT_PROTOBUF,        ///< length-delimited protobuf (binary; never from format_from_accept)
};

/// How `Area::open` maps an existing area.
enum class open_mode : uint32_t {
    read_write = PROMSHM_OPEN_MODE_READ_WRITE,
    read_only = PROMSHM_OPEN_MODE_READ_ONLY,
};

/// How the values several workers set on one gauge combine.
enum class gauge_mode : uint32_t {
    sum = PROMSHM_GAUGE_MODE_SUM,
    livesum = PROMSHM_GAUGE_MODE_LIVESUM,
    max = PROMSHM_GAUGE_MODE_MAX,
    min = PROMSHM_GAUGE_MODE_MIN,
    mostrecent = PROMSHM_GAUGE_MODE_MOSTRECENT,
    all = PROMSHM_GAUGE_MODE_ALL,
    livemax = PROMSHM_GAUGE_MODE_LIVEMAX,
    livemin = PROMSHM_GAUGE_MODE_LIVEMIN,
    livemostrecent = PROMSHM_GAUGE_MODE_LIVEMOSTRECENT,
};

/// Buffered (thread-local, flushed) or eager (write-through) updates.
enum class update_mode : uint32_t {
    area_default = PROMSHM_UPDATE_MODE_DEFAULT,
    buffered = PROMSHM_UPDATE_MODE_BUFFERED,
    eager = PROMSHM_UPDATE_MODE_EAGER,
};

/// The type of a family or series.
enum class metric_type : uint32_t {
    invalid = PROMSHM_METRIC_TYPE_INVALID,
    counter = PROMSHM_METRIC_TYPE_COUNTER,
    gauge = PROMSHM_METRIC_TYPE_GAUGE,
    histogram = PROMSHM_METRIC_TYPE_HISTOGRAM,
    summary = PROMSHM_METRIC_TYPE_SUMMARY,
    info = PROMSHM_METRIC_TYPE_INFO,
    state_set = PROMSHM_METRIC_TYPE_STATE_SET,
    native_histogram = PROMSHM_METRIC_TYPE_NATIVE_HISTOGRAM,
};

/// A label given by name (constant labels, info pairs, `labels_by_name`).
struct label {
    std::string_view name;
    std::string_view value;
};

/// How to create an area; zero means the library default.
struct area_options {
    uint32_t pages = 0;        ///< 4 KiB pages (0: 4096 = 16 MiB)
    uint32_t max_workers = 0;  ///< worker slots (0: 64)
    bool eager = false;        ///< families write through unless they say otherwise
};

/// A histogram's or summary's count and sum.
struct sample_stats {
    uint64_t count = 0;
    double sum = 0;
};

/// A native histogram family's options, with client_golang's meanings; 0
/// keeps the default of each (see `promshm_registry_native_histogram`).
struct native_opts {
    double bucket_factor = 0;   ///< > 1; the schema's bucket growth is at most this (0: 1.1)
    double zero_threshold = 0;  ///< width of the zero bucket (0: 2^-128; negative: exact zeros only)
    uint32_t max_buckets = 0;   ///< most populated buckets a scrape shows (0: no limit)
    double min_value = 0;       ///< smallest magnitude with a bucket of its own (0: 2^-32)
    double max_value = 0;       ///< largest magnitude with a bucket of its own (0: 2^32)
    /// Classic bucket upper bounds too (+Inf implied; none: native only): the
    /// family then has both views (see `promshm_registry_native_histogram_buckets`).
    std::vector<double> buckets = {};
};

/// What every family needs: name, help, unit, label names, update mode. The
/// strings are copied, so an `Opts` may outlive what it was made from.
///
///     promshm::Opts("latency", "Request latency.").unit("seconds").labels({"path"})
class Opts {
public:
    /// Name (without `_total`/`_info`: the exposition adds them) and help.
    explicit Opts(std::string_view name, std::string_view help = {})
        : name_(detail::c_string(name, "metric name")), help_(detail::c_string(help, "help")) {}

    /// Help text.
    Opts& help(std::string_view h) { help_ = detail::c_string(h, "help"); return *this; }
    /// Unit, appended to the name (e.g. "seconds").
    Opts& unit(std::string_view u) { unit_ = detail::c_string(u, "unit"); return *this; }
    /// Label names, in the order `Family::labels` takes the values.
    Opts& labels(std::initializer_list<std::string_view> names) {
        return labels(std::vector<std::string_view>(names));
    }
    /// Label names from any range of strings.
    template <class Range>
    Opts& labels(const Range& names) {
        labels_.clear();
        for (const auto& n : names) labels_.push_back(detail::c_string(n, "label name"));
        return *this;
    }
    /// Buffered or eager updates for this family.
    Opts& mode(update_mode m) noexcept { mode_ = m; return *this; }
    /// Shorthand for `mode(update_mode::eager)`.
    Opts& eager() noexcept { return mode(update_mode::eager); }

    /// The C options, pointing into this object (valid while it lives and
    /// is not modified); `names` holds the label-name array.
    promshm_metric_opts c_opts(std::vector<const char*>& names) const {
        names.clear();
        for (const auto& l : labels_) names.push_back(l.c_str());
        promshm_metric_opts o = PROMSHM_METRIC_OPTS_INIT;
        o.name = name_.c_str();
        o.help = help_.empty() ? nullptr : help_.c_str();
        o.unit = unit_.empty() ? nullptr : unit_.c_str();
        o.label_names = names.empty() ? nullptr : names.data();
        o.n_label_names = names.size();
        o.update_mode = static_cast<promshm_update_mode>(mode_);
        return o;
    }

private:
    std::string name_, help_, unit_;
    std::vector<std::string> labels_;
    update_mode mode_ = update_mode::area_default;
};

// ---- free functions -------------------------------------------------------------

/// Push every thread's buffered updates of this process into the areas
/// (call it at request end). Never fails in practice.
inline void flush() { detail::check(promshm_flush()); }

/// The format to answer a scrape with, from its `Accept` header.
inline format format_from_accept(std::string_view accept) noexcept {
    if (accept.find('\0') != std::string_view::npos) return format::prometheus;
    try {
        std::string a(accept);
        return static_cast<format>(promshm_format_from_accept(a.c_str()));
    } catch (...) {  // std::bad_alloc
        return format::prometheus;
    }
}

/// The `Content-Type` header value for a format (a static string).
inline const char* content_type(format f) noexcept {
    return promshm_format_content_type(static_cast<promshm_format>(f));
}

/// The loaded library's version, e.g. "0.1.0".
inline const char* version() noexcept { return promshm_version(); }

/// Whether the loaded library is the version this header was made for.
inline bool library_matches_header() noexcept {
    return promshm_version_number() == PROMSHM_VERSION_NUMBER;
}

/// The Prometheus default histogram buckets.
inline std::vector<double> default_buckets() {
    size_t n = 0;
    const double* b = promshm_default_buckets(&n);
    if (!b) detail::throw_error(PROMSHM_RESULT_PANIC);
    return std::vector<double>(b, b + n);
}

/// `count` buckets `start, start + width, ...`.
inline std::vector<double> linear_buckets(double start, double width, size_t count) {
    std::vector<double> out(count);
    detail::check(promshm_buckets_linear(start, width, count, out.data()));
    return out;
}

/// `count` buckets `start, start * factor, ...`.
inline std::vector<double> exponential_buckets(double start, double factor, size_t count) {
    std::vector<double> out(count);
    detail::check(promshm_buckets_exponential(start, factor, count, out.data()));
    return out;
}

template <class Series>
class Family;

namespace detail {

/// NUL-terminated copies of label pairs and the `promshm_label` array C
/// takes (constant labels, info pairs, `labels_by_name`).
class c_labels {
public:
    explicit c_labels(std::initializer_list<label> pairs) {
        strings_.reserve(2 * pairs.size());
        for (const label& l : pairs) {
            strings_.push_back(c_string(l.name, "label name"));
            strings_.push_back(c_string(l.value, "label value"));
        }
        labels_.resize(pairs.size());  // strings_ no longer moves: c_str() stays valid
        for (size_t i = 0; i < labels_.size(); i++) {
            labels_[i].name = strings_[2 * i].c_str();
            labels_[i].value = strings_[2 * i + 1].c_str();
        }
    }
    c_labels(const c_labels&) = delete;
    c_labels& operator=(const c_labels&) = delete;

    const promshm_label* data() const noexcept { return labels_.empty() ? nullptr : labels_.data(); }
    size_t size() const noexcept { return labels_.size(); }

private:
    std::vector<std::string> strings_;
    std::vector<promshm_label> labels_;
};

/// Streams a render into a C++ callable `write(std::string_view)` (which may
/// return `bool`, false to stop). An exception thrown by `write` is caught
/// here, never crosses the C library, and is rethrown by `finish`.
template <class Write>
struct render_sink {
    Write& write;
    std::exception_ptr failure{};
    bool stopped = false;

    static int call(void* userdata, const uint8_t* data, size_t len) noexcept {
        auto* self = static_cast<render_sink*>(userdata);
        try {
            std::string_view chunk(reinterpret_cast<const char*>(data), len);
            if constexpr (std::is_same_v<decltype(self->write(chunk)), bool>) {
                if (!self->write(chunk)) {
                    self->stopped = true;
                    return 1;
                }
            } else {
                self->write(chunk);
            }
            return 0;
        } catch (...) {
            self->failure = std::current_exception();
            return 1;
        }
    }

    void finish(promshm_result rc) {
        if (failure) std::rethrow_exception(failure);
        check(rc);
    }
};

/// The render methods shared by `Area` and `Registry`.
template <class Derived, class T,
          promshm_result (*Callback)(const T*, promshm_format, promshm_write_fn, void*),
          promshm_result (*ToFile)(const T*, promshm_format, const char*)>
class renderable {
public:
    /// Stream the exposition to `write(std::string_view chunk)`, in chunks
    /// of at most about 64 KiB, in bounded memory. `write` may throw (the
    /// exception is rethrown here) or return false to stop (then this throws
    /// `PROMSHM_RESULT_WRITE_FAILED`).
    template <class Write>
    void render(format f, Write&& write) const {
        render_sink<Write> sink{write};
        promshm_result rc = Callback(self().handle(), static_cast<promshm_format>(f),
                                     &render_sink<Write>::call, &sink);
        sink.finish(rc);
    }

    /// The exposition as a string.
    std::string render(format f = format::prometheus) const {
        std::string out;
        render(f, [&out](std::string_view chunk) { out.append(chunk.data(), chunk.size()); });
        return out;
    }

    /// Write the exposition to a stream (throws if the stream fails).
    void render(std::ostream& os, format f = format::prometheus) const {
        render(f, [&os](std::string_view chunk) {
            os.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
            return static_cast<bool>(os);
        });
    }

    /// Replace the file `path` atomically with the exposition (for the
    /// node_exporter textfile collector: name it `*.prom`).
    void render_to_file(std::string_view path, format f = format::prometheus) const {
        std::string p = c_string(path, "path");
        check(ToFile(self().handle(), static_cast<promshm_format>(f), p.c_str()));
    }

private:
    const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }
};

/// The base of the series classes.
template <class Self, metric_type Type>
class series_base
    : public shared_handle<promshm_series, promshm_series_free, promshm_series_clone> {
public:
    /// The metric type of this series class.
    static constexpr metric_type type = Type;

    series_base() noexcept = default;

    /// Take ownership of a C series handle (NULL gives an empty object).
    /// Throws `PROMSHM_RESULT_WRONG_TYPE` (after freeing it) if the series
    /// is of another type.
    static Self adopt(const promshm_series* s) {
        Self out = wrap(s);
        if (s && static_cast<metric_type>(promshm_series_type(s)) != Type)
            throw error(PROMSHM_RESULT_WRONG_TYPE, "adopted series is of another type");
        return out;
    }

    /// Another owner of the same series.
    Self clone() const { return wrap(this->clone_raw()); }

private:
    template <class>
    friend class promshm::Family;

    /// A `Self` owning `s`: the one constructor of every series class.
    static Self wrap(const promshm_series* s) noexcept {
        Self out;
        out.reset(s);
        return out;
    }
};

}  // namespace detail

// ---- series -------------------------------------------------------------------

/// A counter series: a monotonic total.
class Counter : public detail::series_base<Counter, metric_type::counter> {
public:
    Counter() noexcept = default;
    /// Add 1 (buffered: nanoseconds, no lock).
    void inc() const { detail::check(promshm_counter_inc(handle())); }
    /// Add `v` (>= 0).
    void add(double v) const { detail::check(promshm_counter_add(handle(), v)); }
    /// The total in the area (every process, flushed).
    double value() const { return detail::read(promshm_counter_get, handle()); }

};

/// A gauge series: this process's value, combined across workers by the
/// family's `gauge_mode`.
class Gauge : public detail::series_base<Gauge, metric_type::gauge> {
public:
    Gauge() noexcept = default;
    void set(double v) const { detail::check(promshm_gauge_set(handle(), v)); }
    void inc() const { detail::check(promshm_gauge_inc(handle())); }
    void dec() const { detail::check(promshm_gauge_dec(handle())); }
    void add(double v) const { detail::check(promshm_gauge_add(handle(), v)); }
    void sub(double v) const { detail::check(promshm_gauge_sub(handle(), v)); }
    void set_to_current_time() const { detail::check(promshm_gauge_set_to_current_time(handle())); }
    /// The value as a render shows it (the mode applied over the workers).
    double value() const { return detail::read(promshm_gauge_get, handle()); }
    /// This process's own value.
    double local_value() const { return detail::read(promshm_gauge_get_local, handle()); }

    /// `inc()` now and `dec()` when the guard goes out of scope. The guard
    /// holds its own reference to the series: it may outlive the `Gauge` it
    /// was made from (`family.get().track_inprogress()`). A moved-from guard
    /// does nothing.
    class in_progress {
    public:
        explicit in_progress(const Gauge& g) : g_(g.handle()) {
            detail::check(promshm_gauge_inc(g_.handle()));
        }
        in_progress(in_progress&&) noexcept = default;
        in_progress& operator=(in_progress&&) = delete;
        ~in_progress() {
            if (g_) promshm_gauge_dec(g_.handle());  // cannot fail on a live handle
        }

    private:
        detail::series_ref g_;
    };
    /// Track work in progress: `auto guard = gauge.track_inprogress();`.
    in_progress track_inprogress() const { return in_progress(*this); }

};

namespace detail {
/// Observes the seconds elapsed between its construction and destruction.
/// It holds its own reference to the series (a clone of `s`), so it may
/// outlive the series object it was made from (`family.get().time()`). A
/// moved-from timer observes nothing.
template <promshm_result (*Observe)(const promshm_series*, double)>
class timer {
public:
    /// Start timing the series `s`; throws `PROMSHM_RESULT_NULL_PARAMETER`
    /// for NULL.
    explicit timer(const promshm_series* s)
        : s_(s), start_(std::chrono::steady_clock::now()) {}
    timer(timer&&) noexcept = default;
    timer& operator=(timer&&) = delete;
    ~timer() {
        if (!s_) return;
        std::chrono::duration<double> d = std::chrono::steady_clock::now() - start_;
        Observe(s_.handle(), d.count());  // cannot fail for a finite duration
    }

private:
    series_ref s_;
    std::chrono::steady_clock::time_point start_;
};

/// The base of the series that take observations (histogram, native
/// histogram, summary): their `observe`, `stats` and `time` differ only by
/// the C functions `Observe` and `Get`.
template <class Self, metric_type Type, promshm_result (*Observe)(const promshm_series*, double),
          promshm_result (*Get)(const promshm_series*, uint64_t*, double*)>
class observed_series : public series_base<Self, Type> {
public:
    /// Record one observation.
    void observe(double v) const { check(Observe(this->handle(), v)); }
    /// Count and sum in the area (every process; flushed ones for the
    /// buffered types).
    sample_stats stats() const {
        sample_stats s;
        check(Get(this->handle(), &s.count, &s.sum));
        return s;
    }
    /// Observes the seconds until it is destroyed.
    using timer = detail::timer<Observe>;
    /// Observe the seconds until the returned guard is destroyed.
    timer time() const { return timer(this->handle()); }
};
}  // namespace detail

/// A histogram series. `observe` is buffered (nanoseconds, no lock);
/// `stats` reads the area (every process, flushed).
class Histogram
    : public detail::observed_series<Histogram, metric_type::histogram, promshm_histogram_observe,
                                     promshm_histogram_get> {
public:
    Histogram() noexcept = default;
};

/// A native (sparse, exponential-bucket) histogram series. Observations
/// write through to the area (an atomic add into its bucket, no lock); only
/// the protobuf format carries its buckets.
class NativeHistogram
    : public detail::observed_series<NativeHistogram, metric_type::native_histogram,
                                     promshm_native_histogram_observe,
                                     promshm_native_histogram_get> {
public:
    NativeHistogram() noexcept = default;
};

/// A summary series: count, sum and cross-process quantiles.
class Summary : public detail::observed_series<Summary, metric_type::summary,
                                               promshm_summary_observe, promshm_summary_get> {
public:
    Summary() noexcept = default;
    /// Estimates of the quantiles `qs` (each in [0, 1]) across every process.
    std::vector<double> quantiles(std::initializer_list<double> qs) const {
        std::vector<double> out(qs.size());
        detail::check(promshm_summary_quantiles(handle(), qs.begin(), qs.size(), out.data()));
        return out;
    }
    /// One quantile estimate (NaN without observations).
    double quantile(double q) const { return quantiles({q})[0]; }
};

/// An info series (`<name>_info 1` with the information as labels).
class Info : public detail::series_base<Info, metric_type::info> {
public:
    Info() noexcept = default;
    /// Replace the information.
    void set(std::initializer_list<label> pairs) const {
        detail::c_labels c(pairs);
        detail::check(promshm_info_set(handle(), c.data(), c.size()));
    }

};

/// A state-set (enum) series.
class StateSet : public detail::series_base<StateSet, metric_type::state_set> {
public:
    StateSet() noexcept = default;
    /// Make `state` the current state.
    void set(std::string_view state) const {
        std::string s = detail::c_string(state, "state");
        detail::check(promshm_stateset_set(handle(), s.c_str()));
    }
    /// Make the `index`-th state (registration order) the current one.
    void set(size_t index) const { detail::check(promshm_stateset_set_index(handle(), index)); }
    /// The index of the current state.
    size_t state() const { return detail::read(promshm_stateset_get, handle()); }

};

// ---- families -----------------------------------------------------------------

/// A registered family whose series are `Series` (`Counter`, `Gauge`, ...).
template <class Series>
class Family : public detail::shared_handle<promshm_family, promshm_family_free,
                                            promshm_family_clone> {
    using base = detail::shared_handle<promshm_family, promshm_family_free, promshm_family_clone>;

public:
    Family() noexcept = default;

    /// Take ownership of a C family handle (NULL gives an empty object).
    /// Throws `PROMSHM_RESULT_WRONG_TYPE` (after freeing it) if the family
    /// is not of `Series`'s type.
    static Family adopt(const promshm_family* f) {
        Family out{f};
        if (f && static_cast<metric_type>(promshm_family_type(f)) != Series::type)
            throw error(PROMSHM_RESULT_WRONG_TYPE, "adopted family is of another type");
        return out;
    }

    /// The series with these label values (in label-name order), created if
    /// no process has. Validating: do it once and keep the series.
    Series labels(std::initializer_list<std::string_view> values) const {
        return labels_range(values.begin(), values.end());
    }
    /// The same, from any range of strings (`std::vector<std::string>`...).
    template <class Range, class = decltype(std::begin(std::declval<const Range&>()))>
    Series labels(const Range& values) const {
        return labels_range(std::begin(values), std::end(values));
    }
    /// The series of a family without labels.
    Series get() const { return labels({}); }

    /// The series with these labels given by name, in any order.
    Series labels_by_name(std::initializer_list<label> pairs) const {
        detail::c_labels c(pairs);
        const promshm_series* s = nullptr;
        detail::check(promshm_family_labels_by_name(handle(), c.data(), c.size(), &s));
        return Series::wrap(s);
    }

    /// Remove the series with these values in every process; whether it
    /// existed.
    bool remove(std::initializer_list<std::string_view> values) const {
        detail::c_strings c(values.begin(), values.end(), "label value");
        bool removed = false;
        detail::check(promshm_family_remove(handle(), c.data(), c.size(), &removed));
        return removed;
    }

    /// Remove every series of the family in every process; how many.
    size_t clear() const { return detail::read(promshm_family_clear, handle()); }

    /// Full name (prefix and unit included); empty if moved from.
    std::string_view name() const noexcept {
        const char* n = promshm_family_name(handle());
        return n ? std::string_view(n) : std::string_view();
    }
    /// Number of label values `labels` takes.
    size_t label_count() const noexcept { return promshm_family_label_count(handle()); }
    /// The family's type (`metric_type::invalid` if moved from).
    metric_type type() const noexcept {
        return static_cast<metric_type>(promshm_family_type(handle()));
    }
    /// Another owner of the same family.
    Family clone() const { return Family{this->clone_raw()}; }

private:
    friend class Registry;
    explicit Family(const promshm_family* f) noexcept : base(f) {}

    template <class It>
    Series labels_range(It first, It last) const {
        detail::c_strings c(first, last, "label value");
        const promshm_series* s = nullptr;
        detail::check(promshm_family_labels(handle(), c.data(), c.size(), &s));
        return Series::wrap(s);
    }
};

// ---- registries and areas -----------------------------------------------------

/// A view on an area with an optional prefix and constant labels, where
/// families are registered.
class Registry
    : public detail::shared_handle<promshm_registry, promshm_registry_free,
                                   promshm_registry_clone>,
      public detail::renderable<Registry, promshm_registry, promshm_registry_render_callback,
                                promshm_registry_render_to_file> {
    using base =
        detail::shared_handle<promshm_registry, promshm_registry_free, promshm_registry_clone>;

public:
    Registry() noexcept = default;

    /// Take ownership of a C registry handle.
    static Registry adopt(const promshm_registry* r) noexcept { return Registry{r}; }

    /// Register (or find) a counter family.
    Family<Counter> counter(const Opts& opts) const {
        return make<Counter>(opts, [&](const promshm_metric_opts* o, const promshm_family** f) {
            return promshm_registry_counter(handle(), o, f);
        });
    }

    /// Register (or find) a gauge family combining workers' values by `mode`.
    Family<Gauge> gauge(const Opts& opts, gauge_mode mode) const {
        return make<Gauge>(opts, [&](const promshm_metric_opts* o, const promshm_family** f) {
            return promshm_registry_gauge(handle(), o, static_cast<promshm_gauge_mode>(mode), f);
        });
    }

    /// Register (or find) a histogram family with the default buckets.
    Family<Histogram> histogram(const Opts& opts) const {
        return histogram(opts, default_buckets());
    }
    /// ... with these upper bounds (+Inf is implied).
    Family<Histogram> histogram(const Opts& opts, std::initializer_list<double> buckets) const {
        return histogram_raw(opts, buckets.begin(), buckets.size());
    }
    /// ... with these upper bounds (+Inf is implied).
    Family<Histogram> histogram(const Opts& opts, const std::vector<double>& buckets) const {
        return histogram_raw(opts, buckets.data(), buckets.size());
    }

    /// Register (or find) a native histogram family (with classic buckets
    /// too if `native.buckets` has any).
    Family<NativeHistogram> native_histogram(const Opts& opts,
                                             const native_opts& native = {}) const {
        return make<NativeHistogram>(
            opts, [&](const promshm_metric_opts* o, const promshm_family** f) {
                return promshm_registry_native_histogram_buckets(
                    handle(), o, native.bucket_factor, native.zero_threshold, native.max_buckets,
                    native.min_value, native.max_value, native.buckets.data(),
                    native.buckets.size(), f);
            });
    }

    /// Register (or find) a summary family with these quantiles, over every
    /// observation (`max_age` 0) or a sliding window of `max_age` in
    /// `age_buckets` steps (0: 5).
    Family<Summary> summary(const Opts& opts, std::initializer_list<double> quantiles = {},
                            std::chrono::milliseconds max_age = std::chrono::milliseconds(0),
                            uint32_t age_buckets = 0) const {
        return make<Summary>(opts, [&](const promshm_metric_opts* o, const promshm_family** f) {
            return promshm_registry_summary(
                handle(), o, quantiles.size() ? quantiles.begin() : nullptr, quantiles.size(),
                static_cast<uint64_t>(max_age.count()), age_buckets, f);
        });
    }

    /// Register (or find) an info family.
    Family<Info> info(const Opts& opts) const {
        return make<Info>(opts, [&](const promshm_metric_opts* o, const promshm_family** f) {
            return promshm_registry_info(handle(), o, f);
        });
    }

    /// Register (or find) a state-set family with these states.
    Family<StateSet> stateset(const Opts& opts,
                              std::initializer_list<std::string_view> states) const {
        detail::c_strings s(states.begin(), states.end(), "state");
        return make<StateSet>(opts, [&](const promshm_metric_opts* o, const promshm_family** f) {
            return promshm_registry_stateset(handle(), o, s.data(), s.size(), f);
        });
    }

    /// A copy whose renders leave out promshm's own metrics.
    Registry without_self_metrics() const {
        return Registry{detail::read(promshm_registry_without_self_metrics, handle())};
    }

    /// Another owner of the same registry.
    Registry clone() const { return Registry{this->clone_raw()}; }

private:
    friend class Area;
    explicit Registry(const promshm_registry* r) noexcept : base(r) {}

    Family<Histogram> histogram_raw(const Opts& opts, const double* b, size_t n) const {
        return make<Histogram>(opts, [&](const promshm_metric_opts* o, const promshm_family** f) {
            return promshm_registry_histogram(handle(), o, n ? b : nullptr, n, f);
        });
    }

    /// Register a family of `Series`: `reg(&c_opts, &out)` is the C call.
    template <class Series, class Register>
    Family<Series> make(const Opts& opts, Register&& reg) const {
        std::vector<const char*> names;
        promshm_metric_opts o = opts.c_opts(names);
        const promshm_family* f = nullptr;
        detail::check(reg(&o, &f));
        return Family<Series>{f};
    }
};

/// A shared area mapped into this process.
class Area : public detail::shared_handle<promshm_area, promshm_area_free, promshm_area_clone>,
             public detail::renderable<Area, promshm_area, promshm_area_render_callback,
                                       promshm_area_render_to_file> {
    using base = detail::shared_handle<promshm_area, promshm_area_free, promshm_area_clone>;

public:
    Area() noexcept = default;

    /// Create the area file `path` (0600, `O_NOFOLLOW`), or open it if it
    /// already holds a compatible area.
    static Area create(std::string_view path, const area_options& options = {}) {
        std::string p = detail::c_string(path, "path");
        promshm_area_options o = c_options(options);
        const promshm_area* a = nullptr;
        detail::check(promshm_area_create(p.c_str(), &o, &a));
        return Area{a};
    }

    /// An anonymous shared area, for a pre-fork server: create it before
    /// `fork()`.
    static Area anonymous(const area_options& options = {}) {
        promshm_area_options o = c_options(options);
        const promshm_area* a = nullptr;
        detail::check(promshm_area_anonymous(&o, &a));
        return Area{a};
    }

    /// Open an existing area file.
    static Area open(std::string_view path, open_mode mode = open_mode::read_write) {
        std::string p = detail::c_string(path, "path");
        const promshm_area* a = nullptr;
        detail::check(promshm_area_open(p.c_str(), static_cast<promshm_open_mode>(mode), &a));
        return Area{a};
    }

    /// Take ownership of a C area handle.
    static Area adopt(const promshm_area* a) noexcept { return Area{a}; }

    /// Another owner of the same mapping.
    Area clone() const { return Area{this->clone_raw()}; }

    /// Whether the area was opened read-only.
    bool read_only() const noexcept { return promshm_area_is_read_only(handle()); }

    /// Attach this process to a worker slot now; the slot index.
    uint32_t attach() const { return detail::read(promshm_area_attach, handle()); }

    /// Reap dead workers; how many.
    uint32_t reap() const { return detail::read(promshm_area_reap, handle()); }

    /// Usage and self-metric counters.
    promshm_area_stats stats() const {
        promshm_area_stats s = PROMSHM_AREA_STATS_INIT;
        detail::check(promshm_area_get_stats(handle(), &s));
        return s;
    }

    /// The worker table (slots in use).
    std::vector<promshm_worker_info> workers() const {
        for (;;) {
            size_t n = 0;
            promshm_result rc = promshm_area_workers(handle(), nullptr, 0, &n);
            if (rc != PROMSHM_RESULT_BUFFER_TOO_SMALL) {
                detail::check(rc);
                return {};
            }
            promshm_worker_info init = PROMSHM_WORKER_INFO_INIT;
            std::vector<promshm_worker_info> out(n + 4, init);  // room for new workers
            size_t got = 0;
            rc = promshm_area_workers(handle(), out.data(), out.size(), &got);
            if (rc == PROMSHM_RESULT_BUFFER_TOO_SMALL) continue;
            detail::check(rc);
            out.resize(got);
            return out;
        }
    }

    /// A registry with no prefix and no constant labels.
    Registry registry() const { return Registry{detail::read(promshm_area_registry, handle())}; }

    /// A registry whose families are `<prefix>_<name>` with these constant
    /// labels.
    Registry registry(std::string_view prefix, std::initializer_list<label> const_labels = {}) const {
        std::string p = detail::c_string(prefix, "prefix");
        detail::c_labels c(const_labels);
        const promshm_registry* r = nullptr;
        detail::check(promshm_registry_new(handle(), p.c_str(), c.data(), c.size(), &r));
        return Registry{r};
    }

private:
    explicit Area(const promshm_area* a) noexcept : base(a) {}

    static promshm_area_options c_options(const area_options& options) noexcept {
        promshm_area_options o = PROMSHM_AREA_OPTIONS_INIT;
        o.pages = options.pages;
        o.max_workers = options.max_workers;
        o.eager = options.eager ? 1 : 0;
        return o;
    }
};

/// A background thread flushing this process's buffers every `interval`;
/// stopped (with a last flush) when destroyed. Start it after `fork()`.
class Flusher : private detail::unique_handle<promshm_flusher*, promshm_flusher_stop> {
    using base = detail::unique_handle<promshm_flusher*, promshm_flusher_stop>;

public:
    Flusher() noexcept = default;
    explicit Flusher(std::chrono::milliseconds interval)
        : base(detail::read(promshm_flusher_start, checked_interval_ms(interval))) {}

    /// Stop now (flushing once more); the destructor then does nothing.
    void stop() noexcept { reset(nullptr); }
    /// Whether it is running.
    using base::operator bool;

private:
    static uint32_t checked_interval_ms(std::chrono::milliseconds interval) {
        if (interval.count() <= 0 || interval.count() > UINT32_MAX)
            throw error(PROMSHM_RESULT_INVALID_ARGUMENT, "flusher interval out of range");
        return static_cast<uint32_t>(interval.count());
    }
};

}  // namespace promshm

#undef PROMSHM_HPP_UNLIKELY

#endif  // PROMSHM_HPP
