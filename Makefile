# A thin layer over CMake: `make`, `make run`, `make test` are the front door.
#
#   make                 build build/echokit
#   make run             build, then run `echokit serve` (localhost:50000)
#   make test            build and run the whole suite (CTest)
#   make test-asan       the suite built with -fsanitize=address,undefined
#   make test-tsan       the suite built with -fsanitize=thread
#   make test-clang      the suite built with clang, warnings as errors
#   make test-kqueue KQUEUE_PREFIX=/path/to/libkqueue/install
#                        the suite with the kqueue model on libkqueue
#   make install         PREFIX=/usr/local DESTDIR=
#   make format / check-format

BUILD    ?= build
PREFIX   ?= /usr/local
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_J  ?= 4
CMAKE    ?= cmake
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

SOURCES = $(wildcard src/*.c src/*.h tests/*.c tests/*.h)

.PHONY: all build run test test-asan test-tsan test-clang test-kqueue \
        install clean format check-format

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

test-kqueue:
	@test -n "$(KQUEUE_PREFIX)" || { echo "set KQUEUE_PREFIX to a libkqueue install (see README)"; exit 64; }
	$(call configure,build-kqueue,-DEK_KQUEUE=LIBKQUEUE -DCMAKE_PREFIX_PATH=$(KQUEUE_PREFIX) -DCMAKE_BUILD_RPATH=$(KQUEUE_PREFIX)/lib)
	$(CMAKE) --build build-kqueue -j $(JOBS)
	cd build-kqueue && ctest --output-on-failure -j $(CTEST_J) $(CTEST_FLAGS)

install: build
	DESTDIR=$(DESTDIR) $(CMAKE) --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build build-asan build-tsan build-clang build-kqueue

format:
	clang-format -i $(SOURCES)

check-format:
	clang-format --dry-run --Werror $(SOURCES)

, := ,
