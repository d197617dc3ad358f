// CUDA: runs where a CUDA build of torch and a GPU are present (a lent GPU machine); ignored elsewhere.
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { assertClose, noLeak, SMALL_DATA, SMALL_MODEL, tempDir } from "./helpers.ts";
import { makeBatchSource } from "../src/data/source.ts";
import { cudaBackend, StepGraphs } from "../src/train/step_graph.ts";
import { LatentHeads } from "../src/layerlock/heads.ts";
import { computeLosses } from "../src/layerlock/objective.ts";
import { LayerLockConfigSchema } from "../src/layerlock/schedule.ts";

const SMALL_MODEL_CFG = torch.modelConfig(torch.parseConfig({ model: SMALL_MODEL, data: SMALL_DATA }));

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

Deno.test(
  "CPU build: CUDA streams are refused with an error that says why",
  { ignore: builtWithCuda },
  () => {
    assert.throws(() => torch.CudaStream.create("cuda"), /CUDA graphs need a CUDA build/);
    assert.throws(() => torch.CudaStream.create("cpu"), /CUDA streams need a CUDA device, got cpu/);
  },
);

cudaTest(
  "the target pass on a second stream gives the losses of the pass in order (and under a graph)",
  () => {
    torch.manualSeed(0);
    const cfg = { ...SMALL_MODEL_CFG };
    const model = new torch.VideoMAE(cfg, "cuda");
    const heads = new LatentHeads("last", cfg.decoderDim, cfg.encoderDim, cfg.encoderDepth, "cuda");
    const stream = torch.CudaStream.create("cuda");
    try {
      torch.scope(() => {
        const x = torch.randn([2, 3, cfg.frames, cfg.height, cfg.width], { device: "cuda" });
        const mask = torch.makeMask("tube", 2, model.encoder.grid, 0.75, "cuda");
        const tgt = torch.noGrad(() => torch.pixelTargets(x, cfg.tubelet, cfg.patch));
        const ll = LayerLockConfigSchema.parse({ mode: "layerlock" });
        const state = {
          stage: 1,
          frozenDepth: 1,
          targetLayers: [1],
          lrFactor: 1,
          pixelWeight: 0,
          stageStart: 0,
        };
        const loss = (targetStream: torch.CudaStream | null) =>
          torch.autocast(
            "bf16",
            () => computeLosses(model, x, mask, { cfg: ll, pixelTargets: tgt, heads, state, targetStream }),
          ).total.item();
        const inOrder = loss(null), overlapped = loss(stream);
        assert.equal(overlapped, inOrder);
      });
    } finally {
      stream.dispose();
      stream.dispose();
      heads.dispose();
      model.dispose();
    }
  },
);

Deno.test("CPU build: CUDA graphs are refused with an error that says why", { ignore: builtWithCuda }, () => {
  assert.throws(() => torch.CudaGraph.create("cuda"), /CUDA graphs need a CUDA build/);
  assert.throws(() => torch.CudaGraph.create("cpu"), /CUDA graphs need a CUDA device, got cpu/);
  assert.equal(torch.liveGraphs(), 0);
});

cudaTest(
  "a CUDA graph replays its capture on refilled inputs, draws new random numbers, and frees its pool",
  () => {
    const graphsBefore = torch.liveGraphs();
    torch.scope(() => {
      const x = torch.zeros([1024], { device: "cuda" });
      const y = torch.zeros([1024], { device: "cuda" });
      const r = torch.zeros([1024], { device: "cuda" });
      const g = torch.CudaGraph.create("cuda");
      try {
        const body = () =>
          torch.scope(() => {
            y.copy_(x.mul(2).add(1));
            r.copy_(torch.rand([1024], { device: "cuda" }));
          });
        g.warmup(body);
        x.fill_(5);
        g.capture(body); // records; runs nothing
        assert.equal(g.captured, true);
        x.fill_(3);
        g.replay();
        assert.deepEqual(Array.from(y.cpu().toArray() as Float32Array).slice(0, 3), [7, 7, 7]);
        const first = Array.from(r.cpu().toArray() as Float32Array);
        g.replay();
        const second = Array.from(r.cpu().toArray() as Float32Array);
        assert.notDeepEqual(first, second, "a replay must draw new random numbers");
        assert.ok(second.every((v) => v >= 0 && v < 1));
        assert.throws(() => g.capture(body), /already been captured/);
      } finally {
        g.dispose();
        g.dispose();
      }
      assert.throws(() => g.replay(), /disposed/);
    });
    assert.equal(torch.liveGraphs(), graphsBefore);
  },
);

cudaTest("a capture that synchronises fails cleanly, and the device stays usable", () => {
  torch.scope(() => {
    const x = torch.ones([4], { device: "cuda" });
    const g = torch.CudaGraph.create("cuda");
    try {
      assert.throws(() => g.capture(() => torch.scope(() => x.sum().item())), torch.TorchError);
    } finally {
      g.dispose();
    }
    assert.equal(torch.scope(() => x.sum().item()), 4);
  });
});

cudaTest("a graph-captured training step (fixed mask) gives the eager step's weights", () => {
  const run = (graphed: boolean): Float32Array => {
    torch.manualSeed(0);
    const cfg = { ...SMALL_MODEL_CFG };
    const model = new torch.VideoMAE(cfg, "cuda");
    const opt = new torch.AdamW(model.namedParameters().map(([name, param]) => ({ name, param })), {
      lr: 1e-3,
    });
    const x = torch.randn([2, 3, cfg.frames, cfg.height, cfg.width], { device: "cuda" });
    const mask = torch.makeMask("tube", 2, model.encoder.grid, 0.75, "cuda");
    const lr = torch.zeros([], { device: "cuda" }).fill_(1e-3);
    const graphs = graphed ? new StepGraphs(cudaBackend("cuda"), 2) : null;
    const body = () => {
      torch.scope(() => {
        const target = torch.noGrad(() => torch.pixelTargets(x, cfg.tubelet, cfg.patch));
        const pred = torch.autocast("bf16", () => model.forward(x, mask.keep, mask.masked)).float();
        torch.maskedMse(pred, target, mask.masked).backward();
      });
      opt.step(lr);
      opt.zeroGrad();
    };
    try {
      for (let i = 0; i < 8; i++) graphs ? graphs.run("s", body) : body();
      if (graphs) assert.deepEqual(graphs.stats, { warmups: 2, captures: 1, replays: 6, released: 0 });
      return torch.scope(() => model.decoder.head.weight.cpu().toArray() as Float32Array);
    } finally {
      graphs?.dispose();
      for (const t of [x, lr, mask.keep, mask.masked]) t.dispose();
      opt.dispose();
      model.dispose();
    }
  };
  const eager = run(false), graphed = run(true);
  assertClose(torch.tensor(graphed), eager, { rtol: 1e-4, atol: 1e-6 });
});

Deno.test({
  name: "cuda: training with CUDA graphs (on): one capture per stage, finite losses, nothing left behind",
  ignore: !hasCuda,
  fn: async () => {
    const before = torch.liveTensors();
    const cfg = torch.parseConfig({
      device: "cuda",
      model: SMALL_MODEL,
      data: SMALL_DATA,
      optim: { batchSize: 2, steps: 24, warmupSteps: 2, clipGrad: 1 },
      layerlock: { pixelSteps: 8, interval: 8, maxFrozen: 2 },
      graphs: { mode: "on" },
      log: { every: 4, checkpointEvery: 100 },
    });
    const dir = await tempDir("cuda_graphs_");
    const records: torch.StepRecord[] = [];
    const r = await torch.train(cfg, {
      runDir: dir,
      resume: false,
      data: makeBatchSource,
      onEvent: (e) => e.kind === "log" && records.push(e.record),
    });
    assert.equal(r.step, 24);
    assert.ok(r.losses.every((l) => Number.isFinite(l.loss)));
    assert.equal(records.at(-1)!.graphCaptures, 3, "stages: pixels, h1, h2");
    assert.equal(records.reduce((a, x) => a + x.graphSteps!, 0), 24 - 3 * 3);
    assert.equal(torch.liveTensors(), before);
    assert.equal(torch.liveGraphs(), 0);
    await Deno.remove(dir, { recursive: true });
  },
});

cudaTest(
  "copyFromHost uploads through pinned staging buffers: back-to-back uploads all land intact",
  () =>
    torch.scope(() => {
      const n = 1 << 16;
      const srcs = [0, 1, 2, 3, 4].map((k) => Float32Array.from({ length: n }, (_, i) => i * 0.5 + k));
      const busy = torch.randn([2048, 2048], { device: "cuda" });
      const outs = srcs.map((s) => {
        busy.matmul(busy); // queued work the uploads must not wait for, nor overtake wrongly
        return torch.empty([n], { device: "cuda" }).copyFromHost(s);
      });
      srcs.forEach((s, k) => assert.deepEqual(outs[k].cpu().toArray(), s));
    }),
);
