/*
 * Unit tests for runtime/base/log: the text and JSON forms of a record, the
 * endpoint and replica fields, escaping (a JSON record is one line whatever
 * the message holds), the level threshold. stderr is captured through a
 * pipe put in its place with dup2.
 */
#define LOG_TAG "testmod"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

/* ------------------------------------------------------------ capture */

static int saved_stderr = -1;
static int pipe_r = -1;

static void capture_start(void)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	/* Records are written whole: a full pipe would block the test. */
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	saved_stderr = dup(STDERR_FILENO);
	cr_assert_geq(saved_stderr, 0);
	cr_assert_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	close(p[1]);
	pipe_r = p[0];
}

/* Restore stderr; what was written meanwhile (caller frees). */
static char *capture_end(void)
{
	cr_assert_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	size_t len = 0, cap = 4096;
	char *out = malloc(cap);
	for (;;) {
		if (len + 1024 > cap)
			out = realloc(out, cap *= 2);
		ssize_t n = read(pipe_r, out + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pipe_r);
	out[len] = '\0';
	return out;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* The one JSON record in text (which must be exactly one line). */
static json_t *one_record(const char *text)
{
	cr_assert_eq(count_lines(text), 1, "want one line: [%s]", text);
	cr_assert_eq(text[strlen(text) - 1], '\n', "the record does not end the line: [%s]", text);
	json_error_t err;
	json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	cr_assert_not_null(o, "not JSON (%s at %d): [%s]", err.text, err.position, text);
	cr_assert(json_is_object(o), "[%s]", text);
	return o;
}

static const char *field(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* --------------------------------------------------------------- text */

Test(log, text_lines_name_the_endpoint_and_replica_as_today)
{
	floe_log_init(FLOE_LOG_INFO, false);
	capture_start();
	log_info("plain %d", 1);
	log_ep_info("chat", "resumed");
	log_replica_info("chat", "chat-3", "stopped (%s)", "exit status 0");
	log_replica_warn("chat", NULL, "request failed: %s", "reset");
	char *out = capture_end();

	cr_assert_eq(count_lines(out), 4, "%s", out);
	char *lines[4];
	char *save = NULL;
	lines[0] = strtok_r(out, "\n", &save);
	for (int i = 1; i < 4; i++)
		lines[i] = strtok_r(NULL, "\n", &save);
	/* "2026-11-28T11:02:03.123Z info  testmod    message" */
	for (int i = 0; i < 4; i++) {
		cr_assert(lines[i] && strlen(lines[i]) > 25 && lines[i][23] == 'Z',
			  "no timestamp: %s", lines[i]);
		cr_expect(strstr(lines[i], " testmod "), "no module tag: %s", lines[i]);
	}
	cr_expect(strstr(lines[0], " info  testmod    plain 1"), "%s", lines[0]);
	cr_expect(strstr(lines[1], " testmod    chat: resumed"), "%s", lines[1]);
	cr_expect(strstr(lines[2], " chat: replica chat-3 stopped (exit status 0)"), "%s",
		  lines[2]);
	size_t n2 = strlen(lines[2]);
	cr_expect(strcmp(lines[2] + n2 - strlen("stopped (exit status 0)"),
			 "stopped (exit status 0)") == 0,
		  "%s", lines[2]);
	cr_expect(strstr(lines[3], " warn  testmod    chat: request failed: reset"), "%s",
		  lines[3]);
	free(out);
}

/* --------------------------------------------------------------- json */

Test(log, json_records_carry_endpoint_and_replica_as_fields)
{
	floe_log_init(FLOE_LOG_INFO, true);
	capture_start();
	log_replica_info("chat", "chat-3", "starting (pid %d): %s", 1234, "/usr/bin/floe-sim");
	char *out = capture_end();
	json_t *o = one_record(out);
	cr_expect_str_eq(field(o, "level"), "info");
	cr_expect_str_eq(field(o, "module"), "testmod");
	cr_expect_str_eq(field(o, "endpoint"), "chat");
	cr_expect_str_eq(field(o, "replica"), "chat-3");
	cr_expect_str_eq(field(o, "msg"), "starting (pid 1234): /usr/bin/floe-sim",
			 "the message repeats the names: %s", out);
	const char *ts = field(o, "ts");
	cr_assert_not_null(ts);
	cr_expect_eq(strlen(ts), 24, "ts %s", ts);
	cr_expect_eq(ts[strlen(ts) - 1], 'Z', "ts %s", ts);
	cr_expect_eq(json_object_size(o), 6, "%s", out);
	json_decref(o);
	free(out);
}

Test(log, json_records_without_endpoint_or_replica_have_no_such_field)
{
	floe_log_init(FLOE_LOG_DEBUG, true);
	capture_start();
	log_warn("shutdown grace elapsed");
	char *a = capture_end();
	capture_start();
	log_ep_error("chat", "%s", "start of replica chat-4 failed");
	char *b = capture_end();
	capture_start();
	log_replica_debug(NULL, "chat-5", "only a replica");
	char *c = capture_end();

	json_t *o = one_record(a);
	cr_expect_null(json_object_get(o, "endpoint"), "%s", a);
	cr_expect_null(json_object_get(o, "replica"), "%s", a);
	cr_expect_str_eq(field(o, "level"), "warn");
	cr_expect_str_eq(field(o, "msg"), "shutdown grace elapsed");
	json_decref(o);

	o = one_record(b);
	cr_expect_str_eq(field(o, "endpoint"), "chat");
	cr_expect_null(json_object_get(o, "replica"), "%s", b);
	cr_expect_str_eq(field(o, "level"), "error");
	cr_expect_str_eq(field(o, "msg"), "start of replica chat-4 failed");
	json_decref(o);

	o = one_record(c);
	cr_expect_null(json_object_get(o, "endpoint"), "%s", c);
	cr_expect_str_eq(field(o, "replica"), "chat-5");
	cr_expect_str_eq(field(o, "level"), "debug");
	json_decref(o);
	free(a);
	free(b);
	free(c);
}

Test(log, json_escapes_quotes_newlines_and_control_characters)
{
	floe_log_init(FLOE_LOG_INFO, true);
	capture_start();
	log_replica_error("we\"ird", "r\n1", "said \"no\"\nthen\r\ttab \\ bell\a del\x7f end");
	char *out = capture_end();
	json_t *o = one_record(out);
	cr_expect_str_eq(field(o, "endpoint"), "we\"ird");
	cr_expect_str_eq(field(o, "replica"), "r\n1");
	cr_expect_str_eq(field(o, "msg"), "said \"no\"\nthen\r\ttab \\ bell\a del\x7f end", "%s",
			 out);
	cr_expect_null(strchr(out, '\r'), "a raw CR in the record: %s", out);
	cr_expect_null(strchr(out, '\a'), "a raw control character in the record: %s", out);
	json_decref(o);
	free(out);
}

Test(log, json_keeps_utf8_and_replaces_bytes_that_are_not)
{
	floe_log_init(FLOE_LOG_INFO, true);
	capture_start();
	/* é, a lone continuation byte, an overlong '/', a surrogate, a cut é. */
	log_ep_info("chat", "caf\xc3\xa9 \x80 \xc0\xaf \xed\xa0\x80 \xc3");
	char *out = capture_end();
	json_t *o = one_record(out);
	cr_expect_str_eq(field(o, "msg"),
			 "caf\xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
			 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd",
			 "%s", out);
	json_decref(o);
	free(out);
}

Test(log, a_long_message_that_grows_when_escaped_is_one_whole_record)
{
	/* 2000 quotes: 4000 bytes once escaped, more than the text form's line. */
	char msg[2001];
	memset(msg, '"', 2000);
	msg[2000] = '\0';
	floe_log_init(FLOE_LOG_INFO, true);
	capture_start();
	log_replica_info("chat", "chat-1", "%s", msg);
	char *out = capture_end();
	json_t *o = one_record(out);
	cr_expect_str_eq(field(o, "msg"), msg);
	cr_expect_str_eq(field(o, "replica"), "chat-1");
	json_decref(o);
	free(out);
}

Test(log, perror_appends_strerror_in_both_forms)
{
	floe_log_init(FLOE_LOG_INFO, true);
	capture_start();
	errno = ENOENT;
	log_perror("open %s", "/x");
	cr_expect_eq(errno, ENOENT, "logging changed errno");
	char *out = capture_end();
	json_t *o = one_record(out);
	cr_expect_str_eq(field(o, "msg"), "open /x: No such file or directory");
	json_decref(o);
	free(out);
}

/* -------------------------------------------------------------- level */

static int evaluated;
static int side_effect(void)
{
	return ++evaluated;
}

Test(log, records_above_the_level_are_neither_formatted_nor_written)
{
	floe_log_init(FLOE_LOG_WARN, false);
	evaluated = 0;
	capture_start();
	log_ep_info("chat", "%d", side_effect());
	log_replica_debug("chat", "chat-1", "%d", side_effect());
	log_info("%d", side_effect());
	log_replica_warn("chat", "chat-1", "kept");
	char *out = capture_end();
	cr_expect_eq(evaluated, 0, "arguments of dropped records were evaluated");
	cr_expect_eq(count_lines(out), 1, "%s", out);
	cr_expect(strstr(out, "chat: replica chat-1 kept\n"), "%s", out);
	free(out);
}

Test(log, level_names_parse)
{
	enum floe_log_level l;
	cr_expect_eq(floe_log_level_parse("debug", &l), 0);
	cr_expect_eq(l, FLOE_LOG_DEBUG);
	cr_expect_eq(floe_log_level_parse("warn", &l), 0);
	cr_expect_eq(l, FLOE_LOG_WARN);
	cr_expect_eq(floe_log_level_parse("verbose", &l), -EINVAL);
}
