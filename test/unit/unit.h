/*
 * unit: the smallest test harness that does the job. Each test file defines
 * TEST(name) functions and a main that RUN()s them and returns unit_done().
 * A failed CHECK records file:line and the expression, and the test goes on.
 * The last line printed is "unit <file>: N passed, N failed", which test/run.sh adds up.
 */
#ifndef ATENDE_UNIT_H
#define ATENDE_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_current_failed;
static const char *unit_current;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                                     \
	do {                                                                                \
		if (!(cond)) {                                                                  \
			unit_current_failed++;                                                      \
			printf("  FAIL %s: %s:%d: %s\n", unit_current, __FILE__, __LINE__, #cond); \
		}                                                                               \
	} while (0)

#define CHECK_STR(a, b)                                                                           \
	do {                                                                                          \
		const char *unit_a_ = (a), *unit_b_ = (b);                                                \
		if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0) {                              \
			unit_current_failed++;                                                                \
			printf("  FAIL %s: %s:%d: \"%s\" != \"%s\"\n", unit_current, __FILE__, __LINE__,     \
			       unit_a_ ? unit_a_ : "(null)", unit_b_ ? unit_b_ : "(null)");                   \
		}                                                                                         \
	} while (0)

#define RUN(name)                                                   \
	do {                                                            \
		unit_current = #name;                                       \
		unit_current_failed = 0;                                    \
		name();                                                     \
		if (unit_current_failed) {                                  \
			unit_failed++;                                          \
			printf("not ok %s\n", #name);                           \
		} else {                                                    \
			unit_passed++;                                          \
			printf("ok %s\n", #name);                               \
		}                                                           \
	} while (0)

static inline int unit_done(void)
{
	printf("unit %s: %d passed, %d failed\n", __BASE_FILE__, unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
