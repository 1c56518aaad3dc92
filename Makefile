# Thin wrapper over CMake. `make demo` and `make test` are the two README commands: each installs
# what is missing, builds, then runs.
BUILD  ?= build
ROOT   := $(abspath .)
JOBS   ?= $(shell nproc)
export LUA_PATH  := $(ROOT)/lua/?.lua;$(ROOT)/lua/?/init.lua;;
export LUA_CPATH := $(ROOT)/$(BUILD)/?.so;;
LUA    := lua5.4
BUSTED := $(LUA) /usr/bin/busted

.PHONY: all deps build test spec demo bench asan valgrind clean fuzz
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

# Specs under AddressSanitizer: the module is built with ASan and the runtime preloaded into lua.
asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLUNET_ASAN=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	LUA_CPATH="$(ROOT)/build-asan/?.so;;" LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0 $(BUSTED) spec

# Specs under valgrind memcheck (slow: run a subset with SPECS=spec/tensor_spec.lua).
SPECS ?= spec
valgrind: build
	valgrind --error-exitcode=1 --leak-check=no --suppressions=scripts/valgrind.supp $(BUSTED) $(SPECS)

# libFuzzer harnesses for the NIfTI and TIFF readers, FUZZ_SECONDS each (default 60).
fuzz: deps
	@sh scripts/fuzz.sh

clean:
	rm -rf $(BUILD) build-asan
