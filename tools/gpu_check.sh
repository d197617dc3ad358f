#!/usr/bin/env bash
# One call on a lent GPU machine (see ../shared/gpu/README.md): unpack the carried Deno, build the shim against
# the image's CUDA torch, run the CUDA tests, then the measurements, most important first, each under its own
# time limit so that one slow stage cannot eat the others. Logs and JSON results are copied to $OUT as they are
# produced (they come back even if the call runs out of time). Run it with timeout_s 600:
#   run(command: "bash tools/gpu_check.sh", carry: [".gpu"], timeout_s: 600)
set -uo pipefail
out="${OUT:-/tmp/out}"; mkdir -p "$out"
gzip -dc .gpu/deno.gz > /tmp/deno && chmod +x /tmp/deno
export PATH=/tmp:$PATH DENO_DIR=$PWD/.gpu/deno_dir NO_COLOR=1
P="--allow-ffi=native/build --allow-read --allow-env --allow-write=runs --allow-run"
stamp() { echo "== $(date +%T) $*"; }
keep() { cp runs/bench/*.json "$out/" 2>/dev/null; true; }
{
  nvidia-smi -L
  python3 -c "import torch; print('python torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  deno --version | head -1
} 2>&1 | tee "$out/env.log"
stamp build; timeout 240 deno task build 2>&1 | grep -E "warning|error|ready|built" | tail -8; grep -E "cudaStats|nccl" native/build/current.json
# CUDA graphs, the sync-free step, the graph path's bookkeeping, then the CUDA suite
stamp cuda tests
timeout 150 deno test $P tests/cuda_test.ts tests/step_graph_test.ts tests/sync_free_test.ts > "$out/cuda_test.log" 2>&1
grep -E "FAILED|ok \||failed|passed" "$out/cuda_test.log" | tail -12
# ours eager and graph-captured vs PyTorch eager, batch 16 and 32 (no compile: fast)
stamp train_step b16; timeout 120 deno run $P bench/train_step.ts --compile none > "$out/train_step_b16.log" 2>&1
tail -40 "$out/train_step_b16.log"; keep
stamp depth; timeout 200 deno run $P bench/layerlock_depth.ts > "$out/depth.log" 2>&1; tail -16 "$out/depth.log"; keep
stamp train_step b32; timeout 120 deno run $P bench/train_step.ts --batch 32 --compile none \
  > "$out/train_step_b32.log" 2>&1; tail -12 "$out/train_step_b32.log"; keep
# the trainer itself, CUDA graphs on and off (ViT-B, 112² so that synthetic data keeps up; see dataWaitMs)
for g in on off; do
  stamp "cli graphs.mode=$g"
  timeout 120 deno run $P src/cli/train.ts --name "gpu_graphs_$g" --device cuda --preset base --size 112 \
    --set model.patch=16 --batch-size 16 --steps 120 --set log.every=20 --set log.floorClips=0 \
    --set graphs.mode=$g > "$out/cli_graphs_$g.log" 2>&1
  cp "runs/gpu_graphs_$g/metrics.jsonl" "$out/cli_graphs_$g.jsonl" 2>/dev/null
  grep -E "^step|warning|rror" "$out/cli_graphs_$g.log" | tail -4
done
# torch.compile rows: compilation takes minutes (max-autotune most); whatever finishes comes back
for mode in reduce-overhead max-autotune-no-cudagraphs; do
  stamp "train_step compile $mode"
  timeout 300 deno run $P bench/train_step.ts --compile "$mode" > "$out/train_step_$mode.log" 2>&1
  grep -A8 '"compiled"' "$out/train_step_$mode.log"; keep
done
stamp end
