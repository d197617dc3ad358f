/**
 * `deno task bench:dist`: data-parallel training on this machine, beside PyTorch in the same run.
 *  1. All-reduce time of our process group (Gloo through the shim) against Python's `torch.distributed` (Gloo),
 *     2 processes, the same sizes; ratio = ours / PyTorch (lower is better).
 *  2. Training steps/s of the experiment's model (ViT depth 6 on 8×64² clips, global batch 8) with 1 process
 *     (2 threads) and 2 processes (1 thread each, batch 4), with and without overlapping the all-reduce.
 *  3. LayerLock with 2 processes: gradient bytes all-reduced and ms waited per step, by frozen depth.
 * Writes runs/bench/dist.json.
 * @module
 */
import { pythonWithTorch } from "./common.ts";

const PERMS = ["--allow-ffi=native/build", "--allow-read", "--allow-env", "--allow-write=runs"];
const SIZES = [4 << 10, 256 << 10, 4 << 20, 32 << 20];
const MIN_S = Number(Deno.env.get("LL_BENCH_MIN_S") ?? "1.5");
const STEPS = Number(Deno.env.get("LL_BENCH_STEPS") ?? "120");

function port(): number {
  return 30000 + Math.floor(Math.random() * 20000);
}

async function ranks(n: number, args: string[], env: Record<string, string> = {}): Promise<string[]> {
  const p = String(port());
  const outs = await Promise.all(Array.from({ length: n }, async (_, rank) => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMS, ...args],
      env: {
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: String(n),
        LOCAL_WORLD_SIZE: String(n),
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: p,
        ...env,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    if (!r.success) throw new Error(`rank ${rank} of ${args.join(" ")} failed:\n${dec.decode(r.stderr)}`);
    return dec.decode(r.stdout);
  }));
  return outs;
}

/** Worker mode: one rank timing all-reduces (rank 0 prints {size: seconds per call}). */
async function allReduceWorker(): Promise<void> {
  const torch = await import("../mod.ts");
  const { launchEnv } = await import("../src/train/launch.ts");
  const { DataParallel } = await import("../src/train/data_parallel.ts");
  torch.setNumThreads(1);
  const dp = DataParallel.init(launchEnv()!, "cpu", { backend: "gloo" });
  const out: Record<string, number> = {};
  for (const size of SIZES) {
    const t = torch.ones([size / 4]);
    for (let i = 0; i < 3; i++) dp.group.allReduce([t]);
    // every rank makes the same number of calls: rank 0's estimate for MIN_S seconds
    const t0Probe = performance.now();
    dp.group.allReduce([t]);
    const probe = Math.max(5, Math.floor(MIN_S / Math.max((performance.now() - t0Probe) / 1000, 1e-6)));
    const n = dp.sum([dp.rank === 0 ? probe : 0])[0];
    dp.barrier();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) dp.group.allReduce([t]);
    out[size] = (performance.now() - t0) / 1000 / n;
    t.dispose();
  }
  dp.dispose();
  if (dp.rank === 0) console.log(JSON.stringify(out));
}

/** The training flags of the benchmark runs (the experiment's model and clips). */
function trainFlags(name: string, batch: number, extra: string[]): string[] {
  return [
    "src/cli/train.ts",
    "--name",
    name,
    "--steps",
    String(STEPS),
    "--warmup",
    "10",
    "--batch-size",
    String(batch),
    "--data",
    "shapes",
    "--frames",
    "8",
    "--size",
    "64",
    "--patch",
    "8",
    "--mask",
    "random",
    "--mask-ratio",
    "0.75",
    "--device",
    "cpu",
    "--set",
    "model.encoderDepth=6",
    "--set",
    "log.every=10",
    "--set",
    `log.checkpointEvery=${STEPS * 10}`,
    "--set",
    "log.floorClips=0",
    ...extra,
  ];
}

interface Record_ {
  step: number;
  stepsPerSec: number;
  frozenDepth: number;
  commBytes?: number;
  commWaitMs?: number;
}

async function trainRun(
  label: string,
  n: number,
  batch: number,
  threads: number,
  extra: string[],
): Promise<Record_[]> {
  const name = `bench_dist_${label}_${Date.now()}`;
  await ranks(n, trainFlags(name, batch, ["--set", `threads=${threads}`, ...extra]), {
    WORLD_SIZE: String(n),
  });
  const lines = Deno.readTextFileSync(`runs/${name}/metrics.jsonl`).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  Deno.removeSync(`runs/${name}`, { recursive: true });
  return lines;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function main(): Promise<void> {
  if (Deno.args[0] === "worker") return await allReduceWorker();
  const results: Record<string, unknown> = { machine: `${navigator.hardwareConcurrency} CPU threads` };

  // 1. all-reduce, ours and PyTorch's, 2 processes
  console.log("all-reduce, 2 processes, Gloo on this machine (ms per call; ratio = ours / PyTorch)");
  const ours = JSON.parse(
    (await ranks(2, ["bench/dist.ts", "worker"], { LL_BENCH_MIN_S: String(MIN_S) }))[0],
  );
  const py = await new Deno.Command(pythonWithTorch(), {
    args: ["bench/dist_ref.py", "2", String(port()), SIZES.join(","), String(MIN_S)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!py.success) throw new Error(`bench/dist_ref.py failed:\n${new TextDecoder().decode(py.stderr)}`);
  const ref = JSON.parse(new TextDecoder().decode(py.stdout).trim().split("\n").pop()!);
  const rows = SIZES.map((s) => ({
    bytes: s,
    oursMs: ours[s] * 1e3,
    torchMs: ref[s] * 1e3,
    ratio: ours[s] / ref[s],
    oursGBs: s / ours[s] / 1e9,
  }));
  for (const r of rows) {
    console.log(
      `  ${(r.bytes / 1024).toFixed(0).padStart(6)} KiB  ours ${r.oursMs.toFixed(3)} ms  torch ${
        r.torchMs.toFixed(3)
      } ms  ratio ${r.ratio.toFixed(2)}  (${r.oursGBs.toFixed(2)} GB/s)`,
    );
  }
  results.allReduce = rows;

  // 2. steps/s: 1 process × 2 threads vs 2 processes × 1 thread, global batch 8
  const sps = (rs: Record_[]) => mean(rs.slice(1).map((r) => r.stepsPerSec));
  const one = await trainRun("one", 1, 8, 2, []);
  const twoOverlap = await trainRun("two", 2, 4, 1, []);
  const twoNoOverlap = await trainRun("two_sync", 2, 4, 1, ["--set", "dist.overlap=false"]);
  const training = {
    steps: STEPS,
    oneProcess: sps(one),
    twoProcesses: sps(twoOverlap),
    twoProcessesNoOverlap: sps(twoNoOverlap),
    commWaitMs: mean(twoOverlap.slice(1).map((r) => r.commWaitMs ?? 0)),
    commWaitMsNoOverlap: mean(twoNoOverlap.slice(1).map((r) => r.commWaitMs ?? 0)),
    commBytes: twoOverlap[0].commBytes,
  };
  console.log(
    `training steps/s (global batch 8): 1 process ${training.oneProcess.toFixed(2)}; 2 processes ` +
      `${training.twoProcesses.toFixed(2)} (overlap; ${training.commWaitMs.toFixed(1)} ms/step waiting), ` +
      `${training.twoProcessesNoOverlap.toFixed(2)} (no overlap; ${
        training.commWaitMsNoOverlap.toFixed(1)
      } ms)`,
  );
  results.training = training;

  // 3. LayerLock, 2 processes: communication by frozen depth
  const q = Math.floor(STEPS / 6);
  const ll = await trainRun("layerlock", 2, 4, 1, [
    "--set",
    "layerlock.mode=layerlock",
    "--set",
    `layerlock.pixelSteps=${q}`,
    "--set",
    `layerlock.interval=${q}`,
    "--set",
    "layerlock.maxFrozen=4",
  ]);
  const byDepth = new Map<number, Record_[]>();
  for (const r of ll) byDepth.set(r.frozenDepth, [...(byDepth.get(r.frozenDepth) ?? []), r]);
  const depthRows = [...byDepth].map(([d, rs]) => ({
    frozenDepth: d,
    commMiB: (rs[rs.length - 1].commBytes ?? 0) / 2 ** 20,
    commWaitMs: mean(rs.map((r) => r.commWaitMs ?? 0)),
    stepsPerSec: mean(rs.map((r) => r.stepsPerSec)),
  }));
  console.log("layerlock, 2 processes: per step by frozen depth");
  for (const r of depthRows) {
    console.log(
      `  frozen ${r.frozenDepth}: ${r.commMiB.toFixed(2)} MiB all-reduced, ${
        r.commWaitMs.toFixed(1)
      } ms waiting, ` +
        `${r.stepsPerSec.toFixed(2)} steps/s`,
    );
  }
  results.layerlockByDepth = depthRows;
  Deno.mkdirSync("runs/bench", { recursive: true });
  Deno.writeTextFileSync("runs/bench/dist.json", JSON.stringify(results, null, 2) + "\n");
  console.log("wrote runs/bench/dist.json");
}

await main();
