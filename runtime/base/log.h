/*
 * floe logging: one sink (stderr), text or JSON lines, a per-file module tag.
 *
 * Each .c file defines LOG_TAG before including this header:
 *     #define LOG_TAG "proxy"
 *     #include "log.h"
 * The macros test the level before any formatting happens.
 *
 * A record about an endpoint or one of its replicas names them as fields,
 * not inside the message:
 *     log_ep_info(ep->cfg->name, "resumed");
 *     log_replica_info(ep->cfg->name, r->id, "stopped (%s)", how);
 * Text lines read as sentences ("chat: resumed", "chat: replica chat-3
 * stopped (exit 0)"); JSON lines carry "endpoint" and "replica" keys and a
 * "msg" without them:
 *     {"ts":"...","level":"info","module":"replica","endpoint":"chat",
 *      "replica":"chat-3","msg":"stopped (exit 0)"}
 * Every record is one line in JSON: quotes, newlines and control characters
 * in the message are escaped, invalid UTF-8 becomes U+FFFD.
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

/**
 * Write one record about an endpoint and a replica of it; either may be
 * NULL (then the line has no such part or field). Text: "ENDPOINT: replica
 * REPLICA MSG"; JSON: "endpoint" and "replica" fields next to "msg". errnum
 * as floe__log. Use the log_ep_* and log_replica_* macros.
 */
void floe__log_ctx(enum floe_log_level level, const char *tag, const char *endpoint,
		   const char *replica, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

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

#define floe__log_ctx_at(lvl, ep, replica, ...)                                         \
	do {                                                                            \
		if ((lvl) <= floe_log_level)                                            \
			floe__log_ctx((lvl), LOG_TAG, (ep), (replica), 0, __VA_ARGS__); \
	} while (0)

/** A record about endpoint ep (its name): "ep: message" in text. */
#define log_ep_error(ep, ...) floe__log_ctx_at(FLOE_LOG_ERROR, (ep), NULL, __VA_ARGS__)
#define log_ep_warn(ep, ...) floe__log_ctx_at(FLOE_LOG_WARN, (ep), NULL, __VA_ARGS__)
#define log_ep_info(ep, ...) floe__log_ctx_at(FLOE_LOG_INFO, (ep), NULL, __VA_ARGS__)
#define log_ep_debug(ep, ...) floe__log_ctx_at(FLOE_LOG_DEBUG, (ep), NULL, __VA_ARGS__)

/** A record about replica id of endpoint ep: "ep: replica id message" in text. */
#define log_replica_error(ep, id, ...) floe__log_ctx_at(FLOE_LOG_ERROR, (ep), (id), __VA_ARGS__)
#define log_replica_warn(ep, id, ...) floe__log_ctx_at(FLOE_LOG_WARN, (ep), (id), __VA_ARGS__)
#define log_replica_info(ep, id, ...) floe__log_ctx_at(FLOE_LOG_INFO, (ep), (id), __VA_ARGS__)
#define log_replica_debug(ep, id, ...) floe__log_ctx_at(FLOE_LOG_DEBUG, (ep), (id), __VA_ARGS__)

#endif
