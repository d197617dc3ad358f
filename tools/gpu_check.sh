#!/usr/bin/env bash
# One call on a lent GPU machine (see ../shared/gpu/README.md): unpack the carried Deno, build the shim against
# the image's CUDA torch, run the whole test suite and the benchmark (PyTorch reference side by side).
# Logs and runs/bench/latest.json are copied to $OUT.
set -uo pipefail
out="${OUT:-/tmp/out}"; mkdir -p "$out"
gzip -dc .gpu/deno.gz > /tmp/deno && chmod +x /tmp/deno
export PATH=/tmp:$PATH DENO_DIR=$PWD/.gpu/deno_dir NO_COLOR=1
{
  nvidia-smi -L
  python3 -c "import torch; print('python torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  deno --version | head -1
  nproc
} 2>&1 | tee "$out/env.log"
t0=$(date +%s)
deno task build 2>&1 | tee "$out/build.log"
echo "build took $(( $(date +%s) - t0 )) s" | tee -a "$out/build.log"
t0=$(date +%s)
deno task test 2>&1 | tee "$out/test.log" | grep -E "FAILED|failed|error|^ok \||ignored" | tail -40
echo "tests took $(( $(date +%s) - t0 )) s" | tee -a "$out/test.log"
deno task bench 2>&1 | tee "$out/bench.log" | tail -12
cp runs/bench/latest.json "$out/" 2>/dev/null || true
