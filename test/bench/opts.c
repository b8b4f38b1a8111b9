/*
 * opts: parses and checks the options of `atende bench`; a fan-out run is defined by its message
 * count, so its window and warm-up are derived here rather than by each reader.
 */
#include "opts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool opts_parse(int argc, char **argv, opts_t *o, char *err, size_t errlen)
{
	double connections = 64, agents = 100, company = 1, idle = 0, fanout = 0, messages = 2000, customers = 5000;
	struct {
		const char *name;
		double *target;
		double min, max;
		bool integer;
	} opts[] = {
		{"--rate", &o->rate, 0.1, 1e6, false},
		{"--seconds", &o->seconds, 0.1, 86400, false},
		{"--warmup", &o->warmup, 0, 3600, false},
		{"--drain", &o->drain, 0, 3600, false},
		{"--connections", &connections, 1, 4096, true},
		{"--agents", &agents, 0, 100000, true},
		{"--company", &company, 1, 1e15, true},
		{"--idle", &idle, 1, 1000000, true},
		{"--hold", &o->hold, 0, 86400, false},
		{"--fanout", &fanout, 1, 1000000, true},
		{"--messages", &messages, 1, (double)OPTS_MAX_TOTAL, true},
		{"--customers", &customers, 1, 1e7, true},
	};
	*o = (opts_t){.rate = 500, .seconds = 20, .warmup = 2, .drain = 10, .hold = 10};
	for (int i = 1; i < argc; i++) {
		size_t k;
		if (strcmp(argv[i], "-c") == 0) {
			i++;
			continue;
		}
		if (strcmp(argv[i], "--messy") == 0) {
			o->messy = true;
			continue;
		}
		if (strcmp(argv[i], "--ids") == 0 || strcmp(argv[i], "--events") == 0) {
			if (i + 1 >= argc || !argv[i + 1][0]) {
				snprintf(err, errlen, "%s needs a file name", argv[i]);
				return false;
			}
			*(strcmp(argv[i], "--ids") == 0 ? &o->ids_path : &o->events_path) = argv[i + 1];
			i++;
			continue;
		}
		for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (strcmp(argv[i], opts[k].name) == 0)
				break;
		if (k == sizeof(opts) / sizeof(opts[0])) {
			snprintf(err, errlen, "unknown option \"%s\" (atende bench --help)", argv[i]);
			return false;
		}
		char *end = NULL;
		double v = i + 1 < argc ? strtod(argv[i + 1], &end) : NAN;
		if (!end || end == argv[i + 1] || *end || !(v >= opts[k].min && v <= opts[k].max) ||
		    (opts[k].integer && v != floor(v))) {
			snprintf(err, errlen, "%s needs a%s number in [%g, %g]", opts[k].name, opts[k].integer ? "n integer" : "",
				 opts[k].min, opts[k].max);
			return false;
		}
		*opts[k].target = v;
		i++;
	}
	o->connections = (int)connections;
	o->agents = (int)agents;
	o->company = (long)company;
	o->idle = (int)idle;
	o->fanout = (int)fanout;
	o->messages = (long)messages;
	o->customers = (int)customers;
	if (o->idle && o->fanout) {
		snprintf(err, errlen, "--idle and --fanout are separate runs");
		return false;
	}
	if (o->fanout) { /* exactly M messages from the first one, and only the subscribers' sockets */
		o->warmup = 0;
		o->seconds = (double)o->messages / o->rate;
		o->agents = 0;
	}
	if ((o->warmup + o->seconds) * o->rate > (double)OPTS_MAX_TOTAL) {
		snprintf(err, errlen, "(warmup + seconds) * rate is over %llu messages", OPTS_MAX_TOTAL);
		return false;
	}
	return true;
}

long opts_fds_wanted(const opts_t *o)
{
	return (o->idle ? o->idle : (long)o->connections + o->agents + o->fanout + 1) + OPTS_SPARE_FDS;
}
