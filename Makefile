# Thin wrapper for the README's two commands: `make demo` and `make test`.
# Each installs missing Debian packages, configures, builds, and runs.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build demo test doc clean

all: build

deps:
	@.ci/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	/usr/bin/python3 apps/demo.py --bin $(BUILD)/bin

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 900

# The Doxygen API reference of the public headers into $(BUILD)/docs/html; fails on any
# warning (docs/Doxyfile: WARN_AS_ERROR).
doc: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) --target doc

clean:
	rm -rf $(BUILD)
