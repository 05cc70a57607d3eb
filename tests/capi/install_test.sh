#!/usr/bin/env bash
# Usage: install_test.sh CMAKE BUILD_DIR PROJECT_DIR TABLE SCRATCH
# Installs BUILD_DIR into SCRATCH/prefix, then builds PROJECT_DIR against it with find_package(hashmem) (the C
# consumer on the shared library, the C++ one on the static library) and with pkg-config (both on the shared
# library), and runs every binary on TABLE. Fails on the first error. HASHMEM_CONSUMER_FLAGS: extra compile and
# link flags for the consumers (a sanitized build's -fsanitize=...).
set -euo pipefail
cmake_cmd=$1 build=$2 project=$3 table=$4 scratch=$5
flags=${HASHMEM_CONSUMER_FLAGS:-}
rm -rf "$scratch"
prefix=$scratch/prefix
"$cmake_cmd" --install "$build" --prefix "$prefix" >/dev/null
# Only what the install put there: nothing from the build or source tree.
export CMAKE_PREFIX_PATH=$prefix
"$cmake_cmd" -S "$project" -B "$scratch/cmake-build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
"$cmake_cmd" --build "$scratch/cmake-build" -j2 >/dev/null
"$scratch/cmake-build/consumer_c" "$table"
"$scratch/cmake-build/consumer_cpp" "$table"

libdir=$(dirname "$(dirname "$(find "$prefix" -name hashmem.pc)")")
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc -std=c99 -Wall -Werror $flags "$project/consumer.c" $(pkg-config --cflags --libs hashmem) -o "$scratch/pc_consumer_c"
c++ -std=c++20 -Wall -Werror $flags "$project/consumer.cpp" $(pkg-config --cflags --libs hashmem) -o "$scratch/pc_consumer_cpp"
LD_LIBRARY_PATH=$libdir "$scratch/pc_consumer_c" "$table"
LD_LIBRARY_PATH=$libdir "$scratch/pc_consumer_cpp" "$table"
rm -rf "$scratch"
echo "install test: find_package and pkg-config consumers passed"
