// The experiment: its configuration (one schema with the trainer's, every flag checked), the statistics over
// training seeds, the claims on constructed numbers, disjoint probe splits, and the whole experiment end to end
// at a toy budget (baselines, two seeds, floors, a report whose images exist, a run cut short).
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { experimentConfigFromArgs } from "../src/cli/experiment.ts";
import { type ExperimentResults, runExperiment } from "../src/experiment/run.ts";
import { probeDatasets } from "../src/experiment/probes.ts";
import {
  EXPERIMENT_TRAIN_DEFAULTS,
  ExperimentConfigError,
  parseExperimentConfig,
  plannedRuns,
  runConfig,
  seedsOf,
} from "../src/experiment/config.ts";
import { claims, convergenceOrder, summaryRows } from "../src/experiment/verdicts.ts";
import { learningVerdict } from "../src/layerlock/learning.ts";
import { checkReport } from "../src/eval/report.ts";
import { compare, differenceSpread, formatDifference, spreadOf, spreadOfProbes } from "../src/eval/seeds.ts";
import { DataError } from "../src/errors.ts";

// ------------------------------------------------------------------------------------------ configuration

Deno.test("experiment config: training keys go through the training schema, for every mode and seed", () => {
  const e = parseExperimentConfig({
    seeds: [3, 5],
    train: { optim: { steps: 500, lr: 2e-4 }, model: { encoderDepth: 4 }, layerlock: { pixelSteps: 300 } },
  });
  for (const mode of e.modes) {
    for (const seed of e.seeds) {
      const c = runConfig(e, mode, seed);
      assert.equal(c.layerlock.mode, mode);
      assert.equal(c.seed, seed);
      assert.deepEqual([c.optim.steps, c.optim.lr, c.optim.batchSize], [
        500,
        2e-4,
        EXPERIMENT_TRAIN_DEFAULTS.optim.batchSize,
      ]);
      assert.deepEqual([c.model.encoderDepth, c.model.patch, c.layerlock.pixelSteps], [4, 8, 300]);
      assert.equal(c.data.source, "fashion");
      assert.equal(c.log.checkpointEvery, 63, "8 checkpoints per run unless given");
      assert.equal(c.name, `experiment-${mode}-s${seed}`);
    }
  }
  // defaults: LayerLock against MAE from three training seeds, three baselines, probes scored on the test split
  // with 4096/4096 clips; the comparison modes, when added, train from two seeds
  const d = parseExperimentConfig({});
  assert.deepEqual(d.seeds, [0, 1, 2]);
  assert.deepEqual(d.modes.map((m) => [m, seedsOf(d, m)]), [["mae", [0, 1, 2]], ["layerlock", [0, 1, 2]]]);
  assert.equal(plannedRuns(d).length, 6);
  const all = parseExperimentConfig({ modes: ["mae", "mae-freeze", "layerlock", "latent-unfrozen"] });
  assert.deepEqual(all.modes.map((m) => [m, seedsOf(all, m)]), [
    ["mae", [0, 1, 2]],
    ["mae-freeze", [0, 1]],
    ["layerlock", [0, 1, 2]],
    ["latent-unfrozen", [0, 1]],
  ]);
  assert.equal(plannedRuns(all).length, 10);
  assert.deepEqual(plannedRuns(all).slice(0, 4).map((r) => r.seed), [0, 0, 0, 0], "seed-major");
  // a smaller seed list limits every mode: seedsByMode only ever removes seeds
  assert.deepEqual(seedsOf(parseExperimentConfig({ seeds: [0] }), "latent-unfrozen"), [0]);
  assert.deepEqual(d.baselines, ["untrained", "embedding", "pixels"]);
  assert.equal(d.probe.split, "test");
  assert.ok(d.probe.trainClips >= 4096 && d.probe.evalClips >= 4096);
  // the freezing schedule follows the run's length unless given: pixels for half, then a block every eighth (default 3000 steps)
  const l = runConfig(d, "layerlock", 0).layerlock,
    l2 = runConfig(parseExperimentConfig({ train: { optim: { steps: 800 } } }), "layerlock", 0).layerlock;
  assert.deepEqual([l.pixelSteps, l.interval, l2.pixelSteps, l2.interval], [1500, 375, 400, 100]);
});

Deno.test("experiment config: bad settings are errors naming the key, experiment or training", () => {
  const bad: [unknown, RegExp][] = [
    [{ probe: { linearEpochs: 0 } }, /probe\.linearEpochs: Number must be greater than 0/],
    [{ probe: { attentiveBatch: 2.5 } }, /probe\.attentiveBatch: Expected integer/],
    [{ probe: { evalClips: 0 } }, /probe\.evalClips/],
    [{ probe: { attentiveLr: -1 } }, /probe\.attentiveLr/],
    [{ probe: { seeds: [] } }, /probe\.seeds: Array must contain at least 1/],
    [{ probe: { split: "train" } }, /probe\.split: Invalid enum value/],
    [{ seeds: [0, 0] }, /seeds: seeds must be distinct/],
    [{ modes: ["mae", "bogus"] }, /modes\.1: Invalid enum value/],
    [{ baselines: ["random"] }, /baselines\.0: Invalid enum value/],
    [{ name: "../x" }, /name: use letters/],
    [{ bogus: 1 }, /Unrecognized key.*bogus/],
    [{ train: { optim: { lr: "fast" } } }, /train\.optim\.lr: Expected number, received string/],
    [{ train: { model: { patch: 7 }, data: { size: 64 }, mask: { ratio: 2 } } }, /train\.mask\.ratio/],
    [{ train: { nope: true } }, /train.*Unrecognized key.*nope/],
  ];
  for (const [raw, re] of bad) {
    assert.throws(
      () => parseExperimentConfig(raw),
      (e) => e instanceof ExperimentConfigError && re.test(e.message),
      JSON.stringify(raw),
    );
  }
});

Deno.test("experiment flags: each sets its key, and a bad value is a clear error naming the flag", async () => {
  const { raw } = await experimentConfigFromArgs([
    "--name=x",
    "--modes=mae,layerlock",
    "--seeds=0,1,2",
    "--probe-split=val",
    "--probe-seeds=4",
    "--train-clips=64",
    "--test-clips=32",
    "--linear-epochs=5",
    "--linear-lr=0.1",
    "--attentive-epochs=3",
    "--attentive-lr=0.002",
    "--attentive-batch=16",
    "--baselines=untrained,pixels",
    "--eval-every=10",
    "--steps=300",
    "--lr=2e-4",
    "--patch=8",
    "--mask=random",
    "--set",
    "model.encoderDepth=4",
    "--set",
    "probe.seeds=[0,1]",
    "--set",
    "layerlock.pixelSteps=100",
  ]);
  const e = parseExperimentConfig(raw);
  assert.deepEqual([e.name, e.modes, e.seeds, e.baselines, e.evalEvery], ["x", ["mae", "layerlock"], [
    0,
    1,
    2,
  ], [
    "untrained",
    "pixels",
  ], 10]);
  assert.deepEqual(e.probe, {
    split: "val",
    seeds: [0, 1],
    trainClips: 64,
    evalClips: 32,
    linearEpochs: 5,
    linearLr: 0.1,
    attentiveEpochs: 3,
    attentiveLr: 0.002,
    attentiveBatch: 16,
  });
  const c = runConfig(e, "layerlock", 2);
  assert.deepEqual([
    c.optim.steps,
    c.optim.lr,
    c.model.patch,
    c.mask.kind,
    c.model.encoderDepth,
    c.layerlock.pixelSteps,
  ], [
    300,
    2e-4,
    8,
    "random",
    4,
    100,
  ]);
  assert.deepEqual((await experimentConfigFromArgs(["--no-baseline"])).raw.baselines, []);
  assert.deepEqual((await experimentConfigFromArgs(["--baselines", "none"])).raw.baselines, []);
  const fails: [string[], RegExp][] = [
    [["--seeds", "0,x"], /--seeds: 'x' is not a non-negative integer/],
    [["--seeds=-1"], /--seeds: '-1' is not a non-negative integer/],
    [["--train-clips", "1.5"], /--train-clips: '1\.5' is not a non-negative integer/],
    [["--linear-lr", "fast"], /--linear-lr: 'fast' is not a number/],
    [["--seed", "3"], /--seed: the experiment takes training seeds as --seeds/],
    [["--set", "lr"], /--set expects key\.path=value, got 'lr'/],
    [["--no-baseline", "--baselines", "pixels"], /contradict/],
    [["--bogus"], /Unknown option '--bogus'/],
    [["--config", "/nonexistent.json"], /cannot read --config \/nonexistent\.json/],
  ];
  for (const [args, re] of fails) {
    await assert.rejects(
      experimentConfigFromArgs(args),
      (e) => e instanceof ExperimentConfigError && re.test(e.message),
      args.join(" "),
    );
  }
  // values that parse but are wrong are named by the schema
  const schemaFails: [string[], RegExp][] = [
    [["--probe-split", "train"], /probe\.split/],
    [["--modes", "mae,nope"], /modes\.1/],
    [["--baselines", "random"], /baselines\.0/],
    [["--mask", "zigzag"], /train\.mask\.kind/],
    [["--set", "model.encoderDepth=0"], /train\.model\.encoderDepth/],
    [["--set", "probe.linearEpochs=-2"], /probe\.linearEpochs/],
  ];
  for (const [args, re] of schemaFails) {
    const { raw } = await experimentConfigFromArgs(args);
    assert.throws(
      () => parseExperimentConfig(raw),
      (e) => e instanceof ExperimentConfigError && re.test(e.message),
      args.join(" "),
    );
  }
});

// ------------------------------------------------------------------------------------------ statistics

Deno.test("seeds: mean and Bessel-corrected spread over training seeds, probe seeds inside (constructed)", () => {
  // three training seeds, each probed with two probe seeds
  const runs = [
    { mean: 0.5, std: 0.02, values: [0.48, 0.52] },
    { mean: 0.6, std: 0.04, values: [0.56, 0.64] },
    { mean: 0.7, std: 0.0, values: [0.7, 0.7] },
  ];
  const s = spreadOfProbes(runs);
  assert.ok(Math.abs(s.mean - 0.6) < 1e-12);
  assert.ok(Math.abs(s.std - 0.1) < 1e-12, "sqrt(((-.1)² + 0 + .1²) / 2) = 0.1");
  assert.ok(Math.abs(s.probeStd - 0.02) < 1e-12);
  assert.deepEqual([s.n, s.values], [3, [0.5, 0.6, 0.7]]);
  assert.equal(spreadOf([0.3]).std, 0, "one seed: no spread");
  // a difference counts only beyond √(s_a² + s_b²)
  const a = spreadOf([0.6, 0.66]), b = spreadOf([0.5, 0.54]); // std 0.0424, 0.0283 → spread 0.051
  assert.ok(Math.abs(differenceSpread(a, b) - Math.sqrt(0.0018 + 0.0008)) < 1e-12);
  assert.equal(compare(a, b), "above"); // 0.11 > 0.051
  assert.equal(compare(b, a), "below");
  assert.equal(compare(spreadOf([0.6, 0.7]), spreadOf([0.6, 0.64])), "within"); // 0.07 < 0.0762
  assert.equal(formatDifference(a, b), "+11.0 ± 5.1");
  assert.throws(() => spreadOf([]), (e) => e instanceof DataError && /spreadOf: no values/.test(e.message));
});

/** Constructed results: each mode's runs with the given probe means (one per seed), ranks and speeds. */
function constructed(
  spec: Record<string, { probe: number[]; rank?: number[]; sps?: number; conv?: number[][] }>,
) {
  const probes = (m: number) =>
    Object.fromEntries(
      ["linearShape", "linearDirection", "attentiveShape", "attentiveDirection"].map((
        k,
      ) => [k, { mean: m, std: 0, values: [m] }]),
    );
  const fit = { linearShape: 1, linearDirection: 1, attentiveShape: 1, attentiveDirection: 1 };
  const collapse = (rank: number) => ({
    featureStd: 0.01,
    effectiveRank: rank,
    meanCosine: 0.5,
    n: 64,
    dim: 192,
  });
  const learning = learningVerdict([{ step: 1, pixelLoss: 0.4, pixelFloor: 0.8 }]);
  const r = {
    version: 2,
    config: parseExperimentConfig({ modes: Object.keys(spec).filter((k) => k !== "untrained") }),
    trainConfigs: {},
    device: "cpu",
    minutes: 1,
    complete: true,
    liveTensors: 0,
    baselines: [] as unknown[],
    modes: [] as unknown[],
  };
  for (const [name, s] of Object.entries(spec)) {
    const runs = s.probe.map((p, i) => ({
      seed: i,
      probes: probes(p),
      trainAccuracy: fit,
      collapse: collapse(s.rank?.[i] ?? 20),
      mode: name,
      metrics: [],
      stepsPerSec: s.sps ?? 10,
      peakBytes: null,
      convergence: (s.conv ?? []).map((cka, j) => ({ step: (j + 1) * 100, cka })),
      learning,
      minutes: 1,
    }));
    if (name === "untrained") r.baselines.push({ name, runs });
    else r.modes.push({ mode: name, runs });
  }
  return r as unknown as ExperimentResults;
}

Deno.test("claims: verdicts follow the numbers and their spread over training seeds", () => {
  // blocks 1..3 reach CKA 0.9 at steps 100, 200, 300: depth order
  const conv = [[0.95, 0.5, 0.2], [0.97, 0.93, 0.6], [0.99, 0.97, 0.95], [1, 1, 1]];
  const good = constructed({
    untrained: { probe: [0.40, 0.42] },
    mae: { probe: [0.50, 0.52], sps: 10, conv },
    "mae-freeze": { probe: [0.49, 0.53], sps: 13 },
    layerlock: { probe: [0.55, 0.57], rank: [22, 23] },
    "latent-unfrozen": { probe: [0.20, 0.22], rank: [3, 4] },
  });
  const c = claims(good);
  assert.deepEqual(c.map((x) => x.claim.split(" ")[0]), ["0a.", "0b.", "1.", "2.", "3.", "4."]);
  assert.equal(c[0].verdict, "yes, every run is learning");
  assert.match(
    c[1].verdict,
    /^only mae, mae-freeze, layerlock by more than the spread; latent-unfrozen below/,
  );
  assert.match(c[1].measured, /untrained 41\.0 ± 1\.4%; mae 51\.0 ± 1\.4% \(\+10\.0 ± 2\.0\)/);
  assert.match(c[2].measured, /100, 200, 300/);
  assert.match(c[2].verdict, /^reproduced/);
  assert.match(c[3].verdict, /^reproduced \(faster; the probe within the spread\)/);
  assert.match(c[4].verdict, /^reproduced \(lower rank and lower probe/);
  assert.equal(c[5].verdict, "reproduced: better by more than the spread");
  // within the spread counts as "at least as well"; a wide spread swallows a 3-point gap
  const close = constructed({ mae: { probe: [0.45, 0.55] }, layerlock: { probe: [0.44, 0.50] } });
  assert.equal(
    claims(close).find((x) => x.claim.startsWith("4."))!.verdict,
    "reproduced: equal within the spread",
  );
  // the other way round: reversed convergence, no speed-up, no collapse, worse probes
  const bad = constructed({
    untrained: { probe: [0.60, 0.61] },
    mae: { probe: [0.50, 0.51], sps: 10, conv: conv.map((r) => [...r].reverse()) },
    "mae-freeze": { probe: [0.40, 0.41], sps: 9 },
    layerlock: { probe: [0.30, 0.31], rank: [20, 21] },
    "latent-unfrozen": { probe: [0.35, 0.36], rank: [20, 22] },
  });
  const v = claims(bad).map((x) => x.verdict);
  assert.match(v[1], /^no mode beats it by more than the spread/);
  assert.equal(v[2], "not reproduced");
  assert.equal(v[3], "not reproduced (not faster)");
  assert.equal(v[4], "not reproduced at this scale");
  assert.equal(v[5], "not reproduced: worse by more than the spread");
  // summary rows: baselines first; the probe mean's spread over seeds
  const rows = summaryRows(good);
  assert.deepEqual(rows.map((x) => x.name), [
    "untrained",
    "mae",
    "mae-freeze",
    "layerlock",
    "latent-unfrozen",
  ]);
  assert.ok(Math.abs(rows[1].probeMean.std - Math.sqrt(0.0002)) < 1e-12);
  assert.equal(convergenceOrder({ convergence: [] }), 0);
});

// ------------------------------------------------------------------------------------------ probe clips

Deno.test("experiment: probe-training, validation and test clips are disjoint by clip identity", async () => {
  const ids = async (split: "val" | "test") => {
    const e = parseExperimentConfig({ probe: { split } });
    const ds = await probeDatasets(e);
    const garments = async (d: typeof ds.train, n: number) => {
      const s = new Set<string>();
      for (let i = 0; i < n; i++) for (const o of (await d.clip(i)).objects) s.add(`${d.file}:${o.image}`);
      return s;
    };
    return { train: await garments(ds.train, 512), eval: await garments(ds.eval, 256) };
  };
  const v = await ids("val"), t = await ids("test");
  assert.deepEqual(
    [...v.train].sort(),
    [...t.train].sort(),
    "the same probe-training clips whatever the split",
  );
  for (const k of v.eval) assert.ok(!v.train.has(k) && !t.eval.has(k), `validation garment ${k} reused`);
  for (const k of t.eval) assert.ok(!v.train.has(k), `test garment ${k} reused`);
  assert.ok(
    [...v.eval].every((k) => k.startsWith("train:")) && [...t.eval].every((k) => k.startsWith("test:")),
  );
});

// ------------------------------------------------------------------------------------------ end to end

/** A toy experiment (seconds on 2 cores). */
function toy(name: string, extra: Record<string, unknown> = {}) {
  return parseExperimentConfig({
    name,
    seeds: [0, 1],
    evalEvery: 4,
    probe: { trainClips: 16, evalClips: 16, linearEpochs: 2, attentiveEpochs: 2, seeds: [0, 1] },
    train: {
      device: "cpu",
      threads: 1,
      optim: { steps: 8, batchSize: 2, warmupSteps: 2 },
      data: { frames: 4, size: 32, prefetch: 0 },
      model: { patch: 16, encoderDepth: 3 },
      log: { floorClips: 8, every: 2 },
    },
    ...extra,
  });
}

Deno.test("experiment: two modes × two seeds with every baseline → results.json and a report with existing images", async () => {
  const before = torch.liveTensors();
  const name = `tmp/exp_${Date.now()}`;
  const lines: string[] = [];
  const r = await runExperiment(toy(name, { modes: ["mae", "layerlock"] }), (l) => lines.push(l));
  const dir = `runs/${name}`;
  const saved = JSON.parse(await Deno.readTextFile(`${dir}/results.json`)) as ExperimentResults;
  assert.equal(saved.version, 2);
  assert.equal(saved.complete, true);
  assert.equal(saved.liveTensors, before, "everything the experiment made is freed");
  assert.deepEqual(saved.baselines.map((b) => [b.name, b.runs.map((x) => x.seed)]), [
    ["untrained", [0, 1]],
    ["embedding", [0, 1]],
    ["pixels", [null]],
  ]);
  assert.deepEqual(saved.modes.map((m) => [m.mode, m.runs.map((x) => x.seed)]), [["mae", [0, 1]], [
    "layerlock",
    [0, 1],
  ]]);
  for (const run of r.modes.flatMap((m) => m.runs)) {
    for (const p of Object.values(run.probes)) assert.ok(p.values.length === 2 && p.mean >= 0 && p.mean <= 1);
    assert.ok(run.collapse.effectiveRank >= 1);
    assert.ok(run.convergence.length >= 2);
    const last = run.convergence[run.convergence.length - 1];
    assert.ok(last.cka.every((c) => Math.abs(c - 1) < 1e-6), "the final checkpoint's CKA to itself is 1");
    assert.ok(run.metrics.some((m) => m.eval !== undefined), "collapse metrics were logged during training");
    assert.ok(
      run.metrics.every((m) => typeof m.pixelFloor === "number" || typeof m.latentFloor === "number"),
    );
    assert.ok(run.learning.phases.length >= 1, "a learning verdict from the floors");
    assert.ok(run.stepsPerSec > 0);
  }
  // the two seeds' untrained encoders differ (each run's own initialisation); pixels have no parameters
  const u = saved.baselines[0].runs;
  assert.notDeepEqual(u[0].collapse, u[1].collapse);
  assert.equal(saved.baselines[2].runs[0].collapse.dim, 2 * 16 * 16 * 3, "pixel tokens are whole tubelets");
  assert.ok(lines.some((l) => /\[experiment\] 1\/4 runs done, .* to go/.test(l)), "progress with an ETA");
  const html = await Deno.readTextFile(`${dir}/report.html`);
  for (const row of ["untrained", "embedding", "pixels"]) assert.match(html, new RegExp(`<td>${row}</td>`));
  assert.match(html, /0b\. \(sanity check\)/);
  assert.match(html, /mae floor/, "the loss chart draws the floor");
  assert.match(html, /(not )?learning: pixel loss/);
  const check = await checkReport(dir);
  assert.deepEqual(check.problems, []);
  assert.deepEqual(check.missing, []);
  assert.deepEqual(check.images.map((i) => i.src), ["recon_mae.png"], "a reconstruction for the pixel model");
  assert.equal(torch.liveTensors(), before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("experiment: a run cut short keeps what it finished in results.json and the report", async () => {
  const before = torch.liveTensors();
  const name = `tmp/exp_cut_${Date.now()}`;
  await assert.rejects(
    runExperiment(toy(name, { modes: ["mae", "mae-freeze"], baselines: [] }), (line) => {
      if (line.startsWith("[mae-freeze-s0] run")) throw new Error("interrupted");
    }),
    /interrupted/,
  );
  const dir = `runs/${name}`;
  const saved = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
  assert.equal(saved.complete, false);
  assert.deepEqual(saved.modes.map((m: { runs: unknown[] }) => m.runs.length), [1, 0]);
  assert.match(await Deno.readTextFile(`${dir}/report.html`), /partial: 1 of 4 runs/);
  assert.deepEqual((await checkReport(dir)).missing, []);
  assert.equal(torch.liveTensors(), before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("experiment: bad settings are refused before anything is trained or written", async () => {
  const name = `tmp/exp_bad_${Date.now()}`;
  const e = toy(name);
  await assert.rejects(
    runExperiment({ ...e, probe: { ...e.probe, linearEpochs: 0 } }, () => {}),
    /probe\.linearEpochs/,
  );
  await assert.rejects(runExperiment({ ...e, train: { optim: { lr: -1 } } }, () => {}), /train\.optim\.lr/);
  await assert.rejects(Deno.stat(`runs/${name}`), Deno.errors.NotFound, "nothing was written");
});
