# Convenience over CMake. `make test` and `make demo` install missing Debian packages, configure, build and run.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
DEB_BUILD  ?= build-release
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build test test-asan test-tsan check demo bench install deb fuzz-build fuzz fuzz-smoke clean

all: build

deps:
	@sh .ci/deps

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

$(ASAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDUCTRPC_SANITIZE=ON -DDUCTRPC_BENCH=OFF $(CMAKE_ARGS)

test-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 600

# ThreadSanitizer: tests/tsan.supp names only libzmq's own frames (the Debian library is not instrumented, so
# its lock-free queues look like races to TSan). TSan does not support threads in a child forked from a process
# with threads (die_after_fork=0 lets the tests that do so run; the demo's forked worker still trips TSan's thread
# table, so the demo is left to the other builds).
$(TSAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDUCTRPC_TSAN=ON -DDUCTRPC_BENCH=OFF $(CMAKE_ARGS)

test-tsan: deps $(TSAN_BUILD)/CMakeCache.txt
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1 die_after_fork=0" \
	  ctest --output-on-failure -j $(JOBS) --timeout 900 -E '^demo: rpc-demo' 

check: test test-asan

demo: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target duct-demo rpc-demo rpc-call rpc-serve rpc-broker duct-cat
	$(BUILD)/libduct/examples/duct-demo
	$(BUILD)/librpc/examples/rpc-demo
	bash tools/demo.sh $(BUILD)

bench: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target duct-bench rpc-bench stream-bench broker-bench zmq-bare spawn-time rpc-call rpc-serve rpc-broker duct-cat
	$(BUILD)/bench/duct-bench --json bench/results/duct.json
	-sh tests/rpc/node/install.sh $(BUILD)/tests/node-peers
	$(BUILD)/bench/rpc-bench --json bench/results/rpc.json --node-peer $(BUILD)/tests/node-peers/peer.js
	$(BUILD)/bench/stream-bench --json bench/results/stream.json --node-peer $(BUILD)/tests/node-peers/peer.js
	$(BUILD)/bench/broker-bench --json bench/results/broker.json
	bash bench/tools_bench.sh $(BUILD) --json bench/results/tools.json

install: build
	cmake --install $(BUILD)

# Debian packages from a Release build configured for /usr (so libraries go to the multiarch directory and carry
# no RPATH): libductrpc<SOVERSION>, libductrpc-dev and ductrpc-tools, in $(DEB_BUILD)/.
$(DEB_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(DEB_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DDUCTRPC_TESTS=OFF \
	  -DDUCTRPC_BENCH=OFF -DDUCTRPC_EXAMPLES=OFF $(CMAKE_ARGS)

deb: deps $(DEB_BUILD)/CMakeCache.txt
	cmake --build $(DEB_BUILD) -j $(JOBS)
	cd $(DEB_BUILD) && cpack -G DEB
	@ls $(DEB_BUILD)/*.deb

# libFuzzer targets (tests/fuzz), built with clang-14 and seeded from tests/vectors. make fuzz runs each for
# FUZZ_SECONDS (600); make fuzz-smoke for 30 s, as CI does.
$(FUZZ_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDUCTRPC_FUZZ=ON \
	  -DDUCTRPC_TESTS=OFF -DDUCTRPC_BENCH=OFF -DDUCTRPC_EXAMPLES=OFF -DDUCTRPC_WERROR=OFF -DBUILD_SHARED_LIBS=OFF $(CMAKE_ARGS)

fuzz-build: deps $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	python3 tests/fuzz/seeds.py tests/vectors $(FUZZ_BUILD)/seeds

fuzz: fuzz-build
	sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	sh tests/fuzz/run.sh $(FUZZ_BUILD) 30

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(DEB_BUILD) $(FUZZ_BUILD)
