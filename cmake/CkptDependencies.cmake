# Finds ckpt's dependencies, all from Debian 12 packages:
#   libopenmpi-dev, libhdf5-openmpi-dev, libfmt-dev, libxxhash-dev,
#   libboost-program-options-dev (CLI only), libgtest-dev (tests only).
find_package(MPI REQUIRED COMPONENTS C CXX)
find_package(PkgConfig REQUIRED)
# Debian installs serial and parallel HDF5 side by side; ask for the Open MPI build by name.
pkg_check_modules(CKPT_HDF5 REQUIRED IMPORTED_TARGET GLOBAL hdf5-openmpi)
pkg_check_modules(CKPT_XXHASH REQUIRED IMPORTED_TARGET GLOBAL libxxhash)
find_package(fmt REQUIRED)
