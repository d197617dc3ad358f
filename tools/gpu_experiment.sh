#!/usr/bin/env bash
# The issue-5 comparison at a larger size on a lent GPU machine (see ../shared/gpu/README.md), in two device
# calls on the same warm machine, because Deno (.gpu/, ~54 MiB) and Fashion-MNIST (~30 MiB) do not fit in one
# call's 64 MiB of carried files. Ignored paths carried by the first call stay there for the second.
#
#   here:      ../shared/gpu/pack.sh && tools/gpu_experiment.sh pack-data
#   device 1:  carry [".gpu"]            command: bash tools/gpu_experiment.sh prepare     (~1 min)
#   device 2:  carry [".gpu-data"]       command: bash tools/gpu_experiment.sh run         (<= 9 min)
#
# `run` writes runs/gpu_experiment/{results.json,report.html,recon_*.png} and the log to $OUT as it goes.
# The budget (EXP_* variables below) was sized for ~8 minutes on an H100/H200 with one training seed; with the
# default two seeds (EXP_SEEDS) it needs about twice that: halve EXP_STEPS or run one seed per call (untested since
# the experiment took training seeds: no GPU was lent to that session).
set -uo pipefail
out="${OUT:-/tmp/out}"; mkdir -p "$out"
stamp() { echo "== $(date +%T) $*"; }
unpack_deno() {
  if [ ! -x /tmp/deno ]; then
    [ -f .gpu/deno.gz ] || { echo "no .gpu/deno.gz here: run the 'prepare' call (carry .gpu) first" >&2; exit 1; }
    gzip -dc .gpu/deno.gz > /tmp/deno && chmod +x /tmp/deno
  fi
  export PATH=/tmp:$PATH DENO_DIR=$PWD/.gpu/deno_dir NO_COLOR=1
}
case "${1:-}" in
  pack-data)
    # Copies the four official Fashion-MNIST files into .gpu-data/ (ignored by git) for the second call.
    src="${LAYERLOCK_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
    mkdir -p .gpu-data/fashion-mnist
    cp "$src"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz .gpu-data/fashion-mnist/
    du -sh .gpu-data | sed 's/^/packed: /'
    ;;
  prepare)
    unpack_deno
    { nvidia-smi -L; deno --version | head -1; } 2>&1 | tee "$out/env.log"
    stamp build; deno task build 2>&1 | tail -3 | tee -a "$out/env.log"
    ;;
  run)
    unpack_deno
    [ -f .gpu-data/fashion-mnist/train-images-idx3-ubyte.gz ] || {
      echo "no .gpu-data/fashion-mnist here: run 'tools/gpu_experiment.sh pack-data' and carry .gpu-data" >&2
      exit 1
    }
    export LAYERLOCK_FASHION_MNIST=$PWD/.gpu-data/fashion-mnist
    stamp build; deno task build 2>&1 | tail -1
    stamp experiment
    deno run --allow-ffi=native/build --allow-read --allow-env --allow-write=runs --allow-run=apt-get,id \
      src/cli/experiment.ts --name gpu_experiment --device cuda \
      --preset "${EXP_PRESET:-small}" --set "model.encoderDepth=${EXP_DEPTH:-12}" --seeds "${EXP_SEEDS:-0,1}" \
      --size "${EXP_SIZE:-128}" --patch "${EXP_PATCH:-16}" --mask-ratio "${EXP_MASK_RATIO:-0.9}" \
      --frames "${EXP_FRAMES:-16}" --steps "${EXP_STEPS:-1000}" --batch-size "${EXP_BATCH:-32}" \
      --train-clips "${EXP_TRAIN_CLIPS:-4096}" --test-clips "${EXP_TEST_CLIPS:-1024}" \
      --eval-every "${EXP_EVAL_EVERY:-100}" 2>&1 | tee "$out/experiment.log"
    cp runs/gpu_experiment/results.json runs/gpu_experiment/report.html runs/gpu_experiment/*.png "$out/" \
      2>/dev/null
    stamp end
    ;;
  *)
    echo "usage: tools/gpu_experiment.sh pack-data | prepare | run" >&2
    exit 2
    ;;
esac
