# Thin wrapper over CMake. `make demo` and `make test` are the two README commands: each installs
# what is missing, builds, then runs.
BUILD  ?= build
ROOT   := $(abspath .)
JOBS   ?= $(shell nproc)
export LUA_PATH  := $(ROOT)/lua/?.lua;$(ROOT)/lua/?/init.lua;;
export LUA_CPATH := $(ROOT)/$(BUILD)/?.so;;
LUA    := lua5.4
BUSTED := $(LUA) /usr/bin/busted

.PHONY: all deps build test spec demo bench asan clean fuzz faults
all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The whole suite; specs find the module through LUA_PATH/LUA_CPATH exported above.
test: build
	@sh scripts/run-specs.sh spec

spec: test

demo: build
	@$(LUA) scripts/demo.lua

bench: build
	@for b in bench/*.lua; do echo "== $$b"; $(LUA) $$b || exit 1; done

# The whole spec suite under AddressSanitizer + UBSan + LeakSanitizer, one busted process per spec file
# (scripts/asan-specs.sh; logs in build-asan/spec-logs). The module is built with the sanitizers and their
# runtimes are preloaded into lua (valgrind is not used: PoCL's LLVM JIT drowns memcheck in reports that are
# not ours). SPECS=spec/tensor_spec.lua runs a subset.
SPECS ?= spec
asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLUNET_ASAN=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@sh scripts/asan-specs.sh $(SPECS)

# libFuzzer harnesses for the NIfTI and TIFF readers, FUZZ_SECONDS each (default 60).
fuzz: deps
	@sh scripts/fuzz.sh

# kill -9 preprocess, train and predict at random points on the demo data and check that each resumes to the
# uninterrupted run's output; FAULTS_KILLS=N kills per stage (default 20). Results: docs/reliability.md.
faults: build
	@sh scripts/faults.sh

clean:
	rm -rf $(BUILD) build-asan
