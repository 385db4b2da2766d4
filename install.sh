#!/usr/bin/env bash
# Create a virtual environment and install Agent Lightning with its test extras.
#   ./install.sh            -> .venv
#   ./install.sh DIR        -> DIR
# The first install compiles llama-cpp-python (about 8 minutes on 2 cores); pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")"
venv="${1:-.venv}"

# A portable CPU build of llama.cpp: no -march=native, no AMX kernels (they crash where the kernel
# denies AMX state, as in some sandboxes). Override CMAKE_ARGS to build for your own CPU or a GPU.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}"
# hnswlib (the knowledge index) also compiles here; without -march=native, so the venv runs on any x86-64 CPU.
export HNSWLIB_NO_NATIVE="${HNSWLIB_NO_NATIVE:-1}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
echo "Installing Agent Lightning into $venv (the first time compiles llama.cpp: ~8 min on 2 cores)…"
"$venv/bin/pip" install --quiet -e ".[test]"
echo "Done. Start the platform with: $venv/bin/alp up"
