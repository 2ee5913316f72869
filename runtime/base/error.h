/*
 * Errors that carry a status and a message, wrapped with context by each
 * layer ("load of /etc/floe.yaml failed: /etc/floe.yaml:12: unknown key 'prot'").
 */
#ifndef FLOE_ERROR_H
#define FLOE_ERROR_H

#define FLOE_ERROR_MSG_MAX 1024

typedef struct floe_error {
	int code;                     /* negative errno, or -1 when none fits */
	char msg[FLOE_ERROR_MSG_MAX]; /* human-readable, never empty when code != 0 */
} floe_error;

/** Clear an error (code 0, empty message). */
void floe_error_clear(floe_error *err);

/**
 * Set err (may be NULL) to code and a formatted message.
 * Returns code, so callers can write `return floe_error_set(err, -EINVAL, ...)`.
 */
int floe_error_set(floe_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/**
 * Prefix err's message with a formatted context and ": ". Keeps err->code.
 * Returns err->code (err may be NULL: returns -1).
 */
int floe_error_wrap(floe_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
