// CUDA: runs where a CUDA build of torch and a GPU are present (a lent GPU machine); ignored elsewhere.
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { assertClose, noLeak, SMALL_DATA, SMALL_MODEL, tempDir } from "./helpers.ts";
import { makeBatchSource } from "../src/data/source.ts";

const record = JSON.parse(Deno.readTextFileSync(new URL("../native/build/current.json", import.meta.url)));
const builtWithCuda: boolean = record.torch.cuda;
const hasCuda = torch.cuda.isAvailable();

Deno.test("a CUDA build of torch reports CUDA available (libtorch_cuda not dropped by the linker)", {
  ignore: !builtWithCuda,
}, () => {
  assert.equal(hasCuda, true, "the shim links a CUDA torch but torch::cuda::is_available() is false");
  assert.ok(torch.cuda.deviceCount() >= 1);
  assert.equal(record.cudaStats, true, "CUDA headers were not found, so memory statistics are off");
});

Deno.test("CPU build: CUDA reported unavailable, memory stats null, cuda tensors refused clearly", {
  ignore: builtWithCuda,
}, () =>
  noLeak(() => {
    assert.equal(hasCuda, false);
    assert.equal(torch.cuda.memoryStats(), null);
    assert.throws(() => torch.zeros([2], { device: "cuda" }), torch.TorchError);
  }));

const cudaTest = (name: string, fn: () => void) =>
  Deno.test({ name: `cuda: ${name}`, ignore: !hasCuda, fn: () => noLeak(fn) });

cudaTest("round trip to the device and back keeps values", () =>
  torch.scope(() => {
    const x = torch.randn([3, 5]);
    const y = x.cuda();
    assert.equal(y.device, "cuda:0");
    assertClose(y.cpu(), x.toArray() as Float32Array, { rtol: 0, atol: 0 });
  }));

cudaTest("ops on CUDA match the CPU", () =>
  torch.scope(() => {
    torch.manualSeed(1);
    const a = torch.randn([4, 16, 32]), b = torch.randn([4, 32, 8]);
    const w = torch.randn([8]), bias = torch.randn([8]);
    const cpu = torch.layerNorm(a.bmm(b).gelu(), [8], w, bias).softmax(-1);
    const gpu = torch.layerNorm(a.cuda().bmm(b.cuda()).gelu(), [8], w.cuda(), bias.cuda()).softmax(-1);
    assertClose(gpu.cpu(), cpu.toArray() as Float32Array, { rtol: 1e-3, atol: 1e-5 });
  }));

cudaTest("autocast bf16 runs matmul in bf16 and restores the previous state", () =>
  torch.scope(() => {
    const a = torch.randn([64, 64], { device: "cuda" }), b = torch.randn([64, 64], { device: "cuda" });
    const y = torch.autocast("bf16", () => a.matmul(b));
    assert.equal(y.dtype, "bf16");
    assert.equal(torch.isAutocastEnabled("cuda"), false);
    assert.equal(a.matmul(b).dtype, "f32");
    const ref = a.matmul(b);
    assertClose(y.float().cpu(), ref.cpu().toArray() as Float32Array, { rtol: 5e-2, atol: 0.5 });
  }));

cudaTest("memory statistics follow an allocation", () => {
  torch.cuda.synchronize();
  const before = torch.cuda.memoryStats()!;
  const t = torch.zeros([1024, 1024], { device: "cuda" });
  const during = torch.cuda.memoryStats()!;
  assert.ok(during.allocated >= before.allocated + 4 * 1024 * 1024, `allocated ${during.allocated}`);
  assert.ok(during.peakAllocated >= during.allocated);
  t.dispose();
  const after = torch.cuda.memoryStats()!;
  assert.equal(after.allocated, before.allocated);
  torch.cuda.emptyCache();
  torch.cuda.resetPeakMemoryStats();
});

cudaTest("fused AdamW on CUDA matches the foreach step on the CPU", () =>
  torch.scope(() => {
    torch.manualSeed(3);
    const p0 = torch.randn([10, 7]), g0 = torch.randn([10, 7]);
    const run = (device: torch.Device, impl: "fused" | "foreach") => {
      const p = p0.to({ device, copy: true }), g = g0.to({ device });
      const m = torch.zerosLike(p), v = torch.zerosLike(p);
      const s = torch.zeros([], { device });
      for (let i = 0; i < 3; i++) {
        const ran = torch.adamwStep({ params: [p], grads: [g], expAvg: [m], expAvgSq: [v], steps: [s] }, {
          lr: 1e-2,
          weightDecay: 0.05,
          impl,
        });
        assert.equal(ran, impl);
      }
      return p.cpu();
    };
    assertClose(run("cuda", "fused"), run("cpu", "foreach").toArray() as Float32Array, {
      rtol: 1e-5,
      atol: 1e-6,
    });
  }));

cudaTest("the CUDA generator's state can be saved and restored", () =>
  torch.scope(() => {
    const g = torch.getRngState("cuda");
    const a = torch.rand([4], { device: "cuda" });
    torch.setRngState(g, "cuda");
    const b = torch.rand([4], { device: "cuda" });
    assertClose(b.cpu(), a.cpu().toArray() as Float32Array, { rtol: 0, atol: 0 });
  }));

Deno.test({
  name: "cuda: a small LayerLock run trains with bf16 autocast, checkpoints and resumes",
  ignore: !hasCuda,
  fn: async () => {
    const before = torch.liveTensors();
    const cfg = torch.parseConfig({
      device: "cuda",
      model: SMALL_MODEL,
      data: SMALL_DATA,
      optim: { batchSize: 2, steps: 12, warmupSteps: 2 },
      layerlock: { pixelSteps: 4, interval: 2, maxFrozen: 3 },
      log: { every: 1, checkpointEvery: 100 },
    });
    const dir = await tempDir("cuda_");
    const quiet = () => {};
    const a = await torch.train(cfg, {
      runDir: dir,
      resume: false,
      data: makeBatchSource,
      onEvent: quiet,
      stopAfter: 6,
    });
    const b = await torch.train(cfg, { runDir: dir, resume: true, data: makeBatchSource, onEvent: quiet });
    assert.equal(b.step, 12);
    const all = [...a.losses, ...b.losses];
    assert.ok(all.every((l) => Number.isFinite(l.loss)));
    assert.equal(all[all.length - 1].frozenDepth, 3);
    const ckpt = torch.loadSafetensors(b.checkpoint!);
    assert.ok("rng.cuda" in ckpt.tensors, "the CUDA generator state is checkpointed");
    for (const t of Object.values(ckpt.tensors)) t.dispose();
    assert.equal(torch.liveTensors(), before);
    await Deno.remove(dir, { recursive: true });
  },
});
