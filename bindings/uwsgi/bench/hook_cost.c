/*
 * hook_cost.c: the promshm calls the uWSGI plugin's after-request hook makes,
 * timed outside uWSGI (bindings/uwsgi/bench/run.sh builds and runs it):
 * a counter inc on a cached series, two histogram observations, a flush.
 * Linked with libpromshm.a like the plugin.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "promshm.h"

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
	const promshm_area *area;
	const promshm_registry *reg;
	const promshm_family *req, *dur, *size;
	const promshm_series *s_req, *s_dur, *s_size;
	const char *labels[] = {"method", "status"};
	const char *values[] = {"GET", "200"};
	const double sb[] = {100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
	size_t nb;
	const double *db = promshm_default_buckets(&nb);
	promshm_metric_opts o;
	long i, n = 2000000;
	double t0, t;

	if (promshm_area_anonymous(NULL, &area) || promshm_registry_new(area, "uwsgi", NULL, 0, &reg))
		return 1;
	memset(&o, 0, sizeof o);
	o.size = sizeof o;
	o.name = "requests";
	o.help = "Requests.";
	o.label_names = labels;
	o.n_label_names = 2;
	if (promshm_registry_counter(reg, &o, &req) || promshm_family_labels(req, values, 2, &s_req))
		return 1;
	memset(&o, 0, sizeof o);
	o.size = sizeof o;
	o.name = "request_duration";
	o.help = "Duration.";
	o.unit = "seconds";
	if (promshm_registry_histogram(reg, &o, db, nb, &dur) || promshm_family_labels(dur, NULL, 0, &s_dur))
		return 1;
	o.name = "response_size";
	o.unit = "bytes";
	if (promshm_registry_histogram(reg, &o, sb, 7, &size) || promshm_family_labels(size, NULL, 0, &s_size))
		return 1;

	for (int round = 0; round < 2; round++) {
		t0 = now();
		for (i = 0; i < n; i++) {
			promshm_counter_inc(s_req);
			promshm_histogram_observe(s_dur, 0.000123 * (i & 1023));
			promshm_histogram_observe(s_size, (double) (i & 4095));
			promshm_flush();
		}
		t = now() - t0;
		if (round == 1)
			printf("hook body (inc + 2 observe + flush): %.0f ns per request\n", t / n * 1e9);
	}
	t0 = now();
	for (i = 0; i < n; i++)
		promshm_flush();
	t = now() - t0;
	printf("flush with nothing to do (the app's copy, idle): %.0f ns\n", t / n * 1e9);
	return 0;
}
