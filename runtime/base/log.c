#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

int floe_log_level = FLOE_LOG_INFO;
static bool log_json;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void floe_log_init(enum floe_log_level level, bool json)
{
	floe_log_level = level;
	log_json = json;
}

int floe_log_level_parse(const char *name, enum floe_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum floe_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void floe__log(enum floe_log_level level, const char *tag, int errnum, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (errnum != 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(errnum));

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + w, sizeof(when) - w, ".%03ldZ", ts.tv_nsec / 1000000);

	/* One write(2) per record so lines from several threads never interleave. */
	char line[2400];
	int len;
	if (log_json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "ts", when, "level",
				      level_names[level], "module", tag, "msg", msg);
		char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
		len = snprintf(line, sizeof(line), "%s\n", text ? text : msg);
		free(text);
		json_decref(o);
	} else {
		len = snprintf(line, sizeof(line), "%s %-5s %-10s %s\n", when, level_names[level],
			       tag, msg);
	}
	if (len > (int)sizeof(line))
		len = (int)sizeof(line);
	if (len > 0) {
		ssize_t r = write(STDERR_FILENO, line, (size_t)len);
		(void)r;
	}
}
