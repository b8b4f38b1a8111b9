/*
 * survey: reads a satisfaction score out of a customer's message ("9", "nota 9", "dez",
 * "10!", "9 de 10", "⭐⭐⭐⭐"), for the answer to the survey sent after a resolve (worker/jobs.c,
 * schema/011_lifecycle.sql). Pure: no state, no allocation.
 */
#ifndef ATENDE_SURVEY_H
#define ATENDE_SURVEY_H

#include <stdbool.h>

/* True, with *score in 0..10, when text is a score and little else: one number (digits, or
 * a Portuguese number word zero..dez) among a few filler words ("nota", "eu dou", "acho que"),
 * optionally followed by its scale ("de 10", "/5"); or only star emojis (their count, 1..5).
 * Whether the score fits the survey's kind (NPS 0..10, CSAT 1..5) is for the caller. */
bool survey_parse(const char *text, int *score);

#endif
