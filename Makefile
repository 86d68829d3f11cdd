# tadak - build, test and run the vote ingestion pipeline.
#
#   make              build/tadak-producer, build/tadak-consumer, build/libtadak.a
#   make test         setup, local stack, unit + integration + reduced chaos tests,
#                     a 10 s smoke of each fuzzer (ASan+UBSan build)
#   make chaos        the full chaos suite on a private stack (tests/chaos)
#   make test-slow    the tests make test leaves out for time (the Sentinel variants)
#   make fuzz         each libFuzzer harness for FUZZ_SECONDS (60)
#   make demo         setup, local stack, a vote through the whole path
#   make bench        throughput, latency and memory against the services' ceilings (bench/)
#   make SANITIZE=1   the same binaries with ASan+UBSan, under build/san/
#   make format / format-check / clean

CC      ?= cc
PKGS    := rdkafka hiredis hiredis_ssl libpq json-c libmicrohttpd uuid libcrypto libssl libjwt
WARN    := -Wall -Wextra -Wstrict-prototypes -Wwrite-strings -Wshadow

# The client libraries: librdkafka >= 2.12 (KIP-848, the fetch queue
# back-off) and hiredis >= 1.2 with TLS. When the system's are older,
# scripts/setup builds Debian's source packages into the cache's deps/
# (deps/librdkafka, deps/hiredis); those come first, with an rpath.
RDKAFKA_MIN := 2.12.0
HIREDIS_MIN := 1.2.0
CACHE_DIR   ?= $(or $(TADAK_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tadak)
DEPS_DIRS   := $(wildcard $(CACHE_DIR)/deps/librdkafka $(CACHE_DIR)/deps/hiredis)
PKG_CONFIG  := pkg-config
ifneq ($(DEPS_DIRS),)
# (make 4.3's $(shell) does not see exported variables: say it on the line)
PKG_CONFIG  := PKG_CONFIG_PATH=$(subst $(eval) ,:,$(DEPS_DIRS:%=%/lib/pkgconfig))$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH)) pkg-config
DEPS_RPATH  := $(DEPS_DIRS:%=-Wl,-rpath,%/lib)
endif

CFLAGS  ?= -O2 -g
# -isystem: warnings in a library's header are not ours to fix.
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -Icommon \
           $(patsubst -I%,-isystem %,$(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null))
LDLIBS  += $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lpthread -lm
ifdef CI
CFLAGS  += -Werror
endif

# Hardening, shown on every compile and link line: stack canaries, a
# position-independent executable, and full RELRO (the GOT read-only once
# every symbol is bound at start-up). FORTIFY_SOURCE (bounds-checked libc
# calls) only in the release build: it needs -O, and ASan checks the same
# accesses and more.
CFLAGS  += -fstack-protector-strong -fPIE
LDFLAGS += -pie -Wl,-z,relro,-z,now $(DEPS_RPATH)

BUILD   ?= build
NPROC   := $(shell nproc 2>/dev/null || echo 1)
ifeq ($(SANITIZE),1)
BUILD   := build/san
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
CFLAGS  += -D_FORTIFY_SOURCE=2
endif

COMMON_SRC   := $(wildcard common/*.c)
PRODUCER_SRC := $(wildcard producer/*.c)
CONSUMER_SRC := $(wildcard consumer/*.c)
UNIT_SRC     := $(wildcard tests/unit/test_*.c)
# Helpers the unit tests share (tests/unit/*.c that are not a test).
UNIT_HELPERS := $(filter-out tests/unit/test_%.c,$(wildcard tests/unit/*.c))

COMMON_OBJ   := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
PRODUCER_OBJ := $(PRODUCER_SRC:%.c=$(BUILD)/obj/%.o)
CONSUMER_OBJ := $(CONSUMER_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_OBJ     := $(UNIT_HELPERS:%.c=$(BUILD)/obj/%.o)
# Modules of the two programs (all but main.c) are unit-testable too.
PROGRAM_MODS := $(filter-out %/main.o,$(PRODUCER_OBJ) $(CONSUMER_OBJ))
UNIT_BIN     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

LIB      := $(BUILD)/libtadak.a
PRODUCER := $(BUILD)/tadak-producer
CONSUMER := $(BUILD)/tadak-consumer

.PHONY: check-libs fuzz-bins all unit-bins test test-slow unit integration demo bench chaos fuzz format format-check clean
all: $(PRODUCER) $(CONSUMER)

# Before any compile: the client libraries are there and new enough. Which
# ones (path, version, the flags they give) is kept in $(LIBS_ID), rewritten
# only when it changes, so a switch of library rebuilds everything.
LIBS_ID := $(BUILD)/libs.id
$(LIBS_ID): check-libs
	@mkdir -p $(dir $@)
	@printf '%s\n' "$(DEPS_DIRS)" "$$($(PKG_CONFIG) --modversion rdkafka hiredis)" \
	    "$(CFLAGS)" "$(LDLIBS)" >$@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

check-libs:
	@$(PKG_CONFIG) --atleast-version=$(RDKAFKA_MIN) rdkafka || { \
	  echo "tadak needs librdkafka >= $(RDKAFKA_MIN); found: $$($(PKG_CONFIG) --modversion rdkafka 2>/dev/null || echo none)." \
	       "Run scripts/setup: it builds Debian's 2.14.2 into $(CACHE_DIR)/deps." >&2; exit 1; }
	@$(PKG_CONFIG) --atleast-version=$(HIREDIS_MIN) hiredis_ssl || { \
	  echo "tadak needs hiredis >= $(HIREDIS_MIN) with TLS (hiredis_ssl); found: $$($(PKG_CONFIG) --modversion hiredis 2>/dev/null || echo none)." \
	       "Run scripts/setup: it builds Debian's 1.2.0 into $(CACHE_DIR)/deps." >&2; exit 1; }

$(BUILD)/obj/%.o: %.c $(LIBS_ID)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(COMMON_OBJ)
	$(AR) rcs $@ $^

$(PRODUCER): $(PRODUCER_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(CONSUMER): $(CONSUMER_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_OBJ) $(PROGRAM_MODS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iproducer -Iconsumer $(LDFLAGS) -o $@ $^ $(LDLIBS) \
	    $(shell $(PKG_CONFIG) --libs cmocka)

unit-bins: $(UNIT_BIN)

# The test suite runs on the sanitizer build: ASan+UBSan catch what a
# passing assertion would not.
test:
	scripts/setup
	$(MAKE) -j$(NPROC) SANITIZE=1 all unit-bins
	$(MAKE) -j$(NPROC) fuzz-bins
	TADAK_BIN_DIR=build/san tests/run

# What make test leaves out to stay under 20 minutes (TADAK_SLOW=1): the
# Sentinel variants (a master demoted while in use, TLS to the Sentinels,
# the stack's own failover check), Redis wiped then down and cut repeatedly
# under one consumer (the chaos suite covers both). make chaos runs the
# chaos scenarios make test leaves out (full_only in tests/chaos).
test-slow:
	scripts/setup
	$(MAKE) -j$(NPROC) SANITIZE=1 all
	TADAK_SLOW=1 TADAK_BIN_DIR=build/san tests/run -k "sentinel or redis_wiped_then_unreachable or redis_cut_repeatedly"

# The full chaos suite (tests/chaos) against a private stack of its own:
# consumer SIGKILLs, Redis wiped and down, PostgreSQL down, a Kafka restart
# under HTTP load, a rebalance storm, hostile input. `make test` runs the
# reduced set. TADAK_CHAOS_SEED=N repeats a run.
chaos:
	scripts/setup
	$(MAKE) SANITIZE=1 all
	TADAK_BIN_DIR=build/san TADAK_CHAOS=full tests/chaos/run

unit:
	$(MAKE) SANITIZE=1 all unit-bins
	TADAK_BIN_DIR=build/san tests/run --unit-only

demo:
	scripts/setup
	$(MAKE) all
	scripts/demo

# The benchmark measures the -O2 build (never ASan) against the ceilings of
# the local stack's services; results in bench/results/. Not part of test.
KCOUNT := build/bench/kcount
$(KCOUNT): bench/kcount.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=c11 -D_GNU_SOURCE $(WARN) $(patsubst -I%,-isystem %,$(shell $(PKG_CONFIG) --cflags rdkafka)) \
	    -o $@ $< $(DEPS_RPATH) $(shell $(PKG_CONFIG) --libs rdkafka)

bench:
	scripts/setup
	$(MAKE) SANITIZE= BUILD=build all $(KCOUNT)
	bench/run $(BENCH_ARGS)

FORMAT_FILES := $(wildcard common/*.[ch] producer/*.[ch] consumer/*.[ch] tests/unit/*.[ch] tests/fuzz/*.[ch] \
                          tests/integration/*.c tests/chaos/*.c bench/*.c)
format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build

# libFuzzer harnesses (clang). FUZZ_SECONDS per harness; CI runs a short smoke.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icommon \
                -Iproducer $(patsubst -I%,-isystem %,$(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null))
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_LIBSRC  := $(COMMON_SRC) $(filter-out producer/main.c,$(PRODUCER_SRC))

build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIBSRC) $(LIBS_ID)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(DEPS_RPATH) $(LDLIBS)

fuzz-bins: $(FUZZ_BIN)

fuzz: fuzz-bins
	@for f in $(FUZZ_BIN); do \
	    n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	    echo "== $$n for $(FUZZ_SECONDS) s"; \
	    seeds=; [ -d tests/fuzz/seeds-$$n ] && seeds=tests/fuzz/seeds-$$n; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	        build/fuzz/corpus-$$n $$seeds ../shared/corpus/json-test-suite/test_parsing || exit 1; \
	done

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
