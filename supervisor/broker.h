/*
 * broker: the embedded Kafka broker, run as its own process (`atende embedded-broker`,
 * exec'd by the supervisor). librdkafka's mock cluster, in memory, binds random
 * loopback ports, so this process also forwards kafka.embedded_port to it: ops can
 * always use `kcat -b 127.0.0.1:9092`. SIGUSR1/SIGUSR2 start/end an outage drill (the
 * broker refuses connections but keeps its data).
 */
#ifndef ATENDE_BROKER_H
#define ATENDE_BROKER_H

#include "config.h"

/* Creates the cluster and every topic, writes "BOOTSTRAP <host:port> <patched|stock>[ wakes]\n"
 * (the librdkafka it runs on, deploy/rdkafka-mock.sh) to ready_fd,
 * then serves until SIGTERM/SIGINT. Returns the process exit status. */
int broker_main(const cfg_t *cfg, int ready_fd);

#endif
