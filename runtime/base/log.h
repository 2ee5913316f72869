/*
 * floe logging: one sink (stderr), text or JSON lines, a per-file module tag.
 *
 * Each .c file defines LOG_TAG before including this header:
 *     #define LOG_TAG "proxy"
 *     #include "log.h"
 * The macros test the level before any formatting happens.
 */
#ifndef FLOE_LOG_H
#define FLOE_LOG_H

#include <stdbool.h>

enum floe_log_level {
	FLOE_LOG_ERROR = 0,
	FLOE_LOG_WARN = 1,
	FLOE_LOG_INFO = 2,
	FLOE_LOG_DEBUG = 3,
};

/** Current threshold; messages above it are dropped before formatting. */
extern int floe_log_level;

/** Set the threshold and the format (json: one JSON object per line). */
void floe_log_init(enum floe_log_level level, bool json);

/** Parse "error", "warn", "info", "debug". Returns 0 or -EINVAL. */
int floe_log_level_parse(const char *name, enum floe_log_level *out);

/** Write one record. errnum != 0 appends ": strerror(errnum)". Use the macros. */
void floe__log(enum floe_log_level level, const char *tag, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#ifndef LOG_TAG
#define LOG_TAG "floe"
#endif

#define floe__log_at(lvl, errnum, ...)                                    \
	do {                                                              \
		if ((lvl) <= floe_log_level)                              \
			floe__log((lvl), LOG_TAG, (errnum), __VA_ARGS__); \
	} while (0)

#define log_error(...) floe__log_at(FLOE_LOG_ERROR, 0, __VA_ARGS__)
#define log_warn(...) floe__log_at(FLOE_LOG_WARN, 0, __VA_ARGS__)
#define log_info(...) floe__log_at(FLOE_LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...) floe__log_at(FLOE_LOG_DEBUG, 0, __VA_ARGS__)
/** Like log_error, appending strerror(errno). */
#define log_perror(...) floe__log_at(FLOE_LOG_ERROR, errno, __VA_ARGS__)

#endif
