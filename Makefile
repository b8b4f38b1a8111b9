# atende: top-level build. `make all` builds the four programs into bin/;
# `make run`, `make test` and `make bench` install missing Debian packages first.

CC      ?= cc
PKGS    := libevent libpq rdkafka libcurl libcjson libconfig libcrypto
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -levent_pthreads -lpthread -lm -lz
CONFIG  ?= deploy/atende.conf

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=build/%.o)

# Every program directory holds main.c plus modules; unit tests link the modules.
define program_objs
$(patsubst %.c,build/%.o,$(wildcard $(1)/*.c))
endef
SUP_OBJ := $(call program_objs,supervisor)
ING_OBJ := $(call program_objs,ingress)
WRK_OBJ := $(call program_objs,worker)
NTF_OBJ := $(call program_objs,notifier)
MODULE_OBJ := $(filter-out %/main.o,$(SUP_OBJ) $(ING_OBJ) $(WRK_OBJ) $(NTF_OBJ))
# The load generator (`atende bench` execs it): a program of its own, kept out of MODULE_OBJ
# because no unit test needs its modules.
BENCH_OBJ := $(call program_objs,test/bench)

UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:test/unit/%.c=build/test/%)

BINS := bin/atende bin/atende-ingress bin/atende-worker bin/atende-notifier bin/atende-bench

.PHONY: all deps deps-test run test unit integration bench clean
all: $(BINS)

deps:
	@sh deploy/deps.sh

deps-test:
	@sh deploy/deps.sh test

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

build/libatende.a: $(COMMON_OBJ)
	ar rcs $@ $^

bin/atende: $(SUP_OBJ) build/libatende.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
bin/atende-ingress: $(ING_OBJ) build/libatende.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
bin/atende-worker: $(WRK_OBJ) build/libatende.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
bin/atende-notifier: $(NTF_OBJ) build/libatende.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
bin/atende-bench: $(BENCH_OBJ) build/libatende.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/test/%: test/unit/%.c test/unit/unit.h $(MODULE_OBJ) build/libatende.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itest/unit -Iingress -Iworker -Inotifier -Isupervisor -o $@ $< $(MODULE_OBJ) build/libatende.a $(LDLIBS)

run: deps all
	bin/atende run -c $(CONFIG)

unit: all $(UNIT_BIN)

test: deps-test all $(UNIT_BIN)
	@/usr/bin/python3 test/run.py

# rules at 500 and 2,000 msg/s, the ingress alone with wrk, the AI path (fake AI after
# 1.5 s) at 500/1,000/2,000 msg/s, and the labelled corpus on the seed defaults
bench: deps-test all
	@sh test/bench.sh
	@BENCH_AI_LATENCY_MS=1500 BENCH_RATES="500 1000 2000" BENCH_WRK=0 sh test/bench.sh
	@/usr/bin/python3 test/bench_corpus.py | tee -a build/bench-results.jsonl

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
