// LayerLock: the schedule's properties (fast-check), the freezing invariants, the latent targets and the two
// encoder passes, every mode through the trainer, and resumption mid-schedule.
import assert from "node:assert/strict";
import fc from "fast-check";
import * as torch from "../mod.ts";
import { parseConfig, type TrainConfig } from "../src/config.ts";
import { batchToTensor } from "../src/data/clip_tensor.ts";
import { MovingShapes } from "../src/data/moving_shapes.ts";
import { floorClips, makeBatchSource } from "../src/data/source.ts";
import { Freezer } from "../src/layerlock/freeze.ts";
import { LatentHeads } from "../src/layerlock/heads.ts";
import { computeLosses, encodeVisible, latentTargets } from "../src/layerlock/objective.ts";
import {
  fixedStageStarts,
  type LayerLockConfig,
  LayerLockConfigSchema,
  type Mode,
  resolveSchedule,
  scheduleAt,
  scheduleFrom,
} from "../src/layerlock/schedule.ts";
import { disposeMask, gatherTokens, makeMask } from "../src/models/masking.ts";
import { pixelTargets } from "../src/models/targets.ts";
import { VideoMAE } from "../src/models/video_mae.ts";
import { train } from "../src/train/trainer.ts";
import { modelConfig } from "../src/config.ts";
import type { TrainEvent } from "../src/train/events.ts";
import { noLeak, SMALL_DATA, SMALL_MODEL, tempDir } from "./helpers.ts";

// ------------------------------------------------------------------------------ the schedule (pure)

const llConfig = fc.record({
  mode: fc.constantFrom<Mode>("mae", "mae-freeze", "layerlock", "latent-unfrozen"),
  pixelSteps: fc.integer({ min: 0, max: 200 }),
  interval: fc.integer({ min: 1, max: 60 }),
  layersPerStage: fc.integer({ min: 1, max: 4 }),
  maxFrozenFrac: fc.double({ min: 0.05, max: 1, noNaN: true }),
  target: fc.constantFrom<"last" | "all">("last", "all"),
  miniWarmupSteps: fc.integer({ min: 0, max: 30 }),
});

type LLArgs = typeof llConfig extends fc.Arbitrary<infer T> ? T : never;

function resolved(depth: number, c: LLArgs, steps = 1000) {
  const maxFrozen = Math.max(1, Math.round(c.maxFrozenFrac * depth));
  const cfg: LayerLockConfig = LayerLockConfigSchema.parse({
    mode: c.mode,
    pixelSteps: c.pixelSteps,
    interval: c.interval,
    layersPerStage: c.layersPerStage,
    maxFrozen,
    target: c.target,
    miniWarmupSteps: c.miniWarmupSteps,
  });
  return resolveSchedule(cfg, depth, steps);
}

Deno.test("schedule: frozen depth never decreases and never exceeds maxFrozen; stages change only at boundaries", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 48 }), llConfig, (depth, c) => {
      const s = resolved(depth, c);
      let prev = scheduleAt(s, 0);
      for (let step = 1; step < 700; step++) {
        const st = scheduleAt(s, step);
        assert.ok(st.frozenDepth >= prev.frozenDepth, `depth decreased at ${step}`);
        assert.ok(st.frozenDepth <= s.maxFrozen);
        if (st.stage !== prev.stage) {
          // a stage begins exactly at pixelSteps + k·interval
          assert.equal((step - s.pixelSteps) % s.interval, 0, `stage changed at ${step}`);
          assert.equal(st.stageStart, step);
          assert.equal(st.frozenDepth, Math.min(st.stage * s.layersPerStage, s.maxFrozen));
        }
        if (c.mode === "mae" || c.mode === "latent-unfrozen" || step < s.pixelSteps) {
          assert.equal(st.frozenDepth, 0);
        }
        prev = st;
      }
      const end = scheduleAt(s, 100000);
      if (c.mode === "mae-freeze" || c.mode === "layerlock") assert.equal(end.frozenDepth, s.maxFrozen);
    }),
    { numRuns: 150 },
  );
});

Deno.test("schedule: the target is the last frozen block (or all of them), pixels before the first freeze", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 48 }),
      llConfig,
      fc.integer({ min: 0, max: 3000 }),
      (depth, c, step) => {
        const s = resolved(depth, c);
        const st = scheduleAt(s, step);
        if (c.mode !== "layerlock" || st.frozenDepth === 0) {
          assert.deepEqual(st.targetLayers, []);
        } else if (c.target === "last") {
          assert.deepEqual(st.targetLayers, [st.frozenDepth]);
        } else {
          assert.deepEqual(st.targetLayers, Array.from({ length: st.frozenDepth }, (_, i) => i + 1));
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("schedule: the learning-rate factor follows the mini-warmup at each switch", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 48 }),
      llConfig,
      fc.integer({ min: 0, max: 3000 }),
      (depth, c, step) => {
        const s = resolved(depth, c);
        const st = scheduleAt(s, step);
        const since = step - st.stageStart;
        const expected =
          c.mode === "layerlock" && st.stage > 0 && s.miniWarmupSteps > 0 && since < s.miniWarmupSteps
            ? (since + 1) / s.miniWarmupSteps
            : 1;
        assert.equal(st.lrFactor, expected);
        assert.ok(st.lrFactor > 0 && st.lrFactor <= 1);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("schedule: derived defaults follow the ViT-G proportions and bad maxFrozen is refused", () => {
  const s = resolveSchedule(LayerLockConfigSchema.parse({}), 48, 300_000);
  assert.equal(s.maxFrozen, 32);
  assert.equal(s.pixelSteps, 100_000);
  assert.equal(s.interval, Math.floor(200_000 / 32));
  assert.equal(scheduleAt(s, 300_000 - 1).frozenDepth, 32);
  assert.throws(() => resolveSchedule(LayerLockConfigSchema.parse({ maxFrozen: 13 }), 12, 100), /maxFrozen/);
});

// ------------------------------------------------------------------------------ mechanics, on a small model

const SMALL: TrainConfig = parseConfig({
  model: SMALL_MODEL,
  data: SMALL_DATA,
  optim: { batchSize: 2, steps: 24, warmupSteps: 2, lr: 3e-3 },
  layerlock: { pixelSteps: 6, interval: 6, maxFrozen: 3 },
  log: { every: 1, checkpointEvery: 1000 },
});

function setup(ll: Partial<LayerLockConfig> = {}) {
  torch.manualSeed(7);
  const cfg = { ...SMALL, layerlock: LayerLockConfigSchema.parse({ ...SMALL.layerlock, ...ll }) };
  const mcfg = modelConfig(cfg);
  const model = new VideoMAE(mcfg);
  const heads = new LatentHeads(cfg.layerlock.target, mcfg.decoderDim, mcfg.encoderDim, mcfg.encoderDepth);
  const params = [
    ...model.namedParameters().map(([name, param]) => ({ name, param })),
    ...heads.namedParameters().map(([name, param]) => ({ name: `heads.${name}`, param })),
  ];
  const opt = new torch.AdamW(params, { lr: 3e-3, weightDecay: 0.5 }); // large decay: any update would show
  const x = batchToTensor(new MovingShapes({ frames: 4, size: 16, seed: 3 }).batch([0, 1]));
  const dispose = () => {
    x.dispose();
    opt.dispose();
    heads.dispose();
    model.dispose();
  };
  return { cfg, mcfg, model, heads, opt, x, dispose };
}

Deno.test("freezing: frozen parameters stay bit-identical through further steps, get no grad, and leave the optimizer", () =>
  noLeak(() => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), (depth, further) => {
        const s = setup();
        const freezer = new Freezer(s.model, s.opt, "with-first");
        const step = (d: number) =>
          torch.scope(() => {
            const mask = makeMask("tube", 2, s.model.encoder.grid, 0.75);
            const tgt = torch.noGrad(() => pixelTargets(s.x, 2, 8, false));
            const st = {
              stage: d,
              frozenDepth: d,
              targetLayers: d ? [d] : [],
              lrFactor: 1,
              pixelWeight: d ? 0 : 1,
              stageStart: 0,
            };
            const l = computeLosses(s.model, s.x, mask, {
              cfg: s.cfg.layerlock,
              pixelTargets: tgt,
              heads: s.heads,
              state: st,
            });
            l.total.backward();
            disposeMask(mask);
            return s.model.namedParameters().map(([n, p]) => [n, p.requiresGrad, p.grad !== null] as const);
          });
        for (let i = 0; i < 2; i++) { // some updates first, so optimizer state exists for every parameter
          step(0);
          s.opt.step();
          s.opt.zeroGrad();
        }
        const names = freezer.freezeTo(depth);
        assert.ok(names.includes("encoder.patch_embed.proj.weight"));
        for (const n of names) assert.ok(!s.opt.stateNames.includes(n), `${n} kept optimizer state`);
        const frozen = s.model.namedParameters().filter(([n]) => names.includes(n));
        const snapshot = frozen.map(([, p]) => p.toBytes());
        for (let i = 0; i < further; i++) {
          const grads = step(depth);
          for (const [n, req, hasGrad] of grads) {
            if (names.includes(n)) {
              assert.equal(req, false, `${n} still requires grad`);
              assert.equal(hasGrad, false, `${n} received a gradient`);
            } else if (n !== "decoder.head.weight" && n !== "decoder.head.bias") {
              // the pixel head is unused once the target is latent; everything else trains
              assert.equal(hasGrad, true, `trainable ${n} received no gradient`);
            }
          }
          s.opt.step();
          s.opt.zeroGrad();
        }
        frozen.forEach(([n, p], i) =>
          assert.deepEqual(p.toBytes(), snapshot[i], `${n} changed after freezing`)
        );
        s.dispose();
      }),
      { numRuns: 6 },
    );
  }));

Deno.test("latent targets equal the frozen prefix's output on the full clip, computed separately, and carry no gradient", () =>
  noLeak(() => {
    const s = setup();
    torch.scope(() => {
      for (const d of [1, 2, 3]) {
        const [t] = latentTargets(s.model, s.x, [d], "layernorm");
        assert.equal(t.requiresGrad, false);
        assert.equal(t.hasGradFn, false);
        const manual = torch.noGrad(() => {
          let h = s.model.encoder.embed(s.x);
          for (let i = 0; i < d; i++) h = s.model.encoder.blocks.items[i].forward(h);
          return torch.layerNorm(h, [48], null, null, 1e-6);
        });
        assert.deepEqual(t.toArray(), manual.toArray());
        const [raw] = latentTargets(s.model, s.x, [d], "none");
        assert.notDeepEqual(raw.toArray(), t.toArray());
      }
      const all = latentTargets(s.model, s.x, [1, 2, 3], "none");
      assert.equal(all.length, 3);
    });
    s.dispose();
  }));

Deno.test("the encoder's input and the latent targets are two passes: the prefix sees only visible tokens", () =>
  noLeak(() => {
    const s = setup();
    torch.scope(() => {
      const mask = makeMask("tube", 2, s.model.encoder.grid, 0.75);
      const d = 2;
      // the visible pass: prefix over visible tokens only, with no graph
      const prefixVisible = torch.noGrad(() =>
        s.model.encoder.runBlocks(gatherTokens(s.model.encoder.embed(s.x), mask.keep), 0, d)
      );
      // the full pass, then picking the visible rows: attention has mixed in the masked tokens
      const [fullRows] = latentTargets(s.model, s.x, [d], "none");
      const leaked = gatherTokens(fullRows, mask.keep);
      const a = prefixVisible.toArray() as Float32Array, b = leaked.toArray() as Float32Array;
      const maxDiff = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
      assert.ok(maxDiff > 1e-3, "the full-sequence pass equals the visible pass: masked content would leak");
      // encodeVisible runs exactly the visible pass, and builds no graph before block d
      const freezer = new Freezer(s.model, s.opt, "with-first");
      freezer.freezeTo(d);
      const enc = encodeVisible(s.model, s.x, mask.keep, d, "with-first");
      const expected = s.model.encoder.norm.forward(s.model.encoder.runBlocks(prefixVisible, d));
      assert.deepEqual(enc.toArray(), expected.toArray());
      assert.equal(prefixVisible.hasGradFn, false);
      assert.equal(enc.hasGradFn, true);
      disposeMask(mask);
    });
    s.dispose();
  }));

// ------------------------------------------------------------------------------ the modes, through the trainer

const tempRun = () => tempDir("ll_");
const quiet = () => {};
/** Held-out clips for the convergence trigger (no loss floors: log.floorClips is left at its default here). */
const heldOut = (cfg: TrainConfig) => ({ floorClips: (n: number) => floorClips(cfg, n) });

async function runMode(
  mode: Mode,
  extra: Partial<LayerLockConfig> = {},
  steps = 24,
  device: TrainConfig["device"] = "auto",
  lr = SMALL.optim.lr,
) {
  const dir = await tempRun();
  const cfg: TrainConfig = {
    ...SMALL,
    device,
    optim: { ...SMALL.optim, steps, lr },
    layerlock: LayerLockConfigSchema.parse({ ...SMALL.layerlock, mode, ...extra }),
  };
  const r = await train(cfg, {
    runDir: dir,
    resume: false,
    data: makeBatchSource,
    onEvent: quiet,
    ...heldOut(cfg),
  });
  const recs = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  return { r, recs, dir, cfg };
}

Deno.test("the trainer's events: a log record per step equal to metrics.jsonl, a stage event at each stage start, checkpoints, the end", async () => {
  const dir = await tempRun();
  const cfg: TrainConfig = {
    ...SMALL,
    log: { ...SMALL.log, checkpointEvery: 10 },
    layerlock: LayerLockConfigSchema.parse({ ...SMALL.layerlock, mode: "layerlock" }),
  };
  const events: TrainEvent[] = [];
  const r = await train(cfg, {
    runDir: dir,
    resume: false,
    data: makeBatchSource,
    onEvent: (e) => events.push(e),
  });
  const recs = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  const logs = events.filter((e) => e.kind === "log");
  assert.deepEqual(logs.map((e) => JSON.parse(JSON.stringify(e.record))), recs);
  assert.ok(logs.every((e) => e.totalSteps === 24 && Number.isFinite(e.eta)));
  // pixels for 6 steps, then a block every 6 up to 3: stages begin at steps 6, 12, 18
  const stages = events.filter((e) => e.kind === "stage");
  assert.deepEqual(stages.map((e) => [e.step, e.frozenDepth, e.target]), [[6, 1, "h1"], [12, 2, "h2"], [
    18,
    3,
    "h3",
  ]]);
  const ckpts = events.filter((e) => e.kind === "checkpoint");
  assert.deepEqual(ckpts.map((e) => e.step), [10, 20, 24]);
  const last = events[events.length - 1];
  assert.deepEqual(last, { kind: "end", step: 24, interrupted: false, checkpoint: r.checkpoint });
  assert.equal(ckpts[2].kind === "checkpoint" && ckpts[2].path, r.checkpoint);
});

Deno.test("every mode trains and logs its frozen depth, target and loss terms", async () => {
  const before = torch.liveTensors();
  for (const mode of ["mae", "mae-freeze", "layerlock", "latent-unfrozen"] as const) {
    const { recs, dir } = await runMode(mode);
    assert.equal(recs.length, 24);
    for (const r of recs) {
      assert.ok(Number.isFinite(r.loss), `${mode}: loss ${r.loss}`);
      for (const k of ["frozenDepth", "target", "pixelLoss", "latentLoss", "lr", "time"]) {
        assert.ok(k in r, k);
      }
    }
    const last = recs[recs.length - 1];
    if (mode === "mae") {
      assert.ok(recs.every((r) => r.frozenDepth === 0 && r.target === "pixels" && r.latentLoss === null));
    } else if (mode === "mae-freeze") {
      assert.equal(last.frozenDepth, 3);
      assert.ok(recs.every((r) => r.target === "pixels" && r.latentLoss === null));
    } else if (mode === "layerlock") {
      assert.equal(last.frozenDepth, 3);
      assert.equal(last.target, "h3");
      assert.equal(last.pixelLoss, null);
      assert.ok(last.latentLoss > 0);
      // depth 1 from step 6 (0-based) on: the record of step 7 is the first with a frozen block
      assert.deepEqual(
        recs.map((r) => r.frozenDepth),
        recs.map((r) => Math.min(3, Math.max(0, Math.floor((r.step - 1 - 6) / 6) + 1))),
      );
    } else {
      assert.ok(recs.every((r) => r.frozenDepth === 0 && r.target === "pixels+h2"));
      assert.ok(recs.every((r) => r.pixelLoss > 0 && r.latentLoss !== null));
    }
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(torch.liveTensors(), before);
});

Deno.test("live tensors are steady within a stage and never grow across stages", async () => {
  const { recs, dir } = await runMode("layerlock", { target: "all" });
  const first = recs[0].liveTensors;
  for (let i = 1; i < recs.length; i++) {
    assert.ok(recs[i].liveTensors <= first, `step ${recs[i].step}: ${recs[i].liveTensors} > ${first}`);
    if (recs[i].frozenDepth === recs[i - 1].frozenDepth && recs[i - 1].target === recs[i].target) {
      assert.equal(recs[i].liveTensors, recs[i - 1].liveTensors, `step ${recs[i].step}`);
    }
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("save/resume at a random step reproduces the uninterrupted run's frozen set, target and losses (CPU)", async () => {
  const straight = await runMode("layerlock", {}, 20, "cpu");
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 19 }), async (k) => {
      const dir = await tempRun();
      const a = await train(straight.cfg, {
        runDir: dir,
        resume: false,
        data: makeBatchSource,
        onEvent: quiet,
        stopAfter: k,
        ...heldOut(straight.cfg),
      });
      const b = await train(straight.cfg, {
        runDir: dir,
        resume: true,
        data: makeBatchSource,
        onEvent: quiet,
        ...heldOut(straight.cfg),
      });
      const got = [...a.losses, ...b.losses];
      assert.deepEqual(got.map((l) => l.frozenDepth), straight.r.losses.map((l) => l.frozenDepth));
      assert.deepEqual(
        got.map((l) => l.loss),
        straight.r.losses.map((l) => l.loss),
        `resumed after ${k} steps`,
      );
      await Deno.remove(dir, { recursive: true });
    }),
    { numRuns: 3 },
  );
  await Deno.remove(straight.dir, { recursive: true });
});

// ------------------------------------------------------------------------------ the convergence trigger

Deno.test("scheduleFrom: stages begin at the given steps; the fixed schedule is the special case", () => {
  const s = resolveSchedule(LayerLockConfigSchema.parse({ mode: "layerlock", maxFrozen: 3 }), 4, 600);
  for (let step = 0; step < 600; step += 7) {
    assert.deepEqual(scheduleFrom(s, step, fixedStageStarts(s)), scheduleAt(s, step));
  }
  const starts = [100, 250];
  assert.equal(scheduleFrom(s, 99, starts).frozenDepth, 0);
  assert.deepEqual(scheduleFrom(s, 100, starts), {
    stage: 1,
    frozenDepth: 1,
    targetLayers: [1],
    lrFactor: 1 / s.miniWarmupSteps,
    pixelWeight: 0,
    stageStart: 100,
  });
  assert.deepEqual([scheduleFrom(s, 260, starts).frozenDepth, scheduleFrom(s, 260, starts).stageStart], [
    2,
    250,
  ]);
  assert.equal(scheduleFrom(s, 599, [1, 2, 3, 4, 5]).frozenDepth, 3, "never more than maxFrozen");
});

Deno.test("convergence trigger: at lr 0 each block freezes at its second check (CKA 1), one stage at a time", async () => {
  const before = torch.liveTensors();
  const extra = { trigger: "convergence" as const, convergenceEvery: 2, convergenceClips: 4 };
  const { recs, dir } = await runMode("layerlock", extra, 24, "cpu", 0);
  // checks at 6, 8, 10, ...: block 1 is measured at 6 and 8 (CKA 1) → stage 1 at step 8; block 2 at 10, 12 → 12
  const depthAt = (step: number) => recs.find((r) => r.step === step)!.frozenDepth; // after step-1 ran
  assert.deepEqual([depthAt(8), depthAt(9), depthAt(12), depthAt(13), depthAt(17)], [0, 1, 1, 2, 3]);
  const cka1 = recs.map((r) => r.convergenceCka).filter((c) => c !== null);
  assert.ok(cka1.length > 0 && cka1.every((c) => Math.abs(c - 1) < 1e-6), `CKAs ${cka1}`);
  await Deno.remove(dir, { recursive: true });
  // training moves the blocks: with a threshold of 1 nothing ever freezes, and the CKA is logged
  const moving = await runMode("layerlock", { ...extra, convergenceCka: 1 }, 16, "cpu");
  assert.ok(moving.recs.every((r) => r.frozenDepth === 0));
  const ckas = moving.recs.map((r) => r.convergenceCka).filter((c) => c !== null);
  assert.ok(ckas.length > 0 && ckas.every((c) => c > 0 && c < 1), `CKAs ${ckas}`);
  await Deno.remove(moving.dir, { recursive: true });
  assert.equal(torch.liveTensors(), before);
});

Deno.test("convergence trigger: a resumed run repeats the uninterrupted run's freezes and losses (CPU)", async () => {
  const extra = {
    trigger: "convergence" as const,
    convergenceEvery: 2,
    convergenceClips: 4,
    convergenceCka: 0.9,
  };
  const straight = await runMode("layerlock", extra, 20, "cpu");
  const depths = straight.recs.map((r) => r.frozenDepth);
  assert.ok(depths[depths.length - 1] > 0, `something froze: ${depths}`);
  for (const k of [7, 13]) {
    const dir = await tempRun();
    const o = { runDir: dir, data: makeBatchSource, onEvent: quiet, ...heldOut(straight.cfg) };
    const a = await train(straight.cfg, { ...o, resume: false, stopAfter: k });
    const b = await train(straight.cfg, { ...o, resume: true });
    const got = [...a.losses, ...b.losses];
    assert.deepEqual(got.map((l) => l.frozenDepth), depths, `resumed after ${k}`);
    assert.deepEqual(got.map((l) => l.loss), straight.r.losses.map((l) => l.loss), `resumed after ${k}`);
    await Deno.remove(dir, { recursive: true });
  }
  await Deno.remove(straight.dir, { recursive: true });
});
