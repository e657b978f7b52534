# The two commands of the README quick start: `make demo` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)

.PHONY: deps build test demo clean bench fuzz install package

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

# GNUInstallDirs under PREFIX (default /usr/local); DESTDIR works as usual.
PREFIX ?= /usr/local
install: build
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --install $(BUILD_DIR)

# The Debian package (CPack) in $(PACKAGE_DIR): certgate_<version>_<arch>.deb, installed in /usr
# with the configuration in /etc/certgate (docs/deployment.md).
PACKAGE_DIR ?= build-package
package: deps
	@cmake -S . -B $(PACKAGE_DIR) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF >/dev/null
	@cmake --build $(PACKAGE_DIR) -j $(JOBS)
	@cd $(PACKAGE_DIR) && cpack -G DEB
	@ls $(PACKAGE_DIR)/*.deb

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)/certgate

clean:
	rm -rf $(BUILD_DIR) build-fuzz $(PACKAGE_DIR)
