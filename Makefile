# Thin wrapper for the README's two commands: `make demo` and `make test`.
# Each installs missing Debian packages, configures, builds, and runs.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build demo test test-cluster bench doc clean

all: build

deps:
	@.ci/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	/usr/bin/python3 apps/demo.py --bin $(BUILD)/bin

# Everything, including the storage-level tests on a 3-node cluster (slurm_levels_*, label
# cluster). slurm_multinode (requeue twice, no levels) stays in test-cluster only: it
# crashed once in 13 runs with a segfault in rank 0 before ckpt's first line, not explained
# yet (see docs/slurm.md).
test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 900 -E '^slurm_multinode$$'

# The multi-node tests (ctest label `cluster`): a SLURM cluster of several nodes, one network
# namespace each, on this machine. Needs root; CI runs it after `make test`. Two at a time:
# each test starts its own cluster (slurm_multinode runs alone, RUN_SERIAL); about 4 minutes
# on 2 cores, 6-7 one at a time.
test-cluster: build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 900 -L cluster

# The benchmarks of docs/performance.md: the seed experiment (heat 100x100 and 1000x1000, a
# checkpoint every 100 iterations, ckpt against pickle, np.save, dill, h5py) on 1 and 4
# ranks, then the fixed cost of one save and its collectives, fsyncs and HDF5 opens at 1-16
# ranks, then checkpoints to node-local storage with partner copies against the shared
# directory. Ratios measured side by side in one run; a few minutes on 2 cores.
MPIRUN_ENV = OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
bench: build
	@.ci/install-deps python3-dill
	$(MPIRUN_ENV) PYTHONPATH=$(BUILD)/python mpiexec -n 1 /usr/bin/python3 apps/bench/seed_heat.py
	$(MPIRUN_ENV) PYTHONPATH=$(BUILD)/python mpiexec -n 4 /usr/bin/python3 apps/bench/seed_heat.py
	$(MPIRUN_ENV) /usr/bin/python3 apps/bench/save_cost.py --bin $(BUILD)/bin
	/usr/bin/python3 apps/bench/levels_bench.py --bin $(BUILD)/bin

# The Doxygen API reference of the public headers into $(BUILD)/docs/html; fails on any
# warning (docs/Doxyfile: WARN_AS_ERROR).
doc: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) --target doc

clean:
	rm -rf $(BUILD)
