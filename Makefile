# A thin layer over CMake: `make`, `make run`, `make test` are the front door.
#
#   make                 build build/echokit
#   make run             build, then run `echokit serve` (localhost:50000)
#   make test            build and run the whole suite (CTest)
#   make test-asan       the suite built with -fsanitize=address,undefined
#   make test-tsan       the suite built with -fsanitize=thread
#   make test-clang      the suite built with clang, warnings as errors
#   make test-portable   the suite built with -DEK_LINUX_EXT=OFF: no
#                        Linux-only call, their portable fallbacks instead
#   make test-kqueue KQUEUE_PREFIX=/path/to/libkqueue/install
#                        the suite with the kqueue model on libkqueue
#   make fuzz            each libFuzzer target of fuzz/ for FUZZ_TIME s (300)
#   make fuzz-smoke      the same for 10 s each (CI)
#   make test-valgrind   a representative subset under valgrind memcheck
#   make analyze         cppcheck, clang-tidy and gcc -fanalyzer; any finding
#                        fails (make cppcheck / tidy / fanalyzer: one of them)
#   make soak            10 minutes of changing load; RSS and fds must stay flat
#   make install         PREFIX=/usr/local DESTDIR=
#   make deb             the Debian package (debian/): dpkg-buildpackage -b
#                        -us -uc, then the .deb files, .changes and
#                        .buildinfo moved from .. into dist/ (needs
#                        dpkg-dev, debhelper and the Build-Depends of
#                        debian/control); tests/pkg/deb-check checks it
#   make static          build-static/echokit: fully static, on musl
#                        (Debian: musl-tools); `--version` says what it has
#                        and why not the rest (cmake/musl-static*.cmake)
#   make image           make static, then the image localhost/echokit:VERSION
#                        (contrib/container/Containerfile: FROM scratch, the
#                        binary alone, user 65534) with buildah, or podman
#                        where buildah is missing (IMAGE_TOOL=), in Docker
#                        format (which keeps HEALTHCHECK); building needs
#                        no container runtime. tests/pkg/image-check checks it
#   make format / check-format

BUILD    ?= build
PREFIX   ?= /usr/local
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_J  ?= 4
CMAKE    ?= cmake
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

SOURCES = $(wildcard src/*.c src/*/*.c src/*/*.h tests/*.c tests/*.h fuzz/*.c)
FUZZ_TARGETS = proxy args queue udp_filter log_escape metrics_request \
               tls_server merge_input merge
FUZZ_TIME ?= 300

.PHONY: all build run test test-asan test-tsan test-clang test-portable \
        test-kqueue \
        fuzz fuzz-smoke fuzz-build analyze cppcheck tidy fanalyzer soak \
        test-valgrind install deb clean format check-format

all: build

# Configure once per build directory; cmake re-runs itself when needed.
define configure
	@test -f $(1)/CMakeCache.txt || $(CMAKE) -S . -B $(1) $(2) $(CMAKE_FLAGS)
endef

build:
	$(call configure,$(BUILD),-DCMAKE_INSTALL_PREFIX=$(PREFIX))
	$(CMAKE) --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/echokit serve

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(CTEST_J) $(CTEST_FLAGS)

test-asan:
	$(call configure,build-asan,-DEK_SANITIZE=address$(,)undefined -DCMAKE_BUILD_TYPE=Debug)
	$(CMAKE) --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(CTEST_J) $(CTEST_FLAGS)

test-tsan:
	$(call configure,build-tsan,-DEK_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug)
	$(CMAKE) --build build-tsan -j $(JOBS)
	cd build-tsan && ctest --output-on-failure -j $(CTEST_J) $(CTEST_FLAGS)

test-clang:
	$(call configure,build-clang,-DCMAKE_C_COMPILER=clang -DEK_WERROR=ON)
	$(CMAKE) --build build-clang -j $(JOBS)
	cd build-clang && ctest --output-on-failure -j $(CTEST_J) $(CTEST_FLAGS)

# What BSD and macOS run, on Linux: accept+fcntl, pipe+fcntl, recvmsg and
# sendmsg loops, read/write instead of splice, poll in the bench client;
# no epoll or uring model (their tests skip, saying why).
test-portable:
	$(call configure,build-portable,-DEK_LINUX_EXT=OFF)
	$(CMAKE) --build build-portable -j $(JOBS)
	cd build-portable && ctest --output-on-failure -j $(CTEST_J) $(CTEST_FLAGS)

test-kqueue:
	@test -n "$(KQUEUE_PREFIX)" || { echo "set KQUEUE_PREFIX to a libkqueue install (see README)"; exit 64; }
	$(call configure,build-kqueue,-DEK_KQUEUE=LIBKQUEUE -DCMAKE_PREFIX_PATH=$(KQUEUE_PREFIX) -DCMAKE_BUILD_RPATH=$(KQUEUE_PREFIX)/lib)
	$(CMAKE) --build build-kqueue -j $(JOBS)
	cd build-kqueue && ctest --output-on-failure -j $(CTEST_J) $(CTEST_FLAGS)

# New inputs go to build-fuzz/corpus/ (the first directory libFuzzer is
# given), so fuzz/corpus/ stays the reviewed seed corpus; a crash lands in
# build-fuzz/crash-TARGET-* and the run fails.
fuzz-build:
	$(call configure,build-fuzz,-DCMAKE_C_COMPILER=clang -DEK_FUZZ=ON -DEK_SANITIZE=fuzzer-no-link$(,)address$(,)undefined -DCMAKE_BUILD_TYPE=Debug)
	$(CMAKE) --build build-fuzz -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t fuzz/regress/$$t; \
	  echo "== fuzz_$$t, $(FUZZ_TIME) s"; \
	  build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/crash-$$t- build-fuzz/corpus/$$t \
	    fuzz/corpus/$$t fuzz/regress/$$t > build-fuzz/fuzz_$$t.log 2>&1; \
	  rc=$$?; grep -E "^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|cov:" \
	    build-fuzz/fuzz_$$t.log | tail -n 3; \
	  if [ $$rc -ne 0 ]; then tail -n 40 build-fuzz/fuzz_$$t.log; exit 1; fi; \
	done

# CI: 10 s per target, then every seed and regression input once more.
fuzz-smoke:
	$(MAKE) fuzz FUZZ_TIME=10
	cd build-fuzz && ctest --output-on-failure -R '^fuzz\.'

# The subset: valgrind is 20-50 times slower, and the whole suite would
# take an hour. The event loop's echo, half-close, reset, drain, PROXY, UDP,
# counters and idle paths; every other model's basic echo; the client
# commands (the same binary). Unit tests run whole. Not uring: valgrind
# does not follow io_uring (it cannot see what the kernel writes through
# the ring, and a blocked io_uring_enter misses signals under it); ASan
# and TSan cover that model.
VALGRIND_CASES = epoll:tutorial epoll:payload_1m epoll:concurrent_200 \
  epoll:half_close epoll:reset epoll:drain epoll:proxy_protocol \
  epoll:udp_echo epoll:counters epoll:idle_timeout epoll-t2:concurrent_200 \
  thread:tutorial thread:reset process:tutorial iterative:tutorial \
  select:tutorial poll:tutorial -:send_pipe -:inetd -:udp_send
test-valgrind: build
	@for u in $(BUILD)/tests/test_*; do \
	  valgrind -q --error-exitcode=99 --leak-check=full $$u > /dev/null || \
	    { echo "valgrind: $$u failed"; exit 1; }; \
	done; echo "valgrind: unit tests clean"
	@for mc in $(VALGRIND_CASES); do \
	  m=$${mc%%:*}; c=$${mc#*:}; \
	  EK_VG_BIN=$(BUILD)/echokit $(BUILD)/tests/itest $(CURDIR)/tests/vg-echokit \
	    $$m $$c > $(BUILD)/vg-$$m-$$c.log 2>&1; rc=$$?; \
	  if [ $$rc -eq 77 ]; then echo "valgrind: $$m $$c skipped: $$(tail -n 1 $(BUILD)/vg-$$m-$$c.log)"; \
	  elif [ $$rc -ne 0 ]; then tail -n 30 $(BUILD)/vg-$$m-$$c.log; exit 1; \
	  else echo "valgrind: $$m $$c clean"; fi; \
	done

soak: build
	tests/soak $(BUILD)/echokit

# A static musl binary and a FROM scratch image of it. The image's build
# context is build-static/image/, which holds the stripped binary alone.
.PHONY: static image clean-static
IMAGE_NAME ?= localhost/echokit
IMAGE_SOURCE ?= $(shell git remote get-url origin 2>/dev/null)
IMAGE_TOOL ?= $(firstword $(foreach t,buildah podman,$(if $(shell command -v $(t) 2>/dev/null),$(t))))
static:
	$(call configure,build-static,-DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/musl-static.cmake)
	$(CMAKE) --build build-static -j $(JOBS) --target echokit
	build-static/echokit --version

image: static
	rm -rf build-static/image && mkdir build-static/image
	strip -o build-static/image/echokit build-static/echokit
	@v=$$(build-static/echokit --version | sed -n '1s/^echokit //p'); \
	case "$(IMAGE_TOOL)" in \
	buildah) b="buildah bud" ;; podman) b="podman build" ;; \
	*) echo "make image: needs buildah or podman (Debian: buildah)"; exit 69 ;; \
	esac; \
	set -x; $$b --format docker -f contrib/container/Containerfile \
	  --build-arg VERSION="$$v" \
	  --build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null)" \
	  --build-arg CREATED="$$(git log -1 --format=%cI 2>/dev/null)" \
	  $(if $(IMAGE_SOURCE),--label org.opencontainers.image.source=$(IMAGE_SOURCE)) \
	  -t $(IMAGE_NAME):$$v build-static/image

clean: clean-static
clean-static:
	rm -rf build-static

# Static analysis. Any finding fails; the escape is an inline suppression
# that gives its reason, or a check left out in .clang-tidy with one.
analyze: cppcheck tidy fanalyzer

# The configuration checked is Linux's with TLS (EK_HAVE_TLS), so that the
# TLS paths are read too.
cppcheck: build
	cppcheck --enable=warning,performance,portability,style --std=c11 \
	  --inline-suppr --error-exitcode=1 -q -D__linux__ -D_GNU_SOURCE \
	  -DEK_HAVE_TLS $(addprefix -I,$(wildcard src/*/)) -I$(BUILD)/gen src tests fuzz

# Every file compile_commands.json has (loop_kqueue.c is built only
# against libkqueue: make test-kqueue). Checks: .clang-tidy.
TIDY_FILES = $(filter-out src/event/loop_kqueue.c,$(wildcard src/*.c src/*/*.c tests/*.c))
tidy: build
	@echo "clang-tidy: $(words $(TIDY_FILES)) files"
	@printf '%s\n' $(TIDY_FILES) | \
	  xargs -P $(JOBS) -n 4 clang-tidy -p $(BUILD) --quiet 2>/dev/null

# gcc's static analyzer over the whole build, warnings as errors. Its leak
# checker is left out: gcc 12 loses pointers stored in heap structures and
# reported 12 leaks that are not (chunks linked into a queue, loops kept
# by their group); leaks are LeakSanitizer's (make test-asan) and
# valgrind's (make test-valgrind) to find, on real runs.
fanalyzer:
	$(call configure,build-fanalyzer,-DEK_WERROR=ON \
	  "-DCMAKE_C_FLAGS=-fanalyzer -Wno-analyzer-malloc-leak")
	$(CMAKE) --build build-fanalyzer -j $(JOBS)

install: build
	DESTDIR=$(DESTDIR) $(CMAKE) --install $(BUILD) --prefix $(PREFIX)

# dpkg-buildpackage writes its results to the parent directory; they are
# moved to dist/, each file the .changes lists, and the .changes itself.
# debian/rules builds in build-deb/ and runs the unit tests only (see there).
DEB_CHANGES = echokit_$(shell dpkg-parsechangelog -S Version 2>/dev/null)_$(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null).changes
deb:
	rm -rf dist
	dpkg-buildpackage -b -us -uc -J$(JOBS)
	mkdir -p dist
	@set -e; for f in $$(awk '/^Files:/ { f = 1; next } /^[^ ]/ { f = 0 } f { print $$5 }' ../$(DEB_CHANGES)); do \
	  mv -f ../$$f dist/; \
	done; mv -f ../$(DEB_CHANGES) dist/; ls -l dist

clean:
	rm -rf build build-asan build-tsan build-clang build-portable build-kqueue \
	  build-fuzz build-fanalyzer build-deb

format:
	clang-format -i $(SOURCES)

check-format:
	clang-format --dry-run --Werror $(SOURCES)

, := ,
