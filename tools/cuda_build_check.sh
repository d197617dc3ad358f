#!/usr/bin/env bash
# Compiles and links the whole shim, CUDA parts included (CUDA graphs and streams, allocator statistics,
# ProcessGroupNCCL), against a CUDA
# build of torch on a machine without a GPU, and checks that every symbol it needs is defined by libtorch or the
# CUDA runtime: what a lent GPU machine would otherwise find out first. Downloads (pip, ~1 GB, into /tmp) the
# torch wheel of the GPU image (default 2.11.0, whose CUDA is 13.0) and the CUDA library headers torch's own
# headers include; builds in a temporary copy of HEAD, never touching native/build.
#   bash tools/cuda_build_check.sh [torch version]
set -euo pipefail
ver="${1:-2.11.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
w=/tmp/ll_cuda_check; mkdir -p "$w"
py="$root/.venv/bin/python"; [ -x "$py" ] || py=python3
if [ ! -d "$w/torch-$ver/torch/lib" ]; then
  "$py" -m pip download -q --no-deps "torch==$ver" -d "$w/wheels"
  mkdir -p "$w/torch-$ver" && unzip -q -o "$w"/wheels/torch-"$ver"-*.whl 'torch/lib/*' 'torch/include/*' -d "$w/torch-$ver"
fi
cuda=$(sed -n "s/^cuda: Optional\[str\] = '\([0-9]*\).*/\1/p" <(unzip -p "$w"/wheels/torch-"$ver"-*.whl torch/version.py) 2>/dev/null || echo 13)
if [ -z "$(find "$w/inc" -name cusparse.h 2>/dev/null)" ] || [ -z "$(find "$w/inc" -name nccl.h 2>/dev/null)" ]; then
  for p in nvidia-cusparse nvidia-cublas nvidia-cusolver nvidia-cuda-runtime nvidia-cuda-crt "nvidia-nccl-cu$cuda"; do
    "$py" -m pip download -q --no-deps "$p" -d "$w/cuda_wheels"
  done
  for f in "$w"/cuda_wheels/*.whl; do unzip -q -o "$f" '*/include/*' -d "$w/inc" || true; done
fi
inc=$(dirname "$(find "$w/inc" -name cusparse.h | head -1)")
nccl=$(dirname "$(find "$w/inc" -name nccl.h | head -1)")
rt=$(dirname "$(find /usr/local/cuda/include "$w/inc" -name cuda_runtime_api.h 2>/dev/null | head -1)")
rm -rf "$w/src" && mkdir -p "$w/src" && git -C "$root" archive HEAD | tar -x -C "$w/src"
cd "$w/src"
LIBTORCH="$w/torch-$ver/torch" NCCL_INCLUDE="$nccl" CUDA_HOME="$(dirname "$rt")" CPATH="$inc:$rt" LAYERLOCK_NO_LIBAV=1 \
  deno run --allow-read --allow-write=native/build,.venv --allow-run --allow-env native/build.ts
lib=$(ls native/build/*/libllshim.so)
tl="$w/torch-$ver/torch/lib"
nm -D --defined-only "$tl"/lib{c10,c10_cuda,torch,torch_cpu,torch_cuda}.so /lib/x86_64-linux-gnu/lib{stdc++.so.6,c.so.6,m.so.6,gcc_s.so.1} \
  $(ls /usr/lib/x86_64-linux-gnu/libgloo*.so* 2>/dev/null) 2>/dev/null | awk '{print $3}' | sed 's/@.*//' | sort -u > "$w/defined"
missing=$(nm -D --undefined-only "$lib" | awk '{print $2}' | sed 's/@.*//' | sort -u | comm -23 - "$w/defined" |
  grep -v -E '^(cuda[A-Z]|_ITM_|__gmon_start__|__tls_get_addr|_ZTH)' || true)
if [ -n "$missing" ]; then
  echo "undefined in libtorch $ver:"; echo "$missing" | c++filt; exit 1
fi
grep -q '"cudaStats": true' native/build/current.json || { echo "the CUDA part of cuda.cpp was not built"; exit 1; }
grep -q '"nccl": true' native/build/current.json || { echo "the NCCL backend was not built"; exit 1; }
echo "ok: the shim builds and links against torch $ver (CUDA $cuda, NCCL backend included); CUDA runtime symbols come through libtorch_cuda"
