/*
 * Unit tests of log: a text-format line carries input's control bytes escaped, so a
 * customer's newline cannot forge a log line of its own; JSON lines escape as JSON does.
 */
#include "log.h"
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

/* Runs log_write with stderr on a pipe; returns what was written (caller frees). */
static char *captured(log_format_t format, const char *text)
{
	int fds[2], saved = dup(STDERR_FILENO);
	static char buf[16384];
	if (pipe(fds) != 0)
		return NULL;
	dup2(fds[1], STDERR_FILENO);
	log_set_format(format);
	log_write(LOG_LVL_WARN, "message from %s", text);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	buf[n > 0 ? n : 0] = '\0';
	return strdup(buf);
}

TEST(text_lines_escape_control_bytes)
{
	char *line = captured(LOG_FMT_TEXT, "5511999\nts=2026-01-01 level=error forged\r\x01\x7f\tend");
	CHECK(line != NULL);
	CHECK(line && strchr(line, '\n') == line + strlen(line) - 1); /* one line: only the final newline */
	CHECK(line && strstr(line, "5511999\\nts=2026-01-01 level=error forged\\r\\x01\\x7f\\tend\n") != NULL);
	free(line);
	line = captured(LOG_FMT_TEXT, "olá, tudo bem? ação");
	CHECK(line && strstr(line, "message from olá, tudo bem? ação\n") != NULL); /* UTF-8 stays as is */
	free(line);
}

TEST(json_lines_escape_as_json)
{
	char *line = captured(LOG_FMT_JSON, "a\nb\"c");
	CHECK(line && strstr(line, "\"msg\":\"message from a\\nb\\\"c\"}\n") != NULL);
	free(line);
	log_set_format(LOG_FMT_TEXT);
}

int main(void)
{
	RUN(text_lines_escape_control_bytes);
	RUN(json_lines_escape_as_json);
	return unit_done();
}
