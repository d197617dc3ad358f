// The experiment end to end at a toy budget: every mode's results, and an offline report whose images exist.
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { DEFAULT_EXPERIMENT, runExperiment } from "../src/eval/experiment.ts";
import { checkReport } from "../src/eval/report.ts";

Deno.test("experiment: two modes at a toy budget produce results.json and a report with existing images", async () => {
  const before = torch.liveTensors();
  const name = `tmp/exp_${Date.now()}`;
  const summary = await runExperiment({
    ...DEFAULT_EXPERIMENT,
    name,
    modes: ["mae", "layerlock"],
    steps: 8,
    batchSize: 2,
    frames: 4,
    size: 32,
    patch: 16,
    trainClips: 16,
    testClips: 16,
    linearEpochs: 2,
    attentiveEpochs: 2,
    probeSeeds: [0, 1],
    evalEvery: 4,
    device: "cpu",
  }, () => {});
  const dir = `runs/${name}`;
  const saved = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
  assert.deepEqual(saved.results.map((r: { mode: string }) => r.mode), ["mae", "layerlock"]);
  for (const r of summary.results) {
    for (const p of Object.values(r.probes)) {
      assert.equal(p.values.length, 2);
      assert.ok(p.mean >= 0 && p.mean <= 1);
    }
    assert.ok(r.collapse.effectiveRank >= 1 && Number.isFinite(r.collapse.featureStd));
    assert.ok(r.convergence.length >= 2);
    const last = r.convergence[r.convergence.length - 1];
    assert.ok(last.cka.every((c) => Math.abs(c - 1) < 1e-6), "the final checkpoint's CKA to itself is 1");
    assert.ok(r.metrics.some((m) => m.eval !== undefined), "collapse metrics were logged during training");
    assert.ok(r.stepsPerSec > 0);
  }
  assert.equal(saved.complete, true);
  assert.equal(saved.liveTensors, before, "everything the experiment made is freed");
  assert.ok(summary.baseline !== null, "the untrained encoder is probed by default");
  assert.deepEqual(Object.keys(saved.baseline.probes).sort(), Object.keys(summary.results[0].probes).sort());
  for (const p of Object.values(summary.baseline!.probes)) assert.equal(p.values.length, 2);
  const html = await Deno.readTextFile(`${dir}/report.html`);
  assert.match(html, /<td>untrained<\/td>/, "the report's probe table has the baseline row");
  assert.match(html, /0\. \(sanity check\)/, "the claims table opens with the sanity check");
  const check = await checkReport(dir);
  assert.deepEqual(check.problems, []);
  assert.deepEqual(check.missing, []);
  assert.deepEqual(check.images.map((i) => i.src), ["recon_mae.png"], "a reconstruction for the pixel model");
  assert.equal(torch.liveTensors(), before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("experiment: a run cut short keeps the modes it finished in results.json and the report", async () => {
  const before = torch.liveTensors();
  const name = `tmp/exp_cut_${Date.now()}`;
  await assert.rejects(
    runExperiment({
      ...DEFAULT_EXPERIMENT,
      name,
      modes: ["mae", "mae-freeze"],
      steps: 4,
      batchSize: 2,
      frames: 4,
      size: 32,
      trainClips: 8,
      testClips: 8,
      linearEpochs: 1,
      attentiveEpochs: 1,
      probeSeeds: [0],
      evalEvery: 2,
      baseline: false,
      device: "cpu",
    }, (line) => {
      if (line.startsWith("[mae-freeze] training")) throw new Error("interrupted");
    }),
    /interrupted/,
  );
  const dir = `runs/${name}`;
  const saved = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
  assert.equal(saved.complete, false);
  assert.equal(saved.baseline, null);
  assert.deepEqual(saved.results.map((r: { mode: string }) => r.mode), ["mae"]);
  assert.match(await Deno.readTextFile(`${dir}/report.html`), /partial: 1 of 2 modes/);
  assert.deepEqual((await checkReport(dir)).missing, []);
  assert.equal(torch.liveTensors(), before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("embed: a checkpoint's features and labels are written to safetensors", async () => {
  const before = torch.liveTensors();
  await Deno.mkdir("runs/tmp", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "runs/tmp", prefix: "embed_" });
  const cfg = torch.parseConfig({
    device: "cpu",
    model: {
      encoderDim: 48,
      encoderDepth: 4,
      encoderHeads: 3,
      decoderDim: 24,
      decoderDepth: 1,
      decoderHeads: 3,
    },
    data: { frames: 4, size: 16, prefetch: 0 },
    optim: { batchSize: 2, steps: 2, warmupSteps: 1 },
  });
  const { makeBatchSource } = await import("../src/data/source.ts");
  const r = await torch.train(cfg, { runDir: dir, resume: false, data: makeBatchSource, print: () => {} });
  const out = `${dir}/f.safetensors`;
  const p = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi=native/build",
      "--allow-read",
      "--allow-env",
      "--allow-write=runs",
      "src/cli/embed.ts",
      "--checkpoint",
      r.checkpoint!,
      "--clips",
      "5",
      "--depth",
      "2",
      "--out",
      out,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(p.success, new TextDecoder().decode(p.stderr));
  torch.scope(() => {
    const { tensors, metadata } = torch.loadSafetensors(out);
    assert.deepEqual(tensors.pooled.shape, [5, 48]);
    assert.deepEqual(tensors.tokens.shape, [5, 2 * 2 * 2, 48]);
    assert.deepEqual(tensors["labels.shape"].shape, [5]);
    assert.equal(metadata.depth, "2");
    // pooled is the mean of the tokens
    const mean = tensors.tokens.mean(1).toArray() as Float32Array,
      pooled = tensors.pooled.toArray() as Float32Array;
    assert.ok(pooled.every((v, i) => Math.abs(v - mean[i]) < 1e-5));
  });
  assert.equal(torch.liveTensors(), before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("claims: the verdicts follow the measured numbers", async () => {
  const { claims } = await import("../src/eval/experiment.ts");
  const stats = (mean: number) => ({ mean, std: 0, values: [mean] });
  const probes = (m: number) => ({
    linearShape: stats(m),
    linearDirection: stats(m),
    attentiveShape: stats(m),
    attentiveDirection: stats(m),
  });
  const collapse = (rank: number) => ({
    featureStd: rank / 100,
    effectiveRank: rank,
    meanCosine: 0.1,
    n: 64,
    dim: 192,
  });
  const result = (mode: string, sps: number, probe: number, rank: number, conv: number[][] = []) => ({
    mode,
    metrics: [],
    stepsPerSec: sps,
    peakBytes: null,
    probes: probes(probe),
    collapse: collapse(rank),
    convergence: conv.map((cka, i) => ({ step: (i + 1) * 100, cka })),
  });
  // blocks 1..3 reach CKA 0.9 at steps 100, 200, 300: depth order
  const conv = [[0.95, 0.5, 0.2], [0.97, 0.93, 0.6], [0.99, 0.97, 0.95], [1, 1, 1]];
  // deno-lint-ignore no-explicit-any
  const rs: any[] = [
    result("mae", 10, 0.3, 20, conv),
    result("mae-freeze", 13, 0.3, 20),
    result("layerlock", 9, 0.35, 22),
    result("latent-unfrozen", 9, 0.15, 3),
  ];
  const c = claims(rs);
  assert.equal(c.length, 4);
  assert.match(c[0].measured, /100, 200, 300/);
  assert.equal(c[0].verdict, "reproduced");
  assert.equal(c[1].verdict, "reproduced");
  assert.equal(c[2].verdict, "reproduced");
  assert.equal(c[3].verdict, "reproduced");
  // reversed order of convergence, no speed-up, no collapse, worse probes: none reproduced
  rs[0] = result("mae", 10, 0.3, 20, conv.map((r) => [...r].reverse()));
  rs[1] = result("mae-freeze", 9, 0.3, 20);
  rs[2] = result("layerlock", 9, 0.2, 22);
  rs[3] = result("latent-unfrozen", 9, 0.15, 21);
  assert.deepEqual(claims(rs).map((x) => x.verdict), [
    "not reproduced",
    "not reproduced",
    "not reproduced at this scale",
    "not reproduced at this scale",
  ]);
  // the sanity row: which modes beat the untrained encoder (probe means 0.3, 0.3, 0.2, 0.15 here)
  const untrained = (m: number) => ({ probes: probes(m), collapse: collapse(10) });
  const sanity = (m: number) => claims(rs, untrained(m))[0];
  assert.match(sanity(0.25).claim, /^0\. /);
  assert.equal(claims(rs, untrained(0.25)).length, 5);
  assert.equal(sanity(0.25).verdict, "only mae, mae-freeze");
  assert.equal(sanity(0.1).verdict, "yes, every mode");
  assert.equal(sanity(0.3).verdict, "no: at this budget no mode beats the untrained encoder");
  assert.match(sanity(0.25).measured, /untrained 25\.0%; mae 30\.0%/);
});

Deno.test("experiment: every mode trains with the experiment's budget, learning rate and seed", async () => {
  const { modeTrainConfig } = await import("../src/eval/experiment.ts");
  const e = { ...DEFAULT_EXPERIMENT, steps: 500, batchSize: 4, lr: 2e-4, seed: 7 };
  for (const mode of e.modes) {
    const c = modeTrainConfig(e, mode);
    assert.equal(c.layerlock.mode, mode);
    assert.deepEqual([c.optim.steps, c.optim.batchSize, c.optim.lr, c.optim.warmupSteps, c.seed], [
      500,
      4,
      2e-4,
      50,
      7,
    ]);
    assert.equal(c.data.source, "fashion");
  }
});

Deno.test("experiment: unusable probe settings are TorchErrors naming the setting, before any training", async () => {
  const before = torch.liveTensors();
  const name = `tmp/exp_bad_${Date.now()}`;
  const cases: [Partial<typeof DEFAULT_EXPERIMENT>, RegExp][] = [
    [{ linearEpochs: 0 }, /runExperiment: linearEpochs must be a positive integer, got 0/],
    [{ attentiveBatch: 2.5 }, /attentiveBatch must be a positive integer, got 2\.5/],
    [{ testClips: 0 }, /testClips must be a positive integer, got 0/],
    [{ attentiveLr: -1 }, /attentiveLr must be a finite number > 0, got -1/],
    [{ lr: NaN }, /lr must be a finite number > 0, got NaN/],
    [{ probeSeeds: [] }, /probeSeeds is empty/],
  ];
  for (const [bad, re] of cases) {
    await assert.rejects(runExperiment({ ...DEFAULT_EXPERIMENT, name, device: "cpu", ...bad }, () => {}), re);
  }
  assert.equal(torch.liveTensors(), before);
  await assert.rejects(Deno.stat(`runs/${name}`), Deno.errors.NotFound, "nothing was written");
});
