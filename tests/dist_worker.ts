/**
 * One rank of the multi-process tests of tests/dist_test.ts: joins the job its environment describes (RANK,
 * WORLD_SIZE, MASTER_ADDR, MASTER_PORT, as torchrun sets them), runs the scenario named by its argument and
 * prints one JSON line of what it observed; the test checks the numbers against values it computes itself.
 * @module
 */
import * as torch from "../mod.ts";
import { distLive, GradReducer } from "../src/torch/dist.ts";
import { launchEnv } from "../src/train/launch.ts";
import { DataParallel } from "../src/train/data_parallel.ts";

const env = launchEnv();
if (!env) throw new Error("dist_worker: WORLD_SIZE is not set");
const { rank, worldSize } = env;
const scenario = Deno.args[0];
const timeoutMs = Number(Deno.env.get("LL_TEST_TIMEOUT_MS") ?? "60000");
const liveBefore = torch.liveTensors();
const out: Record<string, unknown> = { rank };
const arr = (t: torch.Tensor) => Array.from(t.toArray() as Float32Array, Number);
/** A parameter's gradient as numbers (the handle `grad` returns is freed). */
const gradOf = (p: torch.Tensor) => {
  const g = p.grad!;
  try {
    return arr(g);
  } finally {
    g.dispose();
  }
};

const dp = DataParallel.init(env, "cpu", { timeoutMs, backend: "gloo" });
const g = dp.group;

if (scenario === "collectives") {
  // every rank contributes rank-dependent values; the test knows what the sums must be
  torch.scope(() => {
    const a = torch.tensor([rank + 1, 10 * (rank + 1), -rank]);
    const b = torch.tensor([[rank, 2], [3, 4 * rank]]);
    g.allReduce([a, b], "sum");
    out.sum = [arr(a), arr(b)];
    const c = torch.tensor([rank + 1, 2 * rank]);
    g.allReduce([c], "avg");
    out.avg = arr(c);
    const d = torch.tensor([rank, -rank]);
    g.allReduce([d], "max");
    out.max = arr(d);
    const e = torch.tensor([rank * 7 + 1, rank * 7 + 2]);
    g.broadcast([e], worldSize - 1);
    out.broadcast = arr(e);
    const gathered = torch.zeros([worldSize * 2]);
    g.allGather(gathered, torch.tensor([rank, rank + 0.5]));
    out.allGather = arr(gathered);
    const shard = torch.zeros([2]);
    g.reduceScatter(shard, torch.arange(0, worldSize * 2, 1, { dtype: "f32" }).mul(rank + 1));
    out.reduceScatter = arr(shard);
    g.barrier();
  });
  out.bytes = g.bytes;
  // the store: every rank adds; then each reads what rank 0 set
  dp.store.add("count", rank + 1);
  if (rank === 0) dp.store.set("greeting", "hello from rank 0");
  out.greeting = dp.store.get("greeting");
  dp.barrier();
  out.count = dp.store.add("count", 0);
  // errors are TorchErrors naming the operation, never crashes
  torch.scope(() => {
    try {
      g.allGather(torch.zeros([3]), torch.zeros([2]));
    } catch (e) {
      out.badShape = (e as Error).message;
    }
  });
} else if (scenario === "reducer") {
  // w (3), b (2), frozen (2): loss = (rank+1) · (Σ w·x + Σ b) with x = [1, 2, 3], so the gradient of w on rank r
  // is (r+1)·x and of b is (r+1)·1; after the reducer each is the mean over the ranks.
  const overlap = Deno.args[1] !== "no-overlap";
  const w = torch.zeros([3]).requiresGrad_(true);
  const b = torch.zeros([2]).requiresGrad_(true);
  const frozen = torch.zeros([2]).requiresGrad_(true);
  const step = (params: torch.Tensor[]) => {
    dp.prepare(params);
    torch.scope(() => {
      const x = torch.tensor([1, 2, 3]);
      w.mul(x).sum().add(b.sum()).add(frozen.requiresGrad ? frozen.sum() : torch.zeros([])).mul(rank + 1)
        .backward();
    });
    return dp.finish();
  };
  dp.broadcastParameters([w, b, frozen]);
  // bucket of 8 bytes: w (12 bytes) alone, b alone, frozen alone -> 3 buckets
  const small = new GradReducer(g, [w, b, frozen], { bucketBytes: 8, overlap });
  torch.scope(() =>
    w.mul(torch.tensor([1, 2, 3])).sum().add(b.sum()).add(frozen.sum()).mul(rank + 1).backward()
  );
  const r0 = small.finish();
  out.smallBuckets = r0.buckets;
  out.gradW = gradOf(w);
  out.gradB = gradOf(b);
  small.dispose();
  for (const p of [w, b, frozen]) p.zeroGrad();
  const r1 = step([w, b, frozen]);
  out.allBytes = r1.bytes;
  out.allBuckets = r1.buckets;
  for (const p of [w, b, frozen]) p.zeroGrad();
  frozen.requiresGrad_(false);
  const r2 = step([w, b]);
  out.frozenBytes = r2.bytes;
  out.gradW2 = gradOf(w);
  out.rebuilds = dp.rebuilds;
  // a parameter that gets no gradient on this step keeps none (its bucket still completes)
  for (const p of [w, b]) p.zeroGrad();
  dp.prepare([w, b]);
  torch.scope(() => w.sum().mul(rank + 1).backward());
  dp.finish();
  const bGrad = b.grad;
  out.unusedGradDefined = bGrad !== null;
  bGrad?.dispose();
  out.gradW3 = gradOf(w);
  for (const p of [w, b, frozen]) p.dispose();
} else if (scenario === "die") {
  // rank 1 leaves without a word; the others must fail within the timeout, naming the collective
  if (rank === 1) Deno.exit(3);
  const t0 = performance.now();
  try {
    torch.scope(() => {
      for (let i = 0; i < 3; i++) g.allReduce([torch.ones([4])]);
    });
    out.error = null;
  } catch (e) {
    out.error = (e as Error).message;
  }
  out.seconds = (performance.now() - t0) / 1000;
} else if (scenario === "hang") {
  // rank 1 stops answering (alive, but never joins the collective); rank 0 must time out and name it
  if (rank === 1) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
  const t0 = performance.now();
  try {
    torch.scope(() => g.allReduce([torch.ones([4])]));
    out.error = null;
  } catch (e) {
    out.error = (e as Error).message;
  }
  out.seconds = (performance.now() - t0) / 1000;
  out.who = dp.whoStopped(1000);
  console.error("rank 0 done");
} else {
  throw new Error(`dist_worker: unknown scenario ${scenario}`);
}

dp.dispose();
out.distLive = distLive();
out.liveTensorsReturned = torch.liveTensors() === liveBefore;
console.log(JSON.stringify(out));
