/*
 * A small pre-fork HTTP server instrumented with promshm.
 *
 * The parent binds 127.0.0.1:PORT, creates an anonymous promshm area,
 * registers the metric families, and forks N workers that all accept() on
 * the one listening socket. Every worker counts its requests by path and
 * status, observes their latency in a histogram, and flushes its buffers
 * into the shared area at the end of each request, so `GET /metrics`,
 * answered by whichever worker accepts it, shows the exact totals of all
 * workers. The parent restarts a worker that dies and, on SIGTERM or
 * SIGINT, stops the workers (each finishes its request in flight) and exits.
 *
 *     ./server [-p PORT] [-w WORKERS] [-f AREA_FILE] [-q]
 *
 * PORT defaults to $PORT, then 8080; 0 picks a free port. WORKERS defaults
 * to $WORKERS, then 4. With -f the area is a file (created 0600) that the
 * `promshm` command can inspect or serve; without it, an anonymous shared
 * mapping inherited by the workers. The first line on stdout is
 * "listening on http://127.0.0.1:PORT/ (N workers)".
 *
 * Routes: GET|HEAD /  (hello), /slow (sleeps 10-50 ms), /metrics (the
 * exposition; OpenMetrics if the Accept header prefers it). Other paths are
 * 404 and counted as path="other", so that a client cannot make the label
 * set grow without bound; other methods are 405.
 *
 * One request per connection (Connection: close), no request bodies: this
 * is an example of the promshm C API, not a web server to put online.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "promshm.h"

#define MAX_WORKERS 64
#define REQUEST_MAX 8192

/* ---- metrics ------------------------------------------------------------ */

/* Routes and statuses are closed sets: they are the label values. */
enum route { ROUTE_ROOT, ROUTE_SLOW, ROUTE_METRICS, ROUTE_OTHER, N_ROUTES };
static const char *const ROUTE_LABEL[N_ROUTES] = {"/", "/slow", "/metrics", "other"};

enum status { ST_200, ST_400, ST_404, ST_405, ST_500, N_STATUSES };
static const int STATUS_CODE[N_STATUSES] = {200, 400, 404, 405, 500};
static const char *const STATUS_LABEL[N_STATUSES] = {"200", "400", "404", "405", "500"};
static const char *const STATUS_REASON[N_STATUSES] = {
    "OK", "Bad Request", "Not Found", "Method Not Allowed", "Internal Server Error"};

/* Registered in the parent before fork(); the workers inherit the handles. */
static const promshm_area *g_area;
static const promshm_family *g_requests; /* counter {path, status} */
static const promshm_family *g_latency;  /* histogram {path} */
static const promshm_family *g_inflight; /* gauge, livesum */
static const promshm_family *g_handled;  /* gauge, one series per worker */

/* A worker's series handles, resolved on first use and kept (resolving
 * validates and may lock; updating a handle costs nanoseconds). */
static const promshm_series *w_requests[N_ROUTES][N_STATUSES];
static const promshm_series *w_latency[N_ROUTES];
static const promshm_series *w_inflight, *w_handled;

static int g_quiet;

static void log_promshm(const char *what, promshm_result rc) {
    char detail[512];
    promshm_last_error(detail, sizeof detail, NULL);
    fprintf(stderr, "server[%d]: %s: %s (%s)\n", (int)getpid(), what,
            promshm_result_message((uint32_t)rc), detail);
}

/* The series for (family, labels), or NULL if it cannot be had (the area is
 * full, say): the request is served anyway, only not counted. */
static const promshm_series *resolve(const promshm_family *family, const char *const *values,
                                     size_t n) {
    const promshm_series *s = NULL;
    promshm_result rc = promshm_family_labels(family, values, n, &s);
    if (rc != PROMSHM_RESULT_OK) {
        log_promshm("resolving a series", rc);
        return NULL;
    }
    return s;
}

static promshm_result register_families(void) {
    const promshm_registry *reg = NULL;
    promshm_result rc = promshm_area_registry(g_area, &reg);
    if (rc != PROMSHM_RESULT_OK) return rc;

    const char *req_labels[2] = {"path", "status"};
    promshm_metric_opts o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.name = "http_requests";
    o.help = "HTTP requests served, by path and status.";
    o.label_names = req_labels;
    o.n_label_names = 2;
    rc = promshm_registry_counter(reg, &o, &g_requests);

    if (rc == PROMSHM_RESULT_OK) {
        const char *lat_labels[1] = {"path"};
        memset(&o, 0, sizeof o);
        o.size = sizeof o;
        o.name = "http_request_duration";
        o.unit = "seconds";
        o.help = "Time from accept() to the response being ready.";
        o.label_names = lat_labels;
        o.n_label_names = 1;
        size_t n_buckets = 0;
        const double *buckets = promshm_default_buckets(&n_buckets);
        rc = promshm_registry_histogram(reg, &o, buckets, n_buckets, &g_latency);
    }
    if (rc == PROMSHM_RESULT_OK) {
        memset(&o, 0, sizeof o);
        o.size = sizeof o;
        o.name = "http_requests_in_flight";
        o.help = "Requests being served, over the live workers.";
        rc = promshm_registry_gauge(reg, &o, PROMSHM_GAUGE_MODE_LIVESUM, &g_inflight);
    }
    if (rc == PROMSHM_RESULT_OK) {
        memset(&o, 0, sizeof o);
        o.size = sizeof o;
        o.name = "http_worker_requests";
        o.help = "Requests served by each live worker process since it started.";
        rc = promshm_registry_gauge(reg, &o, PROMSHM_GAUGE_MODE_ALL, &g_handled);
    }
    promshm_registry_free(reg); /* the families keep what they need */
    return rc;
}

static void free_worker_series(void) {
    for (int r = 0; r < N_ROUTES; r++) {
        for (int s = 0; s < N_STATUSES; s++) promshm_series_free(w_requests[r][s]);
        promshm_series_free(w_latency[r]);
    }
    promshm_series_free(w_inflight);
    promshm_series_free(w_handled);
}

static void free_families(void) {
    promshm_family_free(g_requests);
    promshm_family_free(g_latency);
    promshm_family_free(g_inflight);
    promshm_family_free(g_handled);
    promshm_area_free(g_area);
}

/* ---- HTTP ---------------------------------------------------------------- */

static int send_all(int fd, const char *p, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read the request head (up to the blank line) into buf; its length, -1 for
 * a bad or incomplete head, -2 if the client sent nothing at all (a port
 * probe: not a request). */
static ssize_t read_head(int fd, char *buf, size_t cap) {
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return len == 0 ? -2 : -1; /* closed, timed out or failed */
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n")) return (ssize_t)len;
    }
    return -1; /* head too large */
}

/* The value of header `name` (case-insensitive) in a request head, copied
 * into out (cut to outcap - 1 bytes); 0 if absent. */
static int header_value(const char *head, const char *name, char *out, size_t outcap) {
    size_t nlen = strlen(name);
    const char *line = strchr(head, '\n');
    while (line && line[1] != '\0') {
        line++;
        if (*line == '\r' || *line == '\n') break; /* the blank line: end of head */
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t') v++;
            size_t n = strcspn(v, "\r\n");
            if (n >= outcap) n = outcap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        line = strchr(line, '\n');
    }
    return 0;
}

/* A growing buffer, filled by the streaming render callback. */
typedef struct {
    char *data;
    size_t len, cap;
} text_buf;

static int append_chunk(void *userdata, const uint8_t *data, size_t len) {
    text_buf *b = (text_buf *)userdata;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->len + len) cap *= 2;
        char *p = (char *)realloc(b->data, cap);
        if (!p) return 1; /* stops the render: WRITE_FAILED */
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Serve one connection: parse, answer, count. */
static void serve(int fd, int worker, const struct timespec *started) {
    char head[REQUEST_MAX];
    char method[16] = "", target[1024] = "", accept[512] = "";
    enum route route = ROUTE_OTHER;
    enum status status = ST_400;
    int head_only = 0;
    char small[256];
    const char *content_type = "text/plain; charset=utf-8";
    const char *body = "bad request\n";
    text_buf metrics = {NULL, 0, 0};

    ssize_t head_len = read_head(fd, head, sizeof head);
    if (head_len == -2) return; /* nothing to answer, nothing to count */
    if (w_inflight) promshm_gauge_inc(w_inflight);

    char minor[2];
    if (head_len >= 0 &&
        sscanf(head, "%15[A-Z] %1023[^ \r\n] HTTP/1.%1[01]", method, target, minor) == 3) {
        target[strcspn(target, "?#")] = '\0'; /* the path only */
        head_only = strcmp(method, "HEAD") == 0;
        int readonly_method = head_only || strcmp(method, "GET") == 0;
        if (strcmp(target, "/") == 0)
            route = ROUTE_ROOT;
        else if (strcmp(target, "/slow") == 0)
            route = ROUTE_SLOW;
        else if (strcmp(target, "/metrics") == 0)
            route = ROUTE_METRICS;

        if (route == ROUTE_OTHER) {
            status = ST_404;
            body = "not found\n";
        } else if (!readonly_method) {
            status = ST_405;
            body = "method not allowed\n";
        } else if (route == ROUTE_METRICS) {
            /* Content negotiation: OpenMetrics if the scraper prefers it. */
            promshm_format format = header_value(head, "Accept", accept, sizeof accept)
                                        ? promshm_format_from_accept(accept)
                                        : PROMSHM_FORMAT_PROMETHEUS;
            promshm_result rc =
                promshm_area_render_callback(g_area, format, append_chunk, &metrics);
            if (rc == PROMSHM_RESULT_OK) {
                status = ST_200;
                content_type = promshm_format_content_type(format);
                body = NULL; /* the metrics buffer */
            } else {
                log_promshm("rendering", rc);
                status = ST_500;
                body = "render failed\n";
            }
        } else {
            if (route == ROUTE_SLOW) {
                struct timespec nap = {0, (10 + rand() % 41) * 1000000L};
                nanosleep(&nap, NULL);
            }
            snprintf(small, sizeof small, "hello from worker %d (pid %d)\n", worker,
                     (int)getpid());
            status = ST_200;
            body = small;
        }
    }

    /* Count the request and push this worker's buffers into the area before
     * the response goes out: a client that has its response sees it counted
     * in the next /metrics, whichever worker answers that. */
    if (!w_requests[route][status]) {
        const char *values[2] = {ROUTE_LABEL[route], STATUS_LABEL[status]};
        w_requests[route][status] = resolve(g_requests, values, 2);
    }
    if (!w_latency[route]) w_latency[route] = resolve(g_latency, &ROUTE_LABEL[route], 1);
    if (w_requests[route][status]) promshm_counter_inc(w_requests[route][status]);
    if (w_latency[route]) promshm_histogram_observe(w_latency[route], seconds_since(started));
    if (w_handled) promshm_gauge_inc(w_handled);
    if (w_inflight) promshm_gauge_dec(w_inflight);
    promshm_flush();

    size_t body_len = body ? strlen(body) : metrics.len;
    char header[512];
    int n = snprintf(header, sizeof header,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     STATUS_CODE[status], STATUS_REASON[status], content_type, body_len);
    if (send_all(fd, header, (size_t)n) == 0 && !head_only && body_len > 0)
        send_all(fd, body ? body : metrics.data, body_len);
    free(metrics.data);
}

/* ---- workers ------------------------------------------------------------- */

static volatile sig_atomic_t w_stop;

static void on_stop(int sig) {
    (void)sig;
    w_stop = 1;
}

/* A worker: accept and serve until SIGTERM/SIGINT. Those signals stay
 * blocked except while waiting in pselect(), so a request in progress is
 * always finished. */
static int worker_main(int worker, int listen_fd, const sigset_t *wait_mask) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    srand((unsigned)getpid());

    uint32_t slot = 0;
    promshm_result rc = promshm_area_attach(g_area, &slot); /* fail early */
    if (rc != PROMSHM_RESULT_OK) {
        log_promshm("attaching to a worker slot", rc);
        return 1;
    }
    if (!g_quiet) fprintf(stderr, "worker %d: pid %d, slot %u\n", worker, (int)getpid(), slot);
    w_inflight = resolve(g_inflight, NULL, 0);
    w_handled = resolve(g_handled, NULL, 0);

    while (!w_stop) {
        fd_set readable;
        FD_ZERO(&readable);
        FD_SET(listen_fd, &readable);
        if (pselect(listen_fd + 1, &readable, NULL, NULL, NULL, wait_mask) < 0) {
            if (errno == EINTR) continue; /* a stop signal: w_stop is set */
            perror("server: pselect");
            break;
        }
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            /* Another worker took it (EAGAIN), or the client left. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                perror("server: accept");
                struct timespec nap = {0, 100000000L};
                nanosleep(&nap, NULL);
            }
            continue;
        }
        struct timespec started;
        clock_gettime(CLOCK_MONOTONIC, &started);
        struct timeval timeout = {5, 0}; /* a slow client cannot hold a worker */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        serve(fd, worker, &started);
        close(fd);
    }
    promshm_flush(); /* nothing is pending (every request flushed), but cheap */
    free_worker_series();
    free_families();
    return 0;
}

/* ---- parent -------------------------------------------------------------- */

static void on_sigchld(int sig) { (void)sig; }

static long env_or(const char *name, long dflt) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s [-p PORT] [-w WORKERS] [-f AREA_FILE] [-q]\n", argv0);
}

int main(int argc, char **argv) {
    long port = env_or("PORT", 8080);
    long workers = env_or("WORKERS", 4);
    const char *area_file = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "p:w:f:qh")) != -1) {
        switch (opt) {
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'w': workers = strtol(optarg, NULL, 10); break;
        case 'f': area_file = optarg; break;
        case 'q': g_quiet = 1; break;
        default: usage(argv[0]); return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc || port < 0 || port > 65535 || workers < 1 || workers > MAX_WORKERS) {
        usage(argv[0]);
        return 2;
    }

    /* The listening socket, shared by every worker. Non-blocking: all
     * workers wake up for a connection, one gets it, the others see EAGAIN. */
    int listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0) {
        perror("server: socket");
        return 1;
    }
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t addr_len = sizeof addr;
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(listen_fd, 128) < 0 ||
        getsockname(listen_fd, (struct sockaddr *)&addr, &addr_len) < 0) {
        perror("server: bind/listen on 127.0.0.1");
        return 1;
    }
    fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
    fcntl(listen_fd, F_SETFD, FD_CLOEXEC);

    /* The shared area and the families, before fork(). */
    promshm_area_options options;
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    options.pages = 1024; /* 4 MiB: plenty for this closed label set */
    options.max_workers = 2 * MAX_WORKERS; /* room for restarted workers */
    promshm_result rc = area_file ? promshm_area_create(area_file, &options, &g_area)
                                  : promshm_area_anonymous(&options, &g_area);
    if (rc == PROMSHM_RESULT_OK) rc = register_families();
    if (rc != PROMSHM_RESULT_OK) {
        log_promshm("setting up the metrics", rc);
        return 1;
    }

    /* Stop signals and SIGCHLD are taken synchronously with sigwait(); the
     * workers inherit the mask and unblock them only inside pselect(). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld; /* SIGCHLD is ignored by default: catch it */
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t signals, wait_mask;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGCHLD);
    sigprocmask(SIG_BLOCK, &signals, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);

    printf("listening on http://127.0.0.1:%d/ (%ld workers)\n", ntohs(addr.sin_port), workers);
    fflush(stdout);
    fflush(stderr);

    pid_t pids[MAX_WORKERS] = {0};
    time_t started[MAX_WORKERS] = {0};
    int failures = 0;
    for (int w = 0; w < workers; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            /* exit(), not _exit(): promshm's atexit flush (nothing is left
             * to flush here) and the leak checkers run. */
            exit(worker_main(w, listen_fd, &wait_mask));
        }
        if (pids[w] < 0) {
            perror("server: fork");
            pids[w] = 0;
            failures++;
        }
        started[w] = time(NULL);
    }

    /* Supervise: restart a worker that dies, until a stop signal. */
    int sig = 0;
    while (!failures) {
        if (sigwait(&signals, &sig) != 0 || sig != SIGCHLD) break;
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int w = 0; w < workers; w++) {
                if (pids[w] != pid) continue;
                fprintf(stderr, "server: worker %d (pid %d) died (status %d); restarting it\n", w,
                        (int)pid, status);
                if (time(NULL) - started[w] < 1) sleep(1); /* no crash loop */
                fflush(NULL);
                pids[w] = fork();
                if (pids[w] == 0) exit(worker_main(w, listen_fd, &wait_mask));
                if (pids[w] < 0) {
                    perror("server: fork");
                    pids[w] = 0;
                    failures++;
                }
                started[w] = time(NULL);
            }
        }
    }

    /* Stop: SIGTERM to every worker, then wait for them; SIGKILL the ones
     * still there after 10 s, or at a second stop signal. */
    if (!g_quiet) fprintf(stderr, "server: stopping %ld workers\n", workers);
    int live = 0;
    for (int w = 0; w < workers; w++)
        if (pids[w] > 0 && kill(pids[w], SIGTERM) == 0) live++;
    struct timespec patience = {10, 0};
    int killed = 0;
    while (live > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, killed ? 0 : WNOHANG);
        if (pid > 0) {
            for (int w = 0; w < workers; w++) {
                if (pids[w] != pid) continue;
                pids[w] = 0;
                live--;
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                    fprintf(stderr, "server: worker %d ended with status %d\n", w, status);
                    failures++;
                }
            }
            continue;
        }
        if (pid < 0 && errno != EINTR) break; /* no children left */
        if (pid < 0 || killed) continue;
        int got = sigtimedwait(&signals, NULL, &patience); /* SIGCHLD, or not */
        if (got == SIGTERM || got == SIGINT || (got < 0 && errno == EAGAIN)) {
            fprintf(stderr, "server: killing the workers that did not stop\n");
            for (int w = 0; w < workers; w++)
                if (pids[w] > 0) kill(pids[w], SIGKILL);
            killed = 1;
        }
    }
    close(listen_fd);
    free_families();
    if (!g_quiet) fprintf(stderr, "server: stopped\n");
    return failures ? 1 : 0;
}
