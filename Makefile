# atende: top-level build. `make all` builds the four programs into bin/;
# `make run`, `make test` and `make bench` install missing Debian packages first
# (DEPS_SCRIPT), then build in a second make, which reads the packages' pkg-config
# data only once they are there.

CC      ?= cc
PKG_CONFIG  ?= pkg-config
DEPS_SCRIPT ?= deploy/deps.sh
PKGS    := libevent libpq rdkafka libcurl libcjson libconfig libcrypto libcrypt
CFLAGS  ?= -O2 -g

# Goals that compile nothing themselves: they read no pkg-config data (the packages may
# not be installed yet). Every other goal, `make` alone included, needs all of PKGS.
SETUP_GOALS := deps deps-test setup setup-test run test bench clean
ifneq ($(filter-out $(SETUP_GOALS),$(or $(MAKECMDGOALS),all)),)
PKGS_MISSING := $(shell for p in $(PKGS); do $(PKG_CONFIG) --exists $$p 2>/dev/null || printf '%s ' $$p; done)
ifneq ($(strip $(PKGS_MISSING)),)
$(error no pkg-config data for $(strip $(PKGS_MISSING)): the Debian -dev packages are missing; \
run `make deps` (or `sh $(DEPS_SCRIPT)` as root), or `make run`/`make test`, which install them first)
endif
PKGS_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKGS_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS))
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon $(PKGS_CFLAGS)
LDLIBS  := $(PKGS_LIBS) -levent_pthreads -lpthread -lm -lz
endif
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

.PHONY: all deps deps-test setup setup-test run test unit integration bench clean
all: $(BINS)

deps:
	@sh $(DEPS_SCRIPT)

deps-test:
	@sh $(DEPS_SCRIPT) test

# What run, test and bench do before their own recipe: install, then build in a second
# make, whose pkg-config calls see what was just installed (this make's were made before).
setup: deps
	@$(MAKE) --no-print-directory all

setup-test: deps-test
	@$(MAKE) --no-print-directory unit

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

run: setup
	bin/atende run -c $(CONFIG)

unit: all $(UNIT_BIN)

test: setup-test
	@/usr/bin/python3 test/run.py

# rules at 500 and 2,000 msg/s, the ingress alone with wrk, the AI path (fake AI after
# 1.5 s) at 500/1,000/2,000 msg/s, the labelled corpus on the seed defaults, and the
# conversation API with a million messages stored (test/bench_api.py), and replies alone through
# 3 gateway instances, one of them failing (test/bench_outbound.py), and voice notes at 100 msg/s
# transcribed by a fake AI after 2 s (test/bench_media.py)
bench: setup-test
	@sh test/bench.sh
	@BENCH_AI_LATENCY_MS=1500 BENCH_RATES="500 1000 2000" BENCH_WRK=0 sh test/bench.sh
	@/usr/bin/python3 test/bench_corpus.py | tee -a build/bench-results.jsonl
	@/usr/bin/python3 test/bench_api.py
	@/usr/bin/python3 test/bench_outbound.py
	@/usr/bin/python3 test/bench_media.py

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
