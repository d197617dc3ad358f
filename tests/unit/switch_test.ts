/**
 * LayerLock's target switch: the learning-rate shapes (`optim.schedule`, hand-computed), the pixel fade
 * (`layerlock.pixelFade`, hand-computed), the ridge fit of a head in closed form (`layerlock.headInit: "ridge"`,
 * against exact linear data and against the mean predictor it contains), the per-stage verdicts (hand-computed
 * records) and their reports, and trainer runs with every option.
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../../mod.ts";
import { parseConfig, type TrainConfig } from "../../src/config.ts";
import { batchToTensor } from "../../src/data/clip_tensor.ts";
import { MovingShapes } from "../../src/data/moving_shapes.ts";
import { makeBatchSource } from "../../src/data/source.ts";
import { LatentHeads } from "../../src/layerlock/heads.ts";
import { encodeVisible, latentTargets } from "../../src/layerlock/objective.ts";
import { fitHeads, ridgeStats } from "../../src/layerlock/head_fit.ts";
import { formatStage, learningVerdict, StageTracker, stageVerdicts } from "../../src/layerlock/learning.ts";
import { choleskySolve, ridgeFit } from "../../src/layerlock/ridge.ts";
import { LayerLockConfigSchema, resolveSchedule, scheduleAt } from "../../src/layerlock/schedule.ts";
import { disposeMask, gatherTokens, makeMask } from "../../src/models/masking.ts";
import { VideoMAE } from "../../src/models/video_mae.ts";
import { lrSchedule } from "../../src/optim/schedule.ts";
import { formatEvent } from "../../src/train/events.ts";
import { train } from "../../src/train/trainer.ts";
import { modelConfig } from "../../src/config.ts";
import { noLeak, SMALL_DATA, SMALL_MODEL, tempDir, trainCollecting } from "../helpers.ts";

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

// ------------------------------------------------------------------------------ learning-rate shapes

Deno.test("lrSchedule: constant and warmup–stable–decay, hand-computed; cosine is warmupCosine", () => {
  const base = { baseLr: 1e-3, minLr: 1e-5, warmupSteps: 10, totalSteps: 110 };
  const constant = lrSchedule({ ...base, kind: "constant" });
  assert.deepEqual([0, 5, 10, 60, 109, 500].map(constant), [0, 5e-4, 1e-3, 1e-3, 1e-3, 1e-3]);
  const wsd = lrSchedule({ ...base, kind: "wsd", decaySteps: 20 });
  assert.deepEqual([0, 5, 10, 89, 90].map(wsd), [0, 5e-4, 1e-3, 1e-3, 1e-3]);
  close(wsd(100), 1e-3 + (1e-5 - 1e-3) * 10 / 20); // half-way down the linear decay
  close(wsd(109), 1e-3 + (1e-5 - 1e-3) * 19 / 20);
  assert.equal(wsd(110), 1e-5);
  assert.equal(lrSchedule({ ...base, kind: "wsd" })(88), 1e-3, "default decay: the last fifth (22 steps)");
  close(lrSchedule({ ...base, kind: "wsd" })(99), 1e-3 + (1e-5 - 1e-3) * 11 / 22);
  const cosine = lrSchedule({ ...base, kind: "cosine" });
  close(cosine(60), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + Math.cos(Math.PI * 50 / 100)));
  assert.throws(
    () => lrSchedule({ ...base, kind: "wsd", decaySteps: 101 }),
    /decaySteps must be an integer in 1\.\.100/,
  );
  assert.throws(() => lrSchedule({ ...base, kind: "constant", totalSteps: 10 }), /totalSteps/);
});

Deno.test("optim.schedule and decayFraction are validated, and the trainer follows them", async () => {
  assert.throws(() => parseConfig({ optim: { schedule: "step" } }), /optim\.schedule/);
  assert.throws(() => parseConfig({ optim: { decayFraction: 1 } }), /optim\.decayFraction/);
  const cfg = parseConfig({
    model: SMALL_MODEL,
    data: SMALL_DATA,
    optim: {
      batchSize: 2,
      steps: 20,
      warmupSteps: 4,
      lr: 1e-3,
      minLr: 0,
      schedule: "wsd",
      decayFraction: 0.25,
    },
    layerlock: { mode: "mae" },
    log: { every: 1, checkpointEvery: 1000, floorClips: 0 },
  });
  const dir = await tempDir("wsd_");
  const r = await train(cfg, { runDir: dir, resume: false, data: makeBatchSource, onEvent: () => {} });
  const lrs = Deno.readTextFileSync(`${dir}/metrics.jsonl`).trim().split("\n").map((l) => JSON.parse(l).lr);
  // the record of step s holds the lr of step s - 1 (0-based): warmup 0..3, stable 4..14, decay 15..19 to 0
  assert.equal(r.step, 20);
  close(lrs[1], 1e-3 * 1 / 4, 1e-15);
  assert.equal(lrs[10], 1e-3);
  assert.equal(lrs[15], 1e-3);
  close(lrs[19], 1e-3 * (1 - 4 / 5), 1e-15);
});

// ------------------------------------------------------------------------------ the pixel fade

Deno.test("schedule: the pixel weight is 1 on pixels, kept, faded linearly over pixelFade steps, or 0", () => {
  const at = (ll: Record<string, unknown>, step: number) =>
    scheduleAt(
      resolveSchedule(
        LayerLockConfigSchema.parse({ pixelSteps: 10, interval: 20, maxFrozen: 2, ...ll }),
        4,
        100,
      ),
      step,
    ).pixelWeight;
  assert.deepEqual([0, 9, 10, 30].map((s) => at({}, s)), [1, 1, 0, 0]);
  assert.deepEqual([9, 10, 15, 19, 20, 30, 35, 40].map((s) => at({ pixelFade: 10, pixelWeight: 2 }, s)), [
    1,
    2,
    2 * (1 - 5 / 10),
    2 * (1 - 9 / 10),
    0,
    2, // the second switch fades again
    1,
    0,
  ]);
  assert.deepEqual([10, 40].map((s) => at({ keepPixelLoss: true, pixelWeight: 0.5, pixelFade: 10 }, s)), [
    0.5,
    0.5,
  ]);
  assert.deepEqual([10, 40].map((s) => at({ mode: "mae-freeze" }, s)), [1, 1], "mae-freeze trains on pixels");
  assert.equal(
    at({ mode: "latent-unfrozen", pixelWeight: 0 }, 50),
    0,
    "latent-unfrozen: pixelWeight throughout",
  );
  // the configuration as written before headInit: reinitHead is still read
  assert.equal(parseConfig({ layerlock: { reinitHead: true } }).layerlock.headInit, "reinit");
  assert.equal(parseConfig({ layerlock: { reinitHead: false } }).layerlock.headInit, "continue");
  assert.throws(() => parseConfig({ layerlock: { headInit: "random" } }), /layerlock\.headInit/);
});

// ------------------------------------------------------------------------------ ridge regression

/** Sufficient statistics of rows xs [n, d] and ys [n, k]. */
function stats(xs: number[][], ys: number[][]) {
  const n = xs.length, d = xs[0].length, k = ys[0].length;
  const sumX = new Float64Array(d), sumY = new Float64Array(k);
  const xtx = new Float64Array(d * d), xty = new Float64Array(d * k);
  xs.forEach((x, r) => {
    for (let i = 0; i < d; i++) {
      sumX[i] += x[i];
      for (let j = 0; j < d; j++) xtx[i * d + j] += x[i] * x[j];
      for (let j = 0; j < k; j++) xty[i * k + j] += x[i] * ys[r][j];
    }
    for (let j = 0; j < k; j++) sumY[j] += ys[r][j];
  });
  return { n, d, k, sumX, sumY, xtx, xty };
}

Deno.test("choleskySolve and ridgeFit: hand-computed, exact on linear data, shrunk by λ", () => {
  // [[4, 2], [2, 3]] x = [2, 1] → x = [0.5, 0] (by hand: det 8, inverse [[3, -2], [-2, 4]] / 8)
  assert.deepEqual([...choleskySolve([4, 2, 2, 3], [2, 1], 2, 1)], [0.5, 0]);
  assert.throws(() => choleskySolve([1, 2, 2, 1], [1, 1], 2, 1), /not positive definite/);
  // y = W x + b exactly, W = [[1, -2, 0.5], [0, 3, 1]], b = [0.25, -1]
  let seed = 3;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const W = [[1, -2, 0.5], [0, 3, 1]], b = [0.25, -1];
  const xs = Array.from({ length: 50 }, () => [rnd(), rnd(), rnd()]);
  const ys = xs.map((x) => W.map((w, j) => w.reduce((a, v, i) => a + v * x[i], b[j])));
  const fit = ridgeFit(stats(xs, ys), 1e-12);
  W.flat().forEach((v, i) => close(fit.weight[i], v, 1e-8));
  b.forEach((v, j) => close(fit.bias[j], v, 1e-8));
  // one feature, hand-computed: x = [1, 2, 3], y = [2, 4, 7]: centred Σxx = 2, Σxy = 5; λ = 1 · tr(C)/d = 2
  const one = ridgeFit(stats([[1], [2], [3]], [[2], [4], [7]]), 1);
  close(one.weight[0], 5 / (2 + 2));
  close(one.bias[0], 13 / 3 - 5 / 4 * 2);
  // a constant feature (rank-deficient): finite, and the bias takes the mean
  const flat = ridgeFit(stats([[1], [1], [1]], [[1], [2], [3]]));
  assert.equal(flat.weight[0], 0);
  close(flat.bias[0], 2);
  assert.throws(() => ridgeFit({ ...stats([[1]], [[1]]), xtx: [1, 2] }), /xtx has 2 values, expected 1/);
});

Deno.test("fitHeads: the ridge head predicts the new target better than the mean and than the head it replaces", () =>
  noLeak(() => {
    torch.manualSeed(7);
    // a vanishing ridge term, so the fit is the least-squares optimum the checks below recognise
    const cfg = parseConfig({ model: SMALL_MODEL, data: SMALL_DATA, layerlock: { ridgeLambda: 1e-6 } });
    const mcfg = modelConfig(cfg);
    const model = new VideoMAE(mcfg);
    const heads = new LatentHeads("last", mcfg.decoderDim, mcfg.encoderDim, mcfg.encoderDepth);
    const clips = new MovingShapes({ frames: 4, size: 16, seed: 5 }).batch(
      Array.from({ length: 16 }, (_, i) => i),
    );
    const settings = { maskKind: "random" as const, maskRatio: 0.75, chunk: 16 };
    // the features and targets of the loss's tokens under the mask the fit draws (same generator state)
    const tokens = () =>
      torch.noGrad(() => {
        torch.manualSeed(11);
        const x = batchToTensor(clips);
        const mask = makeMask("random", 16, model.encoder.grid, 0.75);
        try {
          const enc = encodeVisible(model, x, mask.keep, 1, "with-first");
          const feats = model.decoderFeatures(enc, mask.keep, mask.masked, mask.masked.shape[1]);
          const y = gatherTokens(latentTargets(model, x, [1], "layernorm")[0], mask.masked);
          return { feats, y };
        } finally {
          disposeMask(mask);
        }
      });
    const mseOf = (pred: torch.Tensor, y: torch.Tensor) => pred.sub(y).square().mean().item();
    try {
      torch.scope(() => {
        const { feats, y } = tokens();
        const before = mseOf(heads.head(1).forward(feats), y);
        const mean = mseOf(y.mean([0, 1], true).expand(y.shape), y);
        torch.manualSeed(11);
        assert.equal(ridgeStats(model, clips, [1], 1, cfg.layerlock, settings, "cpu")[0].n, 16 * 6); // 16 clips × 6 masked of 8 tokens
        torch.manualSeed(11);
        fitHeads(model, heads, clips, [1], 1, cfg.layerlock, settings, "cpu");
        const after = mseOf(heads.head(1).forward(feats), y);
        // the fit contains the mean predictor (W = 0, b = ȳ): it cannot do worse, up to the tiny ridge term
        assert.ok(after < mean * 0.999, `ridge ${after} vs the mean ${mean}`);
        assert.ok(after < before / 2, `ridge ${after} vs the initial head ${before}`);
        // and it is the least-squares optimum: a small step along the gradient does not lower the loss
        const w = heads.head(1).weight;
        const fx = feats.reshape([-1, mcfg.decoderDim]), yy = y.reshape([-1, mcfg.encoderDim]);
        const grad = torch.noGrad(() =>
          torch.matmul(heads.head(1).forward(fx).sub(yy).transpose(0, 1), fx).mul(2 / fx.shape[0])
        );
        const gradNorm = grad.norm().item(), wNorm = w.norm().item();
        assert.ok(gradNorm < 1e-2 * Math.max(1, wNorm), `gradient ${gradNorm} at the fit (‖W‖ ${wNorm})`);
      });
    } finally {
      heads.dispose();
      model.dispose();
    }
  }));

// ------------------------------------------------------------------------------ per-stage verdicts

Deno.test("stageVerdicts: each latent target's shock and last fifth against its own floor (hand-computed)", () => {
  const rec = (step: number, target: string, latent: number | null, floor = 0.5) => ({
    step,
    target,
    latentLoss: latent,
    latentFloor: latent === null ? null : floor,
    pixelLoss: latent === null ? 0.3 : null,
    pixelFloor: latent === null ? 0.8 : null,
  });
  const records = [
    rec(10, "pixels", null),
    rec(20, "pixels", null),
    // h1: 5 records, shock 3.0 (1.5 / 0.5); last fifth = the last record, 0.3 / 0.5 = 0.6
    ...[1.5, 0.8, 0.5, 0.4, 0.3].map((l, i) => rec(30 + 10 * i, "h1", l)),
    // h2: 10 records, last fifth = the last two: (0.46 + 0.44) / (0.5 + 0.5) = 0.9 (exactly at the line)
    ...[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.48, 0.46, 0.44].map((l, i) => rec(80 + 10 * i, "h2", l)),
    // h3: stays at its floor
    ...[0.5, 0.5, 0.5].map((l, i) => rec(180 + 10 * i, "h3", l)),
  ];
  const st = stageVerdicts(records);
  assert.deepEqual(st.map((s) => [s.target, s.fromStep, s.toStep, s.left]), [
    ["h1", 30, 70, true],
    ["h2", 80, 170, true],
    ["h3", 180, 200, false],
  ]);
  close(st[0].shock, 3);
  close(st[0].ratio, 0.6);
  close(st[1].shock, 2);
  close(st[1].ratio, 0.9);
  close(st[2].ratio, 1);
  assert.equal(
    formatStage(st[0]),
    "h1 (steps 30–70): 3.00× its floor after the switch, 0.60× over its last fifth",
  );
  assert.match(formatStage(st[2]), /1\.00× over its last fifth — not learning$/);
  // the run's verdict needs every stage: h3 stuck makes it "not learning", naming the stage
  const v = learningVerdict(records);
  assert.equal(v.learning, false);
  assert.match(v.text, /latent stages: h1 60%, h2 90%, h3 100%/);
  assert.match(v.text, /stage h3 stayed near its floor/);
  assert.equal(learningVerdict(records.slice(0, 17)).learning, true);
  // the tracker reports each stage when the next begins, and the last at finish
  const tracker = new StageTracker();
  const ended = records.map((r) => tracker.add(r)?.target ?? null).filter((t) => t);
  assert.deepEqual([...ended, tracker.finish()?.target], ["h1", "h2", "h3"]);
  assert.equal(tracker.finish(), null);
});

// ------------------------------------------------------------------------------ through the trainer

function llConfig(layerlock: Record<string, unknown>, optim: Record<string, unknown> = {}): TrainConfig {
  return parseConfig({
    model: SMALL_MODEL,
    data: SMALL_DATA,
    optim: { batchSize: 2, steps: 24, warmupSteps: 2, lr: 3e-3, ...optim },
    layerlock: { pixelSteps: 6, interval: 6, maxFrozen: 3, ...layerlock },
    log: { every: 2, checkpointEvery: 1000, floorClips: 16 },
  });
}

async function run(cfg: TrainConfig) {
  const { r, events, records } = await trainCollecting(cfg, await tempDir("switch_"));
  return { r, events, records: records() };
}

Deno.test("trainer: every latent stage is reported when it ends; the ridge head starts the stage lower", async () => {
  const before = torch.liveTensors();
  const plain = await run(llConfig({}));
  const ridge = await run(llConfig({ headInit: "ridge" }));
  assert.equal(torch.liveTensors(), before, "nothing left alive");
  for (const { events } of [plain, ridge]) {
    const ends = events.filter((e) => e.kind === "stageEnd").map((e) =>
      e.kind === "stageEnd" && e.verdict.target
    );
    assert.deepEqual(ends, ["h1", "h2", "h3"]);
    const text = formatEvent(events.find((e) => e.kind === "stageEnd")!)!.text;
    assert.match(text, /^\nlatent stage h1 \(steps 8–12\): \d+\.\d\d× its floor after the switch/);
    const log = formatEvent(events.find((e) => e.kind === "log" && e.record.latentLoss !== null)!)!.text;
    assert.match(log, /lat \d+\.\d{4} floor \d\.\d{4} = \d+\.\d\d×/);
  }
  // at the first switch the plain head is new (never trained): far above its floor; the fitted one is not
  const shock = (records: { target: string; latentLoss: number; latentFloor: number }[]) => {
    const r = records.find((x) => x.target === "h1")!;
    return r.latentLoss / r.latentFloor;
  };
  const [p, q] = [shock(plain.records), shock(ridge.records)];
  assert.ok(q < p, `the ridge head's first h1 window ${q.toFixed(2)}× its floor vs ${p.toFixed(2)}× without`);
  assert.ok(q < 1.5, `ridge: ${q}`);
});

Deno.test("trainer: a run that starts in a latent stage fits its ridge head before the first step", async () => {
  // pixelSteps 0 (LayerLock continuing a pretrained encoder): the first stage has no switch to fit the head at
  const first = (records: { target: string; latentLoss: number; latentFloor: number }[]) => {
    const r = records.find((x) => x.target === "h1")!;
    return r.latentLoss / r.latentFloor;
  };
  const before = torch.liveTensors();
  const plain = first((await run(llConfig({ pixelSteps: 0 }))).records);
  const ridge = first((await run(llConfig({ pixelSteps: 0, headInit: "ridge" }))).records);
  assert.equal(torch.liveTensors(), before, "nothing left alive");
  assert.ok(
    ridge < plain,
    `the fitted head's first window ${ridge.toFixed(2)}× its floor vs ${plain.toFixed(2)}× new`,
  );
  assert.ok(ridge < 1.5, `ridge: ${ridge}`);
});

Deno.test("trainer: a pixel fade keeps the pixel loss after each switch, falling to nothing", async () => {
  const { records } = await run(llConfig({ pixelFade: 4 }));
  const at = (step: number) => records.find((r) => r.step === step);
  // stage 1 begins at step 6: steps 6..9 fade (weights 1, 0.75, 0.5, 0.25), step 10 on has none
  assert.equal(typeof at(8).pixelLoss, "number");
  assert.equal(typeof at(10).pixelLoss, "number"); // the window of steps 8, 9
  assert.equal(at(12).pixelLoss, null);
  assert.equal(typeof at(14).pixelLoss, "number", "the second switch (step 12) fades again");
});
