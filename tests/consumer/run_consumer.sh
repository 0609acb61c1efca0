#!/bin/sh
# Installs the built ckpt into a scratch prefix and builds and runs a consumer project
# against the installed tree: with find_package(ckpt) (C++ and, when the C API header is
# installed, C) and with pkg-config. Also runs the installed Python package (save/load on
# 2 ranks) and the installed `ckpt` tool. With FC (ckpt built with its Fortran module), a
# Fortran program builds against the installed module too, both ways.
# usage: run_consumer.sh BUILD_DIR PROJECT_DIR MPIEXEC CMAKE CC CXX [FC]
set -eu
build=$1 project=$2 mpiexec=$3 cmake=$4 cc=$5 cxx=$6 fc=${7:-}
fortran=OFF
if [ -n "$fc" ]; then fortran=ON; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
# DESTDIR keeps an install rule with an absolute path inside the scratch area, where the
# check below finds it, instead of letting it write into the system.
dest=$work/dest
prefix=/opt/ckpt
root=$dest$prefix

echo "== cmake --install into $root"
if ! DESTDIR=$dest "$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1; then
  cat "$work/install.log"
  echo "FAIL: cmake --install failed"
  exit 1
fi
stray=$(find "$dest" -mindepth 1 \( -path "$dest/opt" -o -path "$dest/opt/ckpt" -o -path "$dest/opt/ckpt/*" \) -prune -o -print | head -20)
if [ -n "$stray" ]; then
  echo "FAIL: files installed outside the prefix (absolute install paths):"
  echo "$stray"
  exit 1
fi
echo "installed:"
(cd "$root" && find . -type f | sort | sed 's/^/  /')

echo "== find_package(ckpt) consumer"
"$cmake" -S "$project" -B "$work/build" -DCMAKE_PREFIX_PATH="$root" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DCONSUMER_FORTRAN=$fortran \
  ${fc:+-DCMAKE_Fortran_COMPILER="$fc"} >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; echo "FAIL: configuring the consumer"; exit 1; }
grep "C API" "$work/configure.log" || true
"$cmake" --build "$work/build" -j1 >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; echo "FAIL: building the consumer"; exit 1; }
"$mpiexec" -n 2 "$work/build/consumer_cxx" "$work/run-cmake-cxx"
if [ -x "$work/build/consumer_c" ]; then
  "$mpiexec" -n 2 "$work/build/consumer_c" "$work/run-cmake-c"
else
  echo "NOTE: ckpt/ckpt.h is not installed; the C consumer was not built"
fi
if [ "$fortran" = ON ]; then
  "$mpiexec" -n 2 "$work/build/consumer_f" "$work/run-cmake-f"
  # A C/C++ project must not need Fortran even though this ckpt has its module.
  "$cmake" -S "$project" -B "$work/build-c" -DCMAKE_PREFIX_PATH="$root" -DCONSUMER_FORTRAN=OFF \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" >"$work/configure-c.log" 2>&1 ||
    { cat "$work/configure-c.log"; echo "FAIL: configuring a C/C++ consumer of a ckpt with Fortran"; exit 1; }
else
  echo "NOTE: no Fortran compiler given; the Fortran consumer was not built"
fi

echo "== pkg-config consumer"
pc=$(find "$root" -name ckpt.pc | head -1)
[ -n "$pc" ] || { echo "FAIL: no ckpt.pc installed"; exit 1; }
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir ckpt)
echo "pkg-config ckpt $(pkg-config --modversion ckpt): $(pkg-config --cflags --libs ckpt)"
# shellcheck disable=SC2046
"$cxx" -std=c++20 -O1 "$project/consumer.cpp" -o "$work/pc_cxx" $(pkg-config --cflags --libs ckpt) \
  -Wl,-rpath,"$libdir"
"$mpiexec" -n 2 "$work/pc_cxx" "$work/run-pc-cxx"
if [ -f "$root/include/ckpt/ckpt.h" ]; then
  # shellcheck disable=SC2046
  "$cc" -std=c99 -O1 "$project/consumer.c" -o "$work/pc_c" $(pkg-config --cflags --libs ckpt) \
    -Wl,-rpath,"$libdir"
  "$mpiexec" -n 2 "$work/pc_c" "$work/run-pc-c"
fi
if [ "$fortran" = ON ]; then
  [ -f "$PKG_CONFIG_PATH/ckpt-fortran.pc" ] || { echo "FAIL: no ckpt-fortran.pc installed"; exit 1; }
  echo "pkg-config ckpt-fortran: $(pkg-config --cflags --libs ckpt-fortran)"
  # mpifort adds the directory of mpi_f08.mod (Debian's ompi-fort.pc does not)
  mpifort=$(dirname "$mpiexec")/mpifort
  [ -x "$mpifort" ] || mpifort=mpifort
  # shellcheck disable=SC2046
  OMPI_FC="$fc" "$mpifort" -O1 "$project/consumer.f90" -o "$work/pc_f" -J "$work" \
    $(pkg-config --cflags --libs ckpt-fortran) -Wl,-rpath,"$libdir"
  "$mpiexec" -n 2 "$work/pc_f" "$work/run-pc-f"
fi

echo "== installed Python package"
pydir=$(find "$root" -type d -path "*-packages/ckpt" | head -1)
if [ -n "$pydir" ]; then
  # No LD_LIBRARY_PATH: the extension must find the installed libckpt by its RUNPATH.
  PYTHONPATH=$(dirname "$pydir") "$mpiexec" -n 2 /usr/bin/python3 "$project/consumer.py" "$work/run-py"
  case $(PYTHONPATH=$(dirname "$pydir") /usr/bin/python3 -c 'import ckpt; print(ckpt.__file__)') in
    "$pydir"/*) ;;
    *) echo "FAIL: the Python consumer did not import the installed package"; exit 1 ;;
  esac
else
  echo "NOTE: the Python package is not installed (python/ not built)"
fi

echo "== installed ckpt tool"
if [ -x "$root/bin/ckpt" ]; then
  "$root/bin/ckpt" --version
  "$root/bin/ckpt" verify "$work/run-pc-cxx"
  [ -f "$root/bin/ckpt-stats-plot.py" ] || { echo "FAIL: ckpt-stats-plot.py is not installed beside ckpt"; exit 1; }
else
  echo "NOTE: the ckpt tool is not installed (apps not built)"
fi
if [ -x "$root/bin/capsid" ]; then
  # An installed app must find libckpt by its RUNPATH too.
  "$mpiexec" -n 1 "$root/bin/capsid" -n 12 -s 5 -e 0 -d "$work/run-capsid" | grep "^result:"
fi
if [ -x "$root/bin/fortran_heat" ]; then
  "$mpiexec" -n 1 "$root/bin/fortran_heat" -s 5 -e 0 -d "$work/run-fheat" | grep "^result:"
fi
echo "consumer test: ok"
