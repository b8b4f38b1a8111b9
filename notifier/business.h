/*
 * business: the contact centre's own numbers as Prometheus gauges, per company, over the last
 * hour: time to first response and to resolution (p50, p95), unanswered conversations and the
 * oldest one's wait, automation rate (resolved by the bot alone), transfer rate, survey scores
 * and the delivery failure rate. They are read from what is stored (atende_business,
 * schema/012_business.sql) every metrics.business_interval_s on the API's connections, so
 * every notifier exports the same figures (alerts take max() over instances).
 */
#ifndef ATENDE_BUSINESS_H
#define ATENDE_BUSINESS_H

#define BUSINESS_WINDOW "1 hour" /* the window every gauge covers */

/* Starts the timer (a first reading at once; none while metrics.business_interval_s is 0). */
void business_start(void);
void business_stop(void);

#endif
