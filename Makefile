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
SETUP_GOALS := deps deps-test setup setup-test rdkafka-mock run test bench chaos clean
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

# `make ... SANITIZE=1`: everything built with ASan + UBSan (aborting at the first report), its
# objects under build/san/ so that they never mix with the normal ones in build/. The programs
# (bin/) and the unit tests (build/test/) are relinked whenever the flavour changes: a later plain
# `make` replaces sanitized binaries and vice versa (build/flavour records which one is there).
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ifeq ($(SANITIZE),1)
OBJDIR  := build/san
FLAVOUR := sanitize
CFLAGS  += $(SAN_FLAGS)
else
OBJDIR  := build
FLAVOUR := plain
endif
ifneq ($(filter-out $(SETUP_GOALS) fuzz fuzz-build,$(or $(MAKECMDGOALS),all)),)
$(shell mkdir -p build && [ "$$(cat build/flavour 2>/dev/null)" = $(FLAVOUR) ] || echo $(FLAVOUR) > build/flavour)
endif

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(OBJDIR)/%.o)

# Every program directory holds main.c plus modules; unit tests link the modules.
define program_objs
$(patsubst %.c,$(OBJDIR)/%.o,$(wildcard $(1)/*.c))
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

.PHONY: all deps deps-test setup setup-test rdkafka-mock run test unit integration bench chaos clean fuzz fuzz-build valgrind
all: $(BINS)

deps:
	@sh $(DEPS_SCRIPT)

deps-test:
	@sh $(DEPS_SCRIPT) test

# What run, test and bench do before their own recipe: install, then build in a second
# make, whose pkg-config calls see what was just installed (this make's were made before).
setup: deps
	@$(MAKE) --no-print-directory all
	@sh deploy/rdkafka-mock.sh

setup-test: deps-test
	@$(MAKE) --no-print-directory unit
	@sh deploy/rdkafka-mock.sh

# The embedded broker's patched librdkafka (bin/rdkafka-mock/; deploy/rdkafka-mock.sh): built
# by run, test and bench, not by `make all`, which stays quick and offline. Never fails: without
# it the broker runs on Debian's library and says so.
rdkafka-mock:
	@sh deploy/rdkafka-mock.sh

build/flavour:
	@mkdir -p build && echo $(FLAVOUR) > $@

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

LIB := $(OBJDIR)/libatende.a
$(LIB): $(COMMON_OBJ)
	ar rcs $@ $^

bin/atende: $(SUP_OBJ) $(LIB) build/flavour
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $(SUP_OBJ) $(LIB) $(LDLIBS)
bin/atende-ingress: $(ING_OBJ) $(LIB) build/flavour
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $(ING_OBJ) $(LIB) $(LDLIBS)
bin/atende-worker: $(WRK_OBJ) $(LIB) build/flavour
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $(WRK_OBJ) $(LIB) $(LDLIBS)
bin/atende-notifier: $(NTF_OBJ) $(LIB) build/flavour
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $(NTF_OBJ) $(LIB) $(LDLIBS)
bin/atende-bench: $(BENCH_OBJ) $(LIB) build/flavour
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $(BENCH_OBJ) $(LIB) $(LDLIBS)

build/test/%: test/unit/%.c test/unit/unit.h $(MODULE_OBJ) $(LIB) build/flavour
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itest/unit -Iingress -Iworker -Inotifier -Isupervisor -o $@ $< $(MODULE_OBJ) $(LIB) $(LDLIBS)

# ---- fuzzing (libFuzzer, clang): one target per test/fuzz/fuzz_*.c, linked with every module
# like a unit test, all of it built with ASan + UBSan under build/fuzz/. `make fuzz` runs each
# target for FUZZ_SECONDS from its kept corpus (test/fuzz/corpus/<target>/); what it finds new
# goes to build/fuzz/corpus/<target>/, crashes to build/fuzz/crashes/. `make test` runs a
# short smoke of each (test/fuzz/run.py --smoke).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS   = $(filter-out -Werror -O2 $(SAN_FLAGS),$(CFLAGS)) -O1 -g $(SAN_FLAGS) -fsanitize=fuzzer-no-link
FUZZ_SRC     := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:test/fuzz/%.c=build/fuzz/%)
FUZZ_MOD_OBJ := $(patsubst $(OBJDIR)/%,build/fuzz/obj/%,$(MODULE_OBJ))
FUZZ_LIB_OBJ := $(patsubst $(OBJDIR)/%,build/fuzz/obj/%,$(COMMON_OBJ))

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

build/fuzz/libatende.a: $(FUZZ_LIB_OBJ)
	ar rcs $@ $^

build/fuzz/fuzz_%: test/fuzz/fuzz_%.c $(wildcard test/fuzz/*.h) $(FUZZ_MOD_OBJ) build/fuzz/libatende.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itest/fuzz -Iingress -Iworker -Inotifier -Isupervisor -o $@ $< \
		$(FUZZ_MOD_OBJ) build/fuzz/libatende.a $(LDLIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@/usr/bin/python3 test/fuzz/run.py --seconds $(FUZZ_SECONDS)

# The unit tests under valgrind memcheck (build them plain first: valgrind and ASan exclude
# each other). Any error or definite leak fails.
valgrind: unit
	@/usr/bin/python3 test/valgrind.py

run: setup
	bin/atende run -c $(CONFIG)

unit: all $(UNIT_BIN) build/test/floor_sink build/test/floor_kafka build/test/fakeai_lean

# the AI benchmarks' lean fake AI (test/bench_pg.py)
build/test/fakeai_lean: test/fakeai_lean.c build/flavour
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# the floors under the ingress's HTTP and Kafka work (test/bench_floor.py)
build/test/floor_%: test/floor_%.c $(LIB) build/flavour
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)

test: setup-test
	@SANITIZE=$(SANITIZE) /usr/bin/python3 test/run.py

# the rules' intent accuracy per intent on the WhatsApp-style dev, held-out and fresh sets
# (test/fixtures/heldout), the held-out set through the system with ai.route_confident on, the
# untouched fresh3 set (only measured, never tuned on) the same way with a fake AI that answers the labels
# and is wrong on 5 % of the texts, without and with the semantic cache,
# rules at 500 and 2,000 msg/s, the ingress alone with wrk, the AI path (fake AI after
# 1.5 s) at 500/1,000/2,000 msg/s, the labelled corpus on the seed defaults, and the
# conversation API with a million messages stored (test/bench_api.py), and replies alone through
# 3 gateway instances, one of them failing (test/bench_outbound.py), and voice notes at 100 msg/s
# transcribed by a fake AI after 2 s (test/bench_media.py), streamed hints (ai.stream) with the
# fake AI streaming each answer over 1.5 s: first and full hint at a console (test/bench_stream.py),
# and the embedded broker on Debian's librdkafka and on the patched one, each filled to its cap
# then at 2,000/5,000/10,000 msg/s (test/bench_broker.py, docs/performance.md), PostgreSQL's
# profile on fresh systems (rules, AI, AI with texts as customers type them), after 10 minutes
# at 2,000 msg/s (rules) and after 10 minutes at 1,000 msg/s (AI, texts as customers type them)
# (test/bench_pg.py; the AI there is build/test/fakeai_lean),
# the floors under the ingress's and PostgreSQL's work on this machine (test/bench_floor.py),
# and at the end one table of every open-loop run (test/bench_table.py)
bench: setup-test
	@/usr/bin/python3 test/bench_table.py --start
	@build/test/test_rules | grep -E '^\{"bench": "(rules|routing)_' | tee -a build/bench-results.jsonl
	@sh test/bench.sh
	@BENCH_AI_LATENCY_MS=1500 BENCH_RATES="500 1000 2000" BENCH_WRK=0 sh test/bench.sh
	@/usr/bin/python3 test/bench_corpus.py | tee -a build/bench-results.jsonl
	@BENCH_CORPUS_SET=test/fixtures/heldout/heldout.jsonl BENCH_CORPUS_ROUTE=1 BENCH_CORPUS_AGENT_INTERVAL=0 \
		/usr/bin/python3 test/bench_corpus.py | tee -a build/bench-results.jsonl
	@BENCH_CORPUS_SET=test/fixtures/heldout/heldout.jsonl BENCH_CORPUS_ROUTE=1 BENCH_CORPUS_AGENT_INTERVAL=0 \
		BENCH_CORPUS_EMBED=1 BENCH_CORPUS_RATE=2 /usr/bin/python3 test/bench_corpus.py | tee -a build/bench-results.jsonl
	@BENCH_CORPUS_SET=test/fixtures/heldout/fresh3.jsonl BENCH_CORPUS_ROUTE=1 BENCH_CORPUS_AGENT_INTERVAL=0 \
		BENCH_CORPUS_AI=labels BENCH_CORPUS_AI_ERROR=0.05 BENCH_CORPUS_AI_MS=200 \
		/usr/bin/python3 test/bench_corpus.py | tee -a build/bench-results.jsonl
	@BENCH_CORPUS_SET=test/fixtures/heldout/fresh3.jsonl BENCH_CORPUS_ROUTE=1 BENCH_CORPUS_AGENT_INTERVAL=0 \
		BENCH_CORPUS_AI=labels BENCH_CORPUS_AI_ERROR=0.05 BENCH_CORPUS_AI_MS=200 BENCH_CORPUS_EMBED=1 \
		BENCH_CORPUS_RATE=2 /usr/bin/python3 test/bench_corpus.py | tee -a build/bench-results.jsonl
	@/usr/bin/python3 test/bench_api.py
	@/usr/bin/python3 test/bench_outbound.py
	@/usr/bin/python3 test/bench_media.py
	@/usr/bin/python3 test/bench_stream.py | tee -a build/bench-results.jsonl
	@/usr/bin/python3 test/bench_broker.py
	@BENCH_PG_IDLE_S=60 /usr/bin/python3 test/bench_pg.py
	@BENCH_AI_LATENCY_MS=1500 BENCH_PG_RATE=500 /usr/bin/python3 test/bench_pg.py
	@BENCH_AI_LATENCY_MS=1500 BENCH_PG_RATE=1000 BENCH_PG_MESSY=1 /usr/bin/python3 test/bench_pg.py
	@BENCH_PG_WARMUP=600 /usr/bin/python3 test/bench_pg.py
	@BENCH_PG_WARMUP=600 BENCH_AI_LATENCY_MS=1500 BENCH_PG_RATE=1000 BENCH_PG_MESSY=1 /usr/bin/python3 test/bench_pg.py
	@/usr/bin/python3 test/bench_floor.py
	@/usr/bin/python3 test/bench_table.py

# load (CHAOS_RATE msg/s, default 1,000, for CHAOS_SECONDS, default 300, fake AI at 1 s) while
# workers, the ingress, the notifier, the supervisor and PostgreSQL are killed, the broker, the AI
# and the gateway fail and a console stops reading; then the end-to-end checker (README "Chaos")
chaos: setup-test
	@/usr/bin/python3 test/chaos/run.py

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
