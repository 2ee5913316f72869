#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

void floe_error_clear(floe_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

int floe_error_set(floe_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int floe_error_wrap(floe_error *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	char prefix[FLOE_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	if (n > 0) {
		char old[FLOE_ERROR_MSG_MAX];
		memcpy(old, err->msg, sizeof(old));
		snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	}
	return err->code;
}
