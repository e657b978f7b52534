# The two commands of the README quick start: `make demo` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)

.PHONY: deps build test demo clean bench fuzz

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j 2

# libFuzzer harnesses (clang, ASan + UBSan) in build-fuzz, each run FUZZ_SECONDS (docs/fuzzing.md).
FUZZ_SECONDS ?= 30
fuzz:
	@bash scripts/install-deps.sh fuzz
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(JOBS) bash scripts/fuzz.sh

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)/certgate

clean:
	rm -rf $(BUILD_DIR) build-fuzz
