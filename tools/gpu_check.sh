#!/usr/bin/env bash
# One call on a lent GPU machine (see ../shared/gpu/README.md): unpack the carried Deno, build the shim against
# the image's CUDA torch, run the test suite, then the measurements, most important first. Logs and JSON results
# are copied to $OUT as they are produced (they come back even if the call runs out of time).
set -uo pipefail
out="${OUT:-/tmp/out}"; mkdir -p "$out"
gzip -dc .gpu/deno.gz > /tmp/deno && chmod +x /tmp/deno
export PATH=/tmp:$PATH DENO_DIR=$PWD/.gpu/deno_dir NO_COLOR=1
P="--allow-ffi=native/build --allow-read --allow-env --allow-write=runs --allow-run"
stamp() { echo "== $(date +%T) $*"; }
{
  nvidia-smi -L
  python3 -c "import torch; print('python torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  deno --version | head -1
} 2>&1 | tee "$out/env.log"
stamp build; deno task build 2>&1 | tail -3
stamp test; deno task test > "$out/test.log" 2>&1; grep -E "FAILED|^ok \||failed" "$out/test.log" | tail -8
stamp train_step; deno run $P bench/train_step.ts > "$out/train_step.log" 2>&1; tail -22 "$out/train_step.log"
stamp cli; deno run $P src/cli/train.ts --name gpu_b16 --device cuda --preset base --size 224 --set model.patch=16 \
  --batch-size 8 --steps 60 --warmup 5 --set log.every=10 > "$out/cli.log" 2>&1; grep -E "^step|done|rror" "$out/cli.log" | tail -8
cp runs/gpu_b16/metrics.jsonl "$out/cli_metrics.jsonl" 2>/dev/null
stamp depth; deno run $P bench/layerlock_depth.ts > "$out/depth.log" 2>&1; tail -16 "$out/depth.log"
stamp bench; deno task bench > "$out/bench.log" 2>&1; tail -9 "$out/bench.log"
stamp end
