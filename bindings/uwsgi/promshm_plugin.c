/*
 * promshm_plugin.c: the promshm uWSGI plugin.
 *
 * A thin shim over the promshm C API (include/promshm.h). The Rust library
 * (target/release/libpromshm.a) is linked in statically with its symbols
 * hidden, so only `promshm_plugin` (the plugin struct uWSGI looks up) and
 * `promshm_uwsgi_after_request` (the after-request hook uWSGI resolves with
 * dlsym) and `promshm_uwsgi_as_mule` (the as-mule hook, resolved the same
 * way) are exported; a libpromshm.so loaded by the application in the same
 * process (the Python package) keeps its own symbols.
 *
 * What it does (bindings/uwsgi/README.md has the details and the reasons):
 *
 *   init (master, before bind, app loading and fork)
 *       create or open the shared area: --promshm-file PATH, or a private
 *       file in a fresh 0700 directory (/dev/shm by default) removed when the
 *       master exits or reloads; export its path as PROMSHM_AREA so that the
 *       application's promshm package, loaded later in the master or in the
 *       workers, uses the same area; register the plugin's families; add the
 *       after-request hook; bind --promshm-listen.
 *   post_fork (every worker, every respawn)
 *       take a worker slot in the area; find the application's libpromshm.
 *   promshm_uwsgi_as_mule (every mule, via --hook-as-mule call:) and
 *   spooler_init (every spooler)
 *       the same, and start a flusher thread in the application's
 *       libpromshm: these processes never end a request.
 *   promshm_uwsgi_after_request (every request, every worker)
 *       count the request by method and status, observe its duration and
 *       response size, flush the plugin's buffers and the application's.
 *   master_cycle (master, once a second)
 *       busy/idle/cheap workers, per-worker requests and respawns, listen
 *       queue; start the --promshm-listen thread.
 *   route action `promshm:`
 *       render the area (text 0.0.4 or OpenMetrics, from the Accept header).
 *   master_cleanup (master, at shutdown and before a reload)
 *       stop the listener; remove the private area file.
 */

#include <uwsgi.h>

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <dlfcn.h>
#include <link.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "promshm.h"

extern struct uwsgi_server uwsgi;

#define PSH "[promshm] "

/* Environment variables shared with the promshm Python package. */
#define ENV_AREA "PROMSHM_AREA"
/* Set (with the path) when the area is this plugin's private one, so that a
 * re-executed master (reload) does not mistake it for an operator's choice. */
#define ENV_PRIVATE "PROMSHM_UWSGI_PRIVATE_AREA"

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

static struct {
	char *file;
	int pages;
	int max_workers;
	char *ns; /* default "uwsgi", set in on_load */
	char *buckets;
	int no_request_metrics;
	int no_worker_metrics;
	int no_app_flush;
	char *listen;
} conf;

/* An option --promshm-NAME: with a value (ARG required_argument, SET
 * uwsgi_opt_set_str or _int) or a flag (no_argument, uwsgi_opt_true), stored
 * into conf.FIELD. */
#define PROMSHM_OPTION(name, arg, set, field, flags, help) {"promshm-" name, arg, 0, help, set, &conf.field, flags}
#define PROMSHM_FLAG(name, field, help) PROMSHM_OPTION(name, no_argument, uwsgi_opt_true, field, 0, help)

static struct uwsgi_option promshm_options[] = {
	PROMSHM_OPTION("file", required_argument, uwsgi_opt_set_str, file, 0,
		       "keep the promshm area in this file (created 0600 if missing); its counts survive reloads"),
	PROMSHM_OPTION("pages", required_argument, uwsgi_opt_set_int, pages, 0,
		       "size of a new promshm area in 4 KiB pages (default 4096 = 16 MiB, allocated as touched)"),
	PROMSHM_OPTION("max-workers", required_argument, uwsgi_opt_set_int, max_workers, 0,
		       "worker slots of a new promshm area (default: max(64, 2 x processes + mules + 16))"),
	PROMSHM_OPTION("namespace", required_argument, uwsgi_opt_set_str, ns, 0,
		       "prefix of the plugin's metric names (default uwsgi; empty for none)"),
	PROMSHM_OPTION("buckets", required_argument, uwsgi_opt_set_str, buckets, 0,
		       "request duration histogram buckets in seconds, comma-separated (default Prometheus' 0.005..10)"),
	PROMSHM_FLAG("no-request-metrics", no_request_metrics, "do not count requests (no after-request metrics)"),
	PROMSHM_FLAG("no-request-hook", no_request_metrics, "same as --promshm-no-request-metrics"),
	PROMSHM_FLAG("no-worker-metrics", no_worker_metrics, "do not export worker metrics from the master"),
	PROMSHM_FLAG("no-app-flush", no_app_flush,
		     "do not flush the application's promshm library (e.g. the Python package) at request end"),
	PROMSHM_OPTION("listen", required_argument, uwsgi_opt_set_str, listen, UWSGI_OPT_MASTER,
		       "serve /metrics from a thread of the master on ADDR ([HOST]:PORT; host defaults to 127.0.0.1)"),
	UWSGI_END_OF_OPTIONS
};

/* ------------------------------------------------------------------------ */
/* State                                                                    */

static struct {
	const promshm_area *area;
	const promshm_registry *reg;
	char path[PATH_MAX];
	char private_dir[PATH_MAX - 64]; /* non-empty: we own the file and this directory */
	pid_t master_pid;
	int cleaned;

	/* request metrics */
	const promshm_family *requests;   /* counter {method, status} */
	const promshm_series *duration;   /* histogram */
	const promshm_series *size;       /* histogram */

	/* worker metrics (master only) */
	const promshm_series *workers_busy, *workers_idle, *workers_cheap;
	const promshm_series **worker_requests; /* [1..numproc] */
	const promshm_series **worker_respawns; /* [1..numproc] */
	uint64_t *last_requests, *last_respawns;
	const promshm_family *listen_queue;     /* gauge {socket} */
	time_t last_cycle;
} g;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static void log_promshm_error(const char *what, promshm_result rc) {
	char detail[512];
	detail[0] = 0;
	promshm_last_error(detail, sizeof detail, NULL);
	uwsgi_log(PSH "%s: %s%s%s\n", what, promshm_result_message(rc), detail[0] ? ": " : "", detail);
}

static void remove_private_area(void);

/* A configuration error while starting: remove the private area made so far
 * (uWSGI runs no cleanup hook this early), and stop. */
static void die(void) {
	remove_private_area();
	exit(1);
}

static void fatal_promshm_error(const char *what, promshm_result rc) {
	log_promshm_error(what, rc);
	die();
}

/* ------------------------------------------------------------------------ */
/* The area: --promshm-file, an operator's PROMSHM_AREA, or a private file  */

static const char *runtime_base(void) {
	const char *cands[] = {getenv("PROMSHM_DIR"), "/dev/shm", getenv("TMPDIR"), "/tmp"};
	size_t i;
	for (i = 0; i < sizeof cands / sizeof cands[0]; i++) {
		struct stat st;
		const char *d = cands[i];
		if (d && *d && stat(d, &st) == 0 && S_ISDIR(st.st_mode) && access(d, W_OK | X_OK) == 0)
			return d;
	}
	return "/tmp";
}

/* Remove private directories left by masters that died without cleaning up
 * (SIGKILL): "promshm-uwsgi-<euid>-<pid>-XXXXXX" whose pid is gone. Only our
 * own directories (owner checked with fstat on the directory opened without
 * following a symlink, root included), and only their "area" file, removed
 * through that descriptor: another user's look-alike is never touched. */
static void sweep_private_dirs(const char *base) {
	char prefix[64];
	int plen = snprintf(prefix, sizeof prefix, "promshm-uwsgi-%u-", (unsigned) geteuid());
	DIR *d = opendir(base);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char dir[PATH_MAX];
		struct stat st;
		char *end;
		long pid;
		int dfd;
		if (strncmp(e->d_name, prefix, plen) != 0)
			continue;
		pid = strtol(e->d_name + plen, &end, 10);
		if (pid <= 0 || *end != '-')
			continue;
		if (kill((pid_t) pid, 0) == 0 || errno != ESRCH)
			continue; /* alive (or not ours to judge) */
		if (snprintf(dir, sizeof dir, "%s/%s", base, e->d_name) >= (int) sizeof dir)
			continue;
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			continue;
		if (fstat(dfd, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
			close(dfd);
			continue;
		}
		unlinkat(dfd, "area", 0);
		close(dfd);
		if (rmdir(dir) == 0)
			uwsgi_log(PSH "removed %s (its master %ld is gone)\n", dir, pid);
	}
	closedir(d);
}

static void make_private_path(void) {
	const char *base = runtime_base();
	sweep_private_dirs(base);
	/* mkdtemp: a fresh 0700 directory with an unpredictable name, so another
	 * user can neither plant the area file nor block its name. */
	if (snprintf(g.private_dir, sizeof g.private_dir, "%s/promshm-uwsgi-%u-%d-XXXXXX", base,
		     (unsigned) geteuid(), (int) getpid()) >= (int) sizeof g.private_dir) {
		uwsgi_log(PSH "runtime directory path too long: %s\n", base);
		g.private_dir[0] = 0;
		die();
	}
	if (!mkdtemp(g.private_dir)) {
		uwsgi_error("promshm: mkdtemp()");
		g.private_dir[0] = 0;
		die();
	}
	snprintf(g.path, sizeof g.path, "%s/area", g.private_dir);
}

/* An absolute path for a user-given one (workers and reloads may chdir). */
static void absolute_path(const char *in, char *out, size_t cap) {
	if (in[0] == '/' || !uwsgi.cwd) {
		snprintf(out, cap, "%s", in);
	} else {
		snprintf(out, cap, "%s/%s", uwsgi.cwd, in);
	}
}

static void remove_private_area(void) {
	if (!g.private_dir[0])
		return;
	unlink(g.path);
	rmdir(g.private_dir);
	g.private_dir[0] = 0;
}

/* ------------------------------------------------------------------------ */
/* Families                                                                 */

static const char *METHODS[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE"};
#define N_METHODS (sizeof METHODS / sizeof METHODS[0] + 1) /* + "other" */
#define N_STATUS 601                                        /* 0..599 and "other" */

/* Series cache of the request counter, per process (filled lazily, shared by
 * the threads of a worker through atomic pointer loads and CAS). */
static const promshm_series *req_cache[N_METHODS][N_STATUS];

static int method_index(const char *m, uint16_t len) {
	size_t i;
	for (i = 0; i < N_METHODS - 1; i++) {
		if (strlen(METHODS[i]) == len && memcmp(METHODS[i], m, len) == 0)
			return (int) i;
	}
	return (int) N_METHODS - 1;
}

static const promshm_series *request_series(struct wsgi_request *wsgi_req) {
	int m = method_index(wsgi_req->method ? wsgi_req->method : "", wsgi_req->method ? wsgi_req->method_len : 0);
	int st = wsgi_req->status;
	int si = (st >= 0 && st < 600) ? st : 600;
	const promshm_series *s = __atomic_load_n(&req_cache[m][si], __ATOMIC_ACQUIRE);
	const promshm_series *expected = NULL;
	char status[16];
	const char *values[2];
	promshm_result rc;
	if (s)
		return s;
	if (si == 600)
		snprintf(status, sizeof status, "other");
	else
		snprintf(status, sizeof status, "%d", si);
	values[0] = m == (int) N_METHODS - 1 ? "other" : METHODS[m];
	values[1] = status;
	rc = promshm_family_labels(g.requests, values, 2, &s);
	if (rc != PROMSHM_RESULT_OK) {
		static int logged;
		if (!logged) {
			logged = 1;
			log_promshm_error("request counter series", rc);
		}
		return NULL;
	}
	if (!__atomic_compare_exchange_n(&req_cache[m][si], &expected, s, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		promshm_series_free(s);
		s = expected;
	}
	return s;
}

static void parse_buckets(const char *spec, double **out, size_t *n) {
	size_t cap = 8, cnt = 0;
	double *b = uwsgi_malloc(cap * sizeof(double));
	const char *p = spec;
	while (*p) {
		char *end;
		double v;
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		v = strtod(p, &end);
		if (end == p) {
			uwsgi_log(PSH "--promshm-buckets: not a number at \"%s\"\n", p);
			die();
		}
		if (cnt == cap) {
			cap *= 2;
			b = realloc(b, cap * sizeof(double));
			if (!b) {
				uwsgi_error("promshm: realloc()");
				die();
			}
		}
		b[cnt++] = v;
		p = end;
		while (*p == ' ')
			p++;
		if (*p && *p != ',') {
			uwsgi_log(PSH "--promshm-buckets: expected a comma at \"%s\"\n", p);
			die();
		}
	}
	*out = b;
	*n = cnt;
}

static const promshm_family *register_family(int type, const char *name, const char *help, const char *unit,
					     const char *const *labels, size_t n_labels, const double *buckets,
					     size_t n_buckets, promshm_gauge_mode mode) {
	promshm_metric_opts o;
	const promshm_family *f = NULL;
	promshm_result rc;
	memset(&o, 0, sizeof o);
	o.size = sizeof o;
	o.name = name;
	o.help = help;
	o.unit = unit;
	o.label_names = labels;
	o.n_label_names = n_labels;
	switch (type) {
	case PROMSHM_METRIC_TYPE_COUNTER:
		rc = promshm_registry_counter(g.reg, &o, &f);
		break;
	case PROMSHM_METRIC_TYPE_GAUGE:
		rc = promshm_registry_gauge(g.reg, &o, mode, &f);
		break;
	default:
		rc = promshm_registry_histogram(g.reg, &o, buckets, n_buckets, &f);
		break;
	}
	if (rc != PROMSHM_RESULT_OK) {
		char what[256];
		snprintf(what, sizeof what, "registering %s", name);
		/* A family kept in a --promshm-file from an earlier configuration
		 * (other buckets) is the likely cause: say so, and do not start
		 * with metrics silently missing. */
		if (rc == PROMSHM_RESULT_SHAPE_MISMATCH)
			uwsgi_log(PSH "the area %s already has %s with another shape (buckets or labels "
				      "changed?): use a new --promshm-file or the previous settings\n",
				  g.path, name);
		fatal_promshm_error(what, rc);
	}
	return f;
}

/* The series of f with no label (value NULL) or with the one label value
 * `value`; a failure stops the start. */
static const promshm_series *series_of(const promshm_family *f, const char *value) {
	const promshm_series *s = NULL;
	promshm_result rc = promshm_family_labels(f, value ? &value : NULL, value ? 1 : 0, &s);
	if (rc != PROMSHM_RESULT_OK)
		fatal_promshm_error("resolving a series", rc);
	return s;
}

static void register_request_metrics(void) {
	static const char *const req_labels[] = {"method", "status"};
	static const double size_buckets[] = {100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
	const promshm_family *f;
	double *buckets = NULL; /* parsed from --promshm-buckets, freed here */
	size_t n_buckets = 0;
	const double *bounds;

	g.requests = register_family(PROMSHM_METRIC_TYPE_COUNTER, "requests",
				     "Requests served by uWSGI workers, by method and status.", NULL, req_labels, 2,
				     NULL, 0, 0);
	if (conf.buckets) {
		parse_buckets(conf.buckets, &buckets, &n_buckets);
		bounds = buckets;
	} else {
		bounds = promshm_default_buckets(&n_buckets);
	}
	f = register_family(PROMSHM_METRIC_TYPE_HISTOGRAM, "request_duration",
			    "Time from the start of a request to its end, seconds.", "seconds", NULL, 0, bounds,
			    n_buckets, 0);
	free(buckets);
	g.duration = series_of(f, NULL);
	promshm_family_free(f);
	f = register_family(PROMSHM_METRIC_TYPE_HISTOGRAM, "response_size", "Response body size, bytes.", "bytes",
			    NULL, 0, size_buckets, sizeof size_buckets / sizeof size_buckets[0], 0);
	g.size = series_of(f, NULL);
	promshm_family_free(f);
}

static void register_worker_metrics(void) {
	static const char *const state[] = {"state"};
	static const char *const worker[] = {"worker"};
	static const char *const sock[] = {"socket"};
	const promshm_family *f, *req, *resp;
	int i, n = uwsgi.numproc;

	/* Written by the master only: LIVESUM makes them vanish with it. */
	f = register_family(PROMSHM_METRIC_TYPE_GAUGE, "workers",
			    "uWSGI workers by state: busy (in a request), idle, cheap (not running).", NULL, state, 1,
			    NULL, 0, PROMSHM_GAUGE_MODE_LIVESUM);
	g.workers_busy = series_of(f, "busy");
	g.workers_idle = series_of(f, "idle");
	g.workers_cheap = series_of(f, "cheap");
	promshm_family_free(f);

	req = register_family(PROMSHM_METRIC_TYPE_COUNTER, "worker_requests",
			      "Requests served, by uWSGI worker id (as counted by uWSGI).", NULL, worker, 1, NULL, 0,
			      0);
	resp = register_family(PROMSHM_METRIC_TYPE_COUNTER, "worker_respawns",
			       "Times a uWSGI worker was spawned again after it exited, by worker id.", NULL, worker,
			       1, NULL, 0, 0);
	g.worker_requests = uwsgi_calloc(sizeof(*g.worker_requests) * (n + 1));
	g.worker_respawns = uwsgi_calloc(sizeof(*g.worker_respawns) * (n + 1));
	g.last_requests = uwsgi_calloc(sizeof(uint64_t) * (n + 1));
	g.last_respawns = uwsgi_calloc(sizeof(uint64_t) * (n + 1));
	for (i = 1; i <= n; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		g.worker_requests[i] = series_of(req, id);
		g.worker_respawns[i] = series_of(resp, id);
	}
	promshm_family_free(req);
	promshm_family_free(resp);

	g.listen_queue = register_family(PROMSHM_METRIC_TYPE_GAUGE, "listen_queue_length",
					 "Connections waiting in the listen queue of a uWSGI socket.", NULL, sock, 1,
					 NULL, 0, PROMSHM_GAUGE_MODE_LIVESUM);
}

/* ------------------------------------------------------------------------ */
/* The application's own copy of the library (e.g. the Python package)      */

/* The application loads libpromshm.so itself (ctypes, RTLD_LOCAL): a second
 * copy of the library, with its own per-thread buffers, that this plugin's
 * flush cannot reach. Its exported promshm_flush() can: find the object by
 * name among the loaded ones and call it at request end, so that the app's
 * counters are in the area when the request's are. */
typedef promshm_result (*flush_fn)(void);
typedef promshm_result (*flusher_start_fn)(uint32_t interval_ms, promshm_flusher **out);
static flush_fn app_flush;
static flusher_start_fn app_flusher_start;
static uint64_t app_flush_next_try_us;
static char app_lib_path[PATH_MAX];

struct find_lib {
	char path[PATH_MAX];
};

static int find_lib_cb(struct dl_phdr_info *info, size_t size, void *data) {
	struct find_lib *fl = data;
	const char *name = info->dlpi_name;
	const char *base;
	if (!name || !*name)
		return 0;
	base = strrchr(name, '/');
	base = base ? base + 1 : name;
	if (strncmp(base, "libpromshm", 10) != 0 || !strstr(base, ".so"))
		return 0;
	snprintf(fl->path, sizeof fl->path, "%s", name);
	return 1;
}

static void find_app_flush(void) {
	struct find_lib fl;
	void *h;
	void *f;
	if (conf.no_app_flush || app_flush)
		return;
	fl.path[0] = 0;
	dl_iterate_phdr(find_lib_cb, &fl);
	if (!fl.path[0])
		return;
	/* RTLD_NOLOAD: only a handle on what is already loaded (kept for life). */
	h = dlopen(fl.path, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return;
	f = dlsym(h, "promshm_flush");
	if (!f) {
		dlclose(h);
		return;
	}
	snprintf(app_lib_path, sizeof app_lib_path, "%s", fl.path);
	app_flusher_start = (flusher_start_fn) dlsym(h, "promshm_flusher_start");
	__atomic_store_n(&app_flush, (flush_fn) f, __ATOMIC_RELEASE);
	/* Once per uWSGI start: by worker 1's first spawn, not at each of its
	 * respawns (respawn_count is 1 at the first spawn). */
	if (uwsgi.mywid == 1 && uwsgi.workers && uwsgi.workers[1].respawn_count <= 1)
		uwsgi_log(PSH "flushing the application's %s at request end\n", fl.path);
}

/* The flush interval of the application's package (PROMSHM_FLUSH_INTERVAL,
 * seconds, default 1; 0 turns flushers off), in ms; 0: none. */
static uint32_t app_flush_interval_ms(void) {
	const char *env = getenv("PROMSHM_FLUSH_INTERVAL");
	char *end = NULL;
	double secs;
	if (!env || !*env)
		return 1000;
	secs = strtod(env, &end);
	if (end == env || *end || !(secs >= 0) || secs > 86400.0) {
		uwsgi_log(PSH "PROMSHM_FLUSH_INTERVAL=%s is not a number of seconds; using 1\n", env);
		return 1000;
	}
	if (secs == 0)
		return 0;
	return secs * 1000 < 1 ? 1 : (uint32_t) (secs * 1000);
}

/* A mule or a spooler never ends a request, so nothing would flush the
 * updates it buffers in the application's library (the package's flusher
 * thread stayed in the master: a thread does not survive fork(), and uWSGI
 * forks without Python's fork hooks unless --py-call-osafterfork). Start a
 * flusher thread of that library in this process; it runs until the process
 * ends. If the library is not loaded yet (--lazy-apps: the mule imports the
 * app itself), the package starts its own flusher when it registers its
 * metrics in this process. */
static void start_app_flusher(const char *what) {
	promshm_flusher *fl = NULL;
	uint32_t ms;
	promshm_result rc;
	if (conf.no_app_flush)
		return;
	find_app_flush();
	if (!app_flusher_start)
		return;
	ms = app_flush_interval_ms();
	if (!ms)
		return;
	rc = app_flusher_start(ms, &fl);
	if (rc != PROMSHM_RESULT_OK) {
		uwsgi_log(PSH "%s: starting the application's flusher failed (%d)\n", what, (int) rc);
		return;
	}
	/* fl is never stopped: the thread flushes until this process exits. */
	uwsgi_log(PSH "%s: flushing the application's %s every %u ms\n", what, app_lib_path, ms);
}

static void flush_app(uint64_t now_us) {
	flush_fn f;
	if (conf.no_app_flush)
		return;
	f = __atomic_load_n(&app_flush, __ATOMIC_ACQUIRE);
	if (!f) {
		/* Not loaded yet (an app that imports it lazily): look again at
		 * most once a second. */
		if (now_us < __atomic_load_n(&app_flush_next_try_us, __ATOMIC_RELAXED))
			return;
		__atomic_store_n(&app_flush_next_try_us, now_us + 1000000, __ATOMIC_RELAXED);
		find_app_flush();
		f = __atomic_load_n(&app_flush, __ATOMIC_ACQUIRE);
		if (!f)
			return;
	}
	f();
}

/* ------------------------------------------------------------------------ */
/* The after-request hook                                                   */

void promshm_uwsgi_after_request(struct wsgi_request *wsgi_req);

void promshm_uwsgi_after_request(struct wsgi_request *wsgi_req) {
	if (!g.area)
		return;
	if (!conf.no_request_metrics) {
		const promshm_series *s = request_series(wsgi_req);
		uint64_t t0 = wsgi_req->start_of_request, t1 = wsgi_req->end_of_request;
		if (s)
			promshm_counter_inc(s);
		if (t1 >= t0 && t0)
			promshm_histogram_observe(g.duration, (double) (t1 - t0) / 1e6);
		promshm_histogram_observe(g.size, (double) wsgi_req->response_size);
		promshm_flush();
	}
	flush_app(wsgi_req->end_of_request ? wsgi_req->end_of_request : uwsgi_micros());
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                */

/* Render the whole area into *buf (grown as needed). 0 on success. */
static int render(promshm_format fmt, char **buf, size_t *cap, size_t *len) {
	int i;
	for (i = 0; i < 8; i++) {
		size_t n = 0;
		promshm_result rc = promshm_area_render(g.area, fmt, *buf, *cap, &n);
		if (rc == PROMSHM_RESULT_OK) {
			*len = n;
			return 0;
		}
		if (rc != PROMSHM_RESULT_BUFFER_TOO_SMALL) {
			log_promshm_error("render", rc);
			return -1;
		}
		n = n + n / 4 + 4096;
		{
			char *nb = realloc(*buf, n);
			if (!nb)
				return -1;
			*buf = nb;
			*cap = n;
		}
	}
	return -1;
}

/* The format to answer with for an Accept header of `len` bytes at `accept`
 * (not NUL-terminated; NULL or empty: none), protobuf included: every render
 * here goes out by its length. The first 1023 bytes are read. */
static promshm_format format_for(const char *accept, size_t len) {
	char tmp[1024];
	if (!accept || !len)
		return PROMSHM_FORMAT_PROMETHEUS;
	if (len > sizeof tmp - 1)
		len = sizeof tmp - 1;
	memcpy(tmp, accept, len);
	tmp[len] = 0;
	return promshm_format_from_accept_any(tmp);
}

/* A plain-text answer of the route action that ends the request. */
static int route_text(struct wsgi_request *wsgi_req, const char *status, const char *body) {
	uwsgi_response_prepare_headers(wsgi_req, (char *) status, (uint16_t) strlen(status));
	uwsgi_response_add_content_type(wsgi_req, "text/plain", 10);
	uwsgi_response_write_body_do(wsgi_req, (char *) body, strlen(body));
	return UWSGI_ROUTE_BREAK;
}

/* `promshm:` (negotiated from Accept), `promshm:prometheus`,
 * `promshm:openmetrics` or `promshm:protobuf`. */
static int route_promshm(struct wsgi_request *wsgi_req, struct uwsgi_route *ur) {
	static __thread char *buf;
	static __thread size_t cap;
	size_t len = 0;
	promshm_format fmt;
	const char *ct;
	int head = wsgi_req->method_len == 4 && memcmp(wsgi_req->method, "HEAD", 4) == 0;

	if (!g.area)
		return route_text(wsgi_req, "503 Service Unavailable", "promshm: no area\n");
	if (ur->custom) {
		fmt = (promshm_format) (ur->custom - 1);
	} else {
		uint16_t alen = 0;
		char *accept = uwsgi_get_var(wsgi_req, "HTTP_ACCEPT", 11, &alen);
		fmt = format_for(accept, alen);
	}
	flush_app(uwsgi_micros());
	if (render(fmt, &buf, &cap, &len) != 0)
		return route_text(wsgi_req, "500 Internal Server Error", "promshm: render failed\n");
	ct = promshm_format_content_type(fmt);
	if (uwsgi_response_prepare_headers(wsgi_req, "200 OK", 6))
		return UWSGI_ROUTE_BREAK;
	if (uwsgi_response_add_content_type(wsgi_req, (char *) ct, (uint16_t) strlen(ct)))
		return UWSGI_ROUTE_BREAK;
	if (uwsgi_response_add_content_length(wsgi_req, len))
		return UWSGI_ROUTE_BREAK;
	if (head)
		uwsgi_response_write_headers_do(wsgi_req);
	else
		uwsgi_response_write_body_do(wsgi_req, buf, len);
	return UWSGI_ROUTE_BREAK;
}

static int router_promshm(struct uwsgi_route *ur, char *args) {
	ur->func = route_promshm;
	ur->data = args;
	ur->data_len = args ? strlen(args) : 0;
	ur->custom = 0;
	if (args && *args) {
		if (!strcmp(args, "prometheus") || !strcmp(args, "text"))
			ur->custom = 1 + PROMSHM_FORMAT_PROMETHEUS;
		else if (!strcmp(args, "openmetrics"))
			ur->custom = 1 + PROMSHM_FORMAT_OPENMETRICS;
		else if (!strcmp(args, "protobuf"))
			ur->custom = 1 + PROMSHM_FORMAT_PROTOBUF;
		else {
			uwsgi_log(PSH "route action promshm:%s: expected nothing, prometheus, openmetrics or protobuf\n", args);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The master's listener (--promshm-listen)                                 */

static struct {
	int fd;
	int wake[2];
	ino_t fd_ino, wake_ino[2]; /* to close only what is still ours */
	pthread_t tid;
	int started;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char shown[320];  /* the address, for logs */
	time_t next_try;
	int failures;
} L = {-1, {-1, -1}, 0, {0, 0}, 0, 0, {0}, 0, {0}, 0, 0};

static ino_t fd_ino(int fd) {
	struct stat st;
	return fd >= 0 && fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* Close fd only if it is still the file it was (uWSGI closes and reuses
 * descriptors it does not know, e.g. at a reload). */
static void close_if_ours(int *fd, ino_t ino) {
	if (*fd >= 0 && ino && fd_ino(*fd) == ino)
		close(*fd);
	*fd = -1;
}

/* The listener multiplexes its clients with poll(): one slow client never
 * delays another. Each connection has a deadline for its whole request head
 * (from the accept) and one for its whole response (from when it is ready),
 * not per read or write. */
#define LISTEN_CONNS 16        /* clients served at once */
#define LISTEN_HEAD_MS 5000    /* the request head must arrive within this */
#define LISTEN_SEND_MS 10000   /* the client must take the response within this */
#define LISTEN_HEAD_MAX 8192   /* bytes of request head, NUL included */

/* One client of the listener (fd -1: a free slot). */
struct listen_conn {
	int fd;
	int sending;      /* 0: reading the request head; 1: sending the response */
	int64_t accepted; /* monotonic ms */
	int64_t deadline; /* monotonic ms: the head, then the response */
	size_t got;       /* bytes of req */
	char req[LISTEN_HEAD_MAX];
	char hdr[512];
	size_t hdr_len;
	const char *body; /* static text, or buf */
	size_t body_len;  /* 0 for HEAD */
	size_t sent;      /* bytes of hdr + body sent */
	char *buf;        /* owned render buffer */
	size_t cap;
};

static struct listen_conn conns[LISTEN_CONNS];
/* After a failed accept (e.g. EMFILE), the listening socket is left alone
 * until then (monotonic ms) instead of spinning on it. */
static int64_t accept_paused_until;
/* One render buffer kept between scrapes (the others are freed). */
static char *spare_buf;
static size_t spare_cap;

static int64_t now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct listen_conn *c) {
	close(c->fd);
	c->fd = -1;
	if (c->buf) {
		if (!spare_buf) {
			spare_buf = c->buf;
			spare_cap = c->cap;
		} else {
			free(c->buf);
		}
		c->buf = NULL;
		c->cap = 0;
	}
}

/* Send what the socket takes now; close the connection once all is sent or
 * on an error. */
static void conn_send(struct listen_conn *c) {
	while (c->sent < c->hdr_len + c->body_len) {
		struct iovec iov[2];
		struct msghdr msg;
		int n = 0;
		ssize_t w;
		if (c->sent < c->hdr_len) {
			iov[n].iov_base = c->hdr + c->sent;
			iov[n++].iov_len = c->hdr_len - c->sent;
		}
		if (c->body_len) {
			size_t off = c->sent > c->hdr_len ? c->sent - c->hdr_len : 0;
			iov[n].iov_base = (char *) c->body + off;
			iov[n++].iov_len = c->body_len - off;
		}
		memset(&msg, 0, sizeof msg);
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t) n;
		w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;  /* poll() says when to go on */
			break;
		}
		c->sent += (size_t) w;
	}
	conn_close(c);
}

/* Start sending a response (`body` must live until it is sent). */
static void conn_reply(struct listen_conn *c, const char *status, const char *ct, const char *body, size_t len,
		       int head) {
	int n = snprintf(c->hdr, sizeof c->hdr,
			 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
			 ct, len);
	c->hdr_len = n > 0 && (size_t) n < sizeof c->hdr ? (size_t) n : 0;
	c->body = body;
	c->body_len = head ? 0 : len;
	c->sent = 0;
	c->sending = 1;
	c->deadline = now_ms() + LISTEN_SEND_MS;
	conn_send(c);
}

/* The value of header `name` (case-insensitive) in a request head, and its
 * length in *len; NULL if there is none. */
static const char *header_value(const char *head, const char *name, size_t *len) {
	size_t nlen = strlen(name);
	const char *line = strchr(head, '\n');
	while (line) {
		line++;
		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			const char *end;
			while (*v == ' ' || *v == '\t')
				v++;
			end = v;
			while (*end && *end != '\r' && *end != '\n')
				end++;
			*len = (size_t) (end - v);
			return v;
		}
		line = strchr(line, '\n');
	}
	return NULL;
}

/* The request head is complete: answer it. */
static void conn_respond(struct listen_conn *c) {
	char method[16], target[2048];
	int head;
	if (sscanf(c->req, "%15s %2047s", method, target) != 2) {
		conn_reply(c, "400 Bad Request", "text/plain", "bad request\n", 12, 0);
		return;
	}
	head = !strcmp(method, "HEAD");
	if (strcmp(method, "GET") && !head) {
		conn_reply(c, "405 Method Not Allowed", "text/plain", "GET or HEAD\n", 12, 0);
		return;
	}
	{
		char *q = strchr(target, '?');
		if (q)
			*q = 0;
	}
	if (!strcmp(target, "/metrics")) {
		size_t len = 0, alen = 0;
		const char *accept = header_value(c->req, "Accept", &alen);
		promshm_format fmt = format_for(accept, alen);
		c->buf = spare_buf;
		c->cap = spare_cap;
		spare_buf = NULL;
		spare_cap = 0;
		if (render(fmt, &c->buf, &c->cap, &len) != 0) {
			conn_reply(c, "500 Internal Server Error", "text/plain", "render failed\n", 14, head);
			return;
		}
		conn_reply(c, "200 OK", promshm_format_content_type(fmt), c->buf, len, head);
	} else if (!strcmp(target, "/")) {
		static const char idx[] = "promshm uWSGI plugin: metrics at /metrics\n";
		conn_reply(c, "200 OK", "text/plain; charset=utf-8", idx, sizeof idx - 1, head);
	} else {
		conn_reply(c, "404 Not Found", "text/plain", "not found\n", 10, head);
	}
}

/* Read what has arrived of the request head; answer once it is complete. */
static void conn_read(struct listen_conn *c) {
	size_t before = c->got;
	ssize_t r = recv(c->fd, c->req + c->got, sizeof c->req - 1 - c->got, MSG_DONTWAIT);
	if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (r <= 0) {
		conn_close(c);
		return;
	}
	c->got += (size_t) r;
	c->req[c->got] = 0;
	{
		/* Search only the new bytes (and the 3 before them). */
		size_t from = before > 3 ? before - 3 : 0;
		const char *p = c->req + from;
		size_t n = c->got - from;
		if (memmem(p, n, "\r\n\r\n", 4) || memmem(p, n, "\n\n", 2)) {
			conn_respond(c);
			return;
		}
	}
	if (c->got == sizeof c->req - 1)
		conn_reply(c, "431 Request Header Fields Too Large", "text/plain", "", 0, 0);
}

/* The deadline passed: a client still sending its head gets a 408 (if its
 * socket takes it now), any other is just closed. */
static void conn_expire(struct listen_conn *c) {
	static const char timeout[] =
		"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	if (!c->sending && send(c->fd, timeout, sizeof timeout - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* nothing more to do for it */
	}
	conn_close(c);
}

/* A slot for a new client: a free one, or (all taken) the one of the client
 * that has waited longest for its own request head, which is cut off. NULL
 * if every client is being answered. */
static struct listen_conn *conn_slot(void) {
	struct listen_conn *oldest = NULL;
	int i;
	for (i = 0; i < LISTEN_CONNS; i++) {
		struct listen_conn *c = &conns[i];
		if (c->fd < 0)
			return c;
		if (!c->sending && (!oldest || c->accepted < oldest->accepted))
			oldest = c;
	}
	if (oldest)
		conn_expire(oldest);
	return oldest;
}

static int conn_can_accept(void) {
	int i;
	for (i = 0; i < LISTEN_CONNS; i++)
		if (conns[i].fd < 0 || !conns[i].sending)
			return 1;
	return 0;
}

static void accept_clients(void) {
	for (;;) {
		struct listen_conn *c;
		int fd;
		if (!conn_can_accept())
			return;
		fd = accept4(L.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				accept_paused_until = now_ms() + 100;
			return;
		}
		c = conn_slot();
		c->fd = fd;
		c->sending = 0;
		c->accepted = now_ms();
		c->deadline = c->accepted + LISTEN_HEAD_MS;
		c->got = 0;
		c->req[0] = 0;
	}
}

static void *listener_main(void *arg) {
	int i;
	(void) arg;
	for (i = 0; i < LISTEN_CONNS; i++)
		conns[i].fd = -1;
	for (;;) {
		struct pollfd p[2 + LISTEN_CONNS];
		struct listen_conn *polled[LISTEN_CONNS];
		int n = 0, np = 0, timeout = -1;
		int64_t now = now_ms();
		for (i = 0; i < LISTEN_CONNS; i++) {
			struct listen_conn *c = &conns[i];
			if (c->fd < 0)
				continue;
			if (c->deadline <= now) {
				conn_expire(c);
				continue;
			}
			if (timeout < 0 || c->deadline - now < timeout)
				timeout = (int) (c->deadline - now);
		}
		if (now < accept_paused_until && (timeout < 0 || accept_paused_until - now < timeout))
			timeout = (int) (accept_paused_until - now);
		p[n].fd = L.wake[0];
		p[n++].events = POLLIN;
		p[n].fd = conn_can_accept() && now >= accept_paused_until ? L.fd : -1; /* negative: ignored */
		p[n++].events = POLLIN;
		for (i = 0; i < LISTEN_CONNS; i++) {
			struct listen_conn *c = &conns[i];
			if (c->fd < 0)
				continue;
			p[n].fd = c->fd;
			p[n++].events = c->sending ? POLLOUT : POLLIN;
			polled[np++] = c;
		}
		if (poll(p, (nfds_t) n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		for (i = 0; i < np; i++) {
			struct listen_conn *c = polled[i];
			short ev = p[2 + i].revents;
			if (!ev || c->fd < 0)
				continue;
			if (ev & POLLNVAL)
				conn_close(c);
			else if (c->sending)
				conn_send(c);  /* on POLLERR/POLLHUP it fails and closes */
			else
				conn_read(c);  /* on POLLERR/POLLHUP it reads 0 or fails and closes */
		}
		if (p[1].revents & POLLIN)
			accept_clients();
	}
	for (i = 0; i < LISTEN_CONNS; i++)
		if (conns[i].fd >= 0)
			conn_close(&conns[i]);
	free(spare_buf);
	spare_buf = NULL;
	spare_cap = 0;
	return NULL;
}

/* --promshm-listen [HOST]:PORT, checked in init (a bad address stops the
 * start); the socket is bound later, in the master loop, because uWSGI closes
 * the descriptors it does not know while it sets up after a reload. */
static void listener_parse(void) {
	char host[256], port[32];
	const char *colon = strrchr(conf.listen, ':');
	struct addrinfo hints, *res = NULL;
	int rc;
	if (colon) {
		size_t hl = (size_t) (colon - conf.listen);
		const char *h = conf.listen;
		if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
			h++;
			hl -= 2;
		}
		if (hl >= sizeof host)
			hl = sizeof host - 1;
		memcpy(host, h, hl);
		host[hl] = 0;
		snprintf(port, sizeof port, "%s", colon + 1);
	} else {
		host[0] = 0;
		snprintf(port, sizeof port, "%s", conf.listen);
	}
	/* Safe default: loopback unless a host is given. */
	if (!host[0])
		snprintf(host, sizeof host, "127.0.0.1");
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || !res) {
		uwsgi_log(PSH "--promshm-listen %s: %s\n", conf.listen, rc ? gai_strerror(rc) : "no address");
		die();
	}
	memcpy(&L.addr, res->ai_addr, res->ai_addrlen);
	L.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(L.shown, sizeof L.shown, "%s%s%s:%s", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
		 port);
}

static int listener_bind(void) {
	int one = 1;
	int fd = socket(L.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *) &L.addr, L.addrlen) != 0 || listen(fd, 64) != 0 ||
	    pipe2(L.wake, O_CLOEXEC) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	L.fd = fd;
	L.fd_ino = fd_ino(fd);
	L.wake_ino[0] = fd_ino(L.wake[0]);
	L.wake_ino[1] = fd_ino(L.wake[1]);
	return 0;
}

/* Close the listener's socket and wake-up pipe, as far as they are still ours. */
static void listener_close(void) {
	close_if_ours(&L.fd, L.fd_ino);
	close_if_ours(&L.wake[0], L.wake_ino[0]);
	close_if_ours(&L.wake[1], L.wake_ino[1]);
}

/* In the master loop: bind (retrying every 5 s if the port is taken) and
 * start the thread. */
static void listener_start(void) {
	sigset_t all, old;
	time_t now;
	if (!conf.listen || L.started)
		return;
	now = uwsgi_now();
	if (now < L.next_try)
		return;
	if (listener_bind() != 0) {
		if (L.failures++ == 0 || L.failures % 12 == 0)
			uwsgi_log(PSH "--promshm-listen %s: cannot listen: %s (retrying every 5 s)\n", L.shown,
				  strerror(errno));
		L.next_try = now + 5;
		return;
	}
	/* The master's signals (reload, stop) must reach its main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&L.tid, NULL, listener_main, NULL) == 0) {
		L.started = 1;
		uwsgi_log(PSH "master listener on http://%s/metrics\n", L.shown);
	} else {
		uwsgi_log(PSH "cannot start the listener thread\n");
		listener_close();
		L.next_try = now + 5;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void listener_stop(void) {
	if (L.started) {
		char c = 1;
		/* If the wake-up cannot be sent the thread stays in poll(): leave
		 * it (the process is exiting or exec'ing) rather than hang. */
		if (fd_ino(L.wake[1]) == L.wake_ino[1] && write(L.wake[1], &c, 1) == 1)
			pthread_join(L.tid, NULL);
		L.started = 0;
	}
	listener_close();
}

/* ------------------------------------------------------------------------ */
/* Worker metrics (master)                                                  */

/* Counters only go up: add to `s` what uWSGI counted (`now`) since the last
 * time (`*last`); a smaller value means uWSGI's counter restarted. */
static void add_since_last(const promshm_series *s, uint64_t now, uint64_t *last) {
	if (now == *last)
		return;
	promshm_counter_add(s, (double) (now > *last ? now - *last : now));
	*last = now;
}

static void update_worker_metrics(void) {
	int i, busy = 0, idle = 0, cheap = 0;
	struct uwsgi_socket *us;
	for (i = 1; i <= uwsgi.numproc; i++) {
		struct uwsgi_worker *w = &uwsgi.workers[i];
		uint64_t req = w->requests;
		uint64_t respawns = w->respawn_count > 0 ? w->respawn_count - 1 : 0;
		if (w->pid <= 0 || w->cheaped)
			cheap++;
		else if (uwsgi_worker_is_busy(i))
			busy++;
		else
			idle++;
		add_since_last(g.worker_requests[i], req, &g.last_requests[i]);
		add_since_last(g.worker_respawns[i], respawns, &g.last_respawns[i]);
	}
	promshm_gauge_set(g.workers_busy, busy);
	promshm_gauge_set(g.workers_idle, idle);
	promshm_gauge_set(g.workers_cheap, cheap);
	for (us = uwsgi.sockets; us; us = us->next) {
		const promshm_series *s = NULL;
		const char *name = us->name ? us->name : "";
		if (promshm_family_labels(g.listen_queue, &name, 1, &s) == PROMSHM_RESULT_OK) {
			promshm_gauge_set(s, (double) us->queue);
			promshm_series_free(s);
		}
	}
	promshm_flush();
}

/* ------------------------------------------------------------------------ */
/* Hooks                                                                    */

static void promshm_on_load(void) {
	conf.ns = "uwsgi";
	uwsgi_register_router("promshm", router_promshm);
}

/* Where the area is (into g.path): --promshm-file, an operator's
 * PROMSHM_AREA, or a private file; returns which, for the log. */
static const char *choose_area_path(void) {
	const char *env = getenv(ENV_AREA);
	const char *mine = getenv(ENV_PRIVATE);

	if (conf.file) {
		absolute_path(conf.file, g.path, sizeof g.path);
		return "file";
	}
	if (env && *env && !(mine && !strcmp(env, mine))) {
		/* An operator's PROMSHM_AREA: the same as --promshm-file. */
		absolute_path(env, g.path, sizeof g.path);
		return "file from " ENV_AREA;
	}
	make_private_path();
	return "private, removed at exit and reload";
}

/* Create (or open) the area at g.path; returns whether the file is new. */
static int create_area(void) {
	promshm_area_options opts;
	promshm_result rc;
	int created;

	memset(&opts, 0, sizeof opts);
	opts.size = sizeof opts;
	opts.pages = conf.pages > 0 ? (uint32_t) conf.pages : 0;
	if (conf.max_workers > 0) {
		opts.max_workers = (uint32_t) conf.max_workers;
	} else {
		int want = 2 * uwsgi.numproc + uwsgi.mules_cnt + 16;
		opts.max_workers = want > 64 ? (uint32_t) want : 64;
	}
	created = access(g.path, F_OK) != 0;
	rc = promshm_area_create(g.path, &opts, &g.area);
	if (rc != PROMSHM_RESULT_OK) {
		char what[PATH_MAX + 32];
		snprintf(what, sizeof what, "area %s", g.path);
		fatal_promshm_error(what, rc);
	}
	return created;
}

/* Still root here (--master-as-root, --drop-after-init/-apps): the
 * workers, which will run as --uid/--gid, open the file by path (the
 * app's library does), so what we created must be theirs. */
static void give_area_to_workers_user(int created) {
	uid_t u;
	gid_t gr;

	if (geteuid() != 0)
		return;
	u = uwsgi.uid;
	gr = uwsgi.gid;
	if (!u && uwsgi.uidname) {
		struct passwd *pw = getpwnam(uwsgi.uidname);
		if (pw)
			u = pw->pw_uid;
	}
	if (!gr && uwsgi.gidname) {
		struct group *grp = getgrnam(uwsgi.gidname);
		if (grp)
			gr = grp->gr_gid;
	}
	if (!u)
		u = (uid_t) -1;
	if (!gr)
		gr = (gid_t) -1;
	if (u != (uid_t) -1 || gr != (gid_t) -1) {
		if (g.private_dir[0] && chown(g.private_dir, u, gr) != 0)
			uwsgi_error("promshm: chown()");
		if ((created || g.private_dir[0]) && chown(g.path, u, gr) != 0)
			uwsgi_error("promshm: chown()");
	}
}

/* The registry, the plugin's own metrics and its hooks. */
static void register_metrics_and_hooks(void) {
	promshm_result rc = promshm_registry_new(g.area, conf.ns && *conf.ns ? conf.ns : NULL, NULL, 0, &g.reg);
	if (rc != PROMSHM_RESULT_OK)
		fatal_promshm_error("--promshm-namespace", rc);
	if (!conf.no_request_metrics)
		register_request_metrics();
	if (!conf.no_worker_metrics && uwsgi.master_process)
		register_worker_metrics();
	if (!conf.no_request_metrics || !conf.no_app_flush)
		uwsgi_string_new_list(&uwsgi.after_request_hooks, "promshm_uwsgi_after_request");
	/* A writable copy: uwsgi_hooks_run() cuts the string at the ':'. */
	if (uwsgi.mules_cnt > 0)
		uwsgi_string_new_list(&uwsgi.hook_as_mule, uwsgi_str("call:promshm_uwsgi_as_mule"));
}

static int promshm_init(void) {
	const char *kind;

	g.master_pid = getpid();
	kind = choose_area_path();
	give_area_to_workers_user(create_area());
	/* Before app loading and fork: the app's promshm package (in the master
	 * or in any worker, respawned ones included) opens the same file. */
	setenv(ENV_AREA, g.path, 1);
	if (g.private_dir[0])
		setenv(ENV_PRIVATE, g.path, 1);
	else
		unsetenv(ENV_PRIVATE);
	register_metrics_and_hooks();
	if (conf.listen)
		listener_parse();
	uwsgi_log(PSH "area %s (%s), promshm %s%s\n", g.path, kind, promshm_version(),
		  conf.no_request_metrics ? ", request metrics off" : "");
	return 0;
}

/* In every process uWSGI forks from the master (worker, mule, spooler). */
static void child_setup(void) {
	uint32_t slot = 0;
	promshm_result rc;
	/* The master's listener socket is no business of a worker (one
	 * respawned after the listener started inherits it). */
	listener_close();
	L.started = 0;
	g.private_dir[0] = 0; /* only the master removes it */
	rc = promshm_area_attach(g.area, &slot);
	if (rc != PROMSHM_RESULT_OK)
		log_promshm_error("attaching a worker slot", rc);
	find_app_flush();
}

/* In a process forked from the master: whether the plugin has an area here. */
static int in_child(void) {
	return g.area && getpid() != g.master_pid;
}

/* A mule or spooler (`what`): child_setup(), and a flusher of the application's library. */
static void child_setup_flushing(const char *what) {
	child_setup();
	start_app_flusher(what);
}

static void promshm_post_fork(void) {
	if (in_child())
		child_setup();
}

/* The as-mule hook (init adds "call:promshm_uwsgi_as_mule" to
 * uwsgi.hook_as_mule): generic plugins get no post_fork in mules. */
void promshm_uwsgi_as_mule(void);

void promshm_uwsgi_as_mule(void) {
	char what[32];
	if (!in_child())
		return;
	snprintf(what, sizeof what, "mule %d", uwsgi.muleid);
	child_setup_flushing(what);
}

/* Spoolers: uWSGI calls generic plugins' spooler_init (not post_fork). */
static void promshm_spooler_init(void) {
	if (in_child())
		child_setup_flushing("spooler");
}

static void promshm_master_cycle(void) {
	time_t now;
	if (!g.area)
		return;
	listener_start();
	if (conf.no_worker_metrics || !g.worker_requests)
		return;
	now = uwsgi_now();
	if (now == g.last_cycle)
		return;
	g.last_cycle = now;
	update_worker_metrics();
}

static void promshm_master_cleanup(void) {
	if (!g.area || getpid() != g.master_pid || g.cleaned)
		return;
	g.cleaned = 1;
	listener_stop();
	promshm_flush();
	remove_private_area();
}

struct uwsgi_plugin promshm_plugin = {
	.name = "promshm",
	.options = promshm_options,
	.on_load = promshm_on_load,
	.init = promshm_init,
	.post_fork = promshm_post_fork,
	.spooler_init = promshm_spooler_init,
	.master_cycle = promshm_master_cycle,
	.master_cleanup = promshm_master_cleanup,
	/* also at exit without a master (uWSGI runs master_cleanup only with one) */
	.atexit = promshm_master_cleanup,
};
