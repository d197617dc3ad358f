/**
 * The optimizer and its schedule: `AdamW` against `torch.optim.AdamW` (two param groups, golden/optim.json made
 * by golden/make_optim_golden.py; regenerate with `.venv/bin/python3 tests/golden/make_optim_golden.py`),
 * frozen and late parameters, state release, state-dict round trips, fused vs foreach, and `warmupCosine` /
 * `scaledLr`.
 * @module
 */
import assert from "node:assert/strict";
import {
  AdamW,
  type AdamWOptions,
  liveTensors,
  scaledLr,
  scope,
  type Tensor,
  tensor,
  TorchError,
  warmupCosine,
} from "../../mod.ts";
import { assertClose, leakFreeTest, numel, prng } from "../helpers.ts";
import * as torch from "../../mod.ts";

// ---------------------------------------------------------------------------------------- helpers

interface Golden {
  torch: string;
  betas: [number, number];
  weight_decay: number;
  eps: number;
  lrs: number[];
  shapes: Record<string, number[]>;
  no_decay: string[];
  init: Record<string, number[]>;
  grads: Record<string, number[]>[];
  runs: Record<"foreach" | "fused", {
    after: Record<string, number[]>[];
    state: Record<string, { exp_avg: number[]; exp_avg_sq: number[]; step: number }>;
  }>;
}

const GOLDEN: Golden = JSON.parse(Deno.readTextFileSync(new URL("../golden/optim.json", import.meta.url)));

/** A tensor of values uniform in [-scale, scale), from `rng`. */
function randTensor(shape: number[], rng: () => number, scale = 1, requiresGrad = false): Tensor {
  const data = Float32Array.from({ length: numel(shape) }, () => (2 * rng() - 1) * scale);
  return tensor(data, { shape, requiresGrad });
}

/** Sets p's gradient to a copy of `g` (the caller keeps `g`). */
function setGrad(p: Tensor, g: Tensor): void {
  using c = g.clone();
  p.setGrad(c);
}

/** The raw bytes of a tensor's values, for bit-exact comparison. */
function bits(t: Tensor): Uint8Array {
  const a = t.toArray() as Float32Array;
  return new Uint8Array(a.buffer.slice(0));
}

function assertBitEqual(a: Tensor, b: Tensor, msg: string): void {
  assert.deepEqual(bits(a), bits(b), msg);
}

/** Builds the golden parameters (frozen.weight does not require grad). */
function goldenParams(): { name: string; param: Tensor }[] {
  return Object.entries(GOLDEN.shapes).map(([name, shape]) => ({
    name,
    param: tensor(Float32Array.from(GOLDEN.init[name]), { shape, requiresGrad: name !== "frozen.weight" }),
  }));
}

function disposeAll(ps: { param: Tensor }[]): void {
  for (const p of ps) p.param.dispose();
}

/** Gives each parameter its golden gradient of step k, or none. */
function setGoldenGrads(ps: { name: string; param: Tensor }[], k: number): void {
  for (const { name, param } of ps) {
    param.zeroGrad();
    const g = GOLDEN.grads[k][name];
    if (g !== undefined) {
      using t = tensor(Float32Array.from(g), { shape: GOLDEN.shapes[name] });
      param.setGrad(t);
    }
  }
}

const goldenOpts = (impl: AdamWOptions["impl"]): AdamWOptions => ({
  lr: GOLDEN.lrs[0],
  betas: GOLDEN.betas,
  weightDecay: GOLDEN.weight_decay,
  eps: GOLDEN.eps,
  impl,
});

// ---------------------------------------------------------------------------------------- against torch

for (const impl of ["fused", "foreach"] as const) {
  const ref = GOLDEN.runs[impl];
  leakFreeTest(
    `AdamW (${impl}) with the lr as a device tensor matches torch.optim.AdamW; fused: no host read`,
    () => {
      const ps = goldenParams();
      const opt = new AdamW(ps, goldenOpts(impl));
      using lr = torch.zeros([], { dtype: "f64" });
      for (let k = 0; k < GOLDEN.lrs.length; k++) {
        setGoldenGrads(ps, k);
        lr.fill_(GOLDEN.lrs[k]); // written by the host, read by the kernel on the device
        const before = torch.hostReads();
        opt.step(lr);
        const reads = torch.hostReads() - before;
        // the fused kernel reads lr and the step counters on the device; the foreach formulation reads both
        if (impl === "fused") assert.equal(reads, 0, `host reads of step ${k + 1}`);
        else assert.ok(reads >= 2, `the foreach formulation reads its step count and lr (${reads})`);
        for (const { name, param } of ps) {
          assertClose(param, ref.after[k][name], { rtol: 1e-5, atol: 1e-6, msg: `step ${k + 1} ${name}` });
        }
      }
      using two = torch.zeros([2]);
      assert.throws(() => opt.step(two), /lr must be a number or a live one-element tensor/);
      opt.dispose();
      disposeAll(ps);
    },
  );
}

leakFreeTest("AdamW: default groups match the golden's decay / no-decay split", () => {
  const ps = goldenParams();
  using opt = new AdamW(ps, { lr: 1 });
  assert.deepEqual(opt.noDecayNames, GOLDEN.no_decay);
  assert.deepEqual(
    opt.decayNames,
    Object.keys(GOLDEN.shapes).filter((n) => !GOLDEN.no_decay.includes(n)),
  );
  using cls = tensor([[1, 2], [3, 4]]);
  using w = tensor([[1, 2], [3, 4]]);
  using opt2 = new AdamW([{ name: "cls_token", param: cls }, { name: "head.weight", param: w }], { lr: 1 });
  assert.deepEqual(opt2.noDecayNames, ["cls_token"]);
  disposeAll(ps);
});

for (const impl of ["fused", "foreach", "auto"] as const) {
  const ref = GOLDEN.runs[impl === "auto" ? "fused" : impl];
  leakFreeTest(`AdamW (${impl}) matches torch.optim.AdamW (${GOLDEN.torch}), two groups, 5 steps`, () => {
    const ps = goldenParams();
    const opt = new AdamW(ps, goldenOpts(impl));
    for (let k = 0; k < GOLDEN.lrs.length; k++) {
      setGoldenGrads(ps, k);
      const updated = opt.step(GOLDEN.lrs[k]);
      assert.equal(updated, Object.keys(GOLDEN.grads[k]).length);
      for (const { name, param } of ps) {
        assertClose(param, ref.after[k][name], { rtol: 1e-5, atol: 1e-6, msg: `step ${k + 1} ${name}` });
      }
    }
    assert.deepEqual(opt.stateNames, Object.keys(ref.state));
    using sd = scopeless(() => opt.stateDict());
    for (const [name, st] of Object.entries(ref.state)) {
      assertClose(sd.t[`${name}.exp_avg`], st.exp_avg, { rtol: 1e-5, atol: 1e-7, msg: `${name}.exp_avg` });
      assertClose(sd.t[`${name}.exp_avg_sq`], st.exp_avg_sq, {
        rtol: 1e-5,
        atol: 1e-7,
        msg: `${name}.exp_avg_sq`,
      });
      assert.equal(sd.t[`${name}.step`].item(), st.step, `${name}.step`);
      assert.equal(opt.stepCount(name), st.step);
    }
    opt.zeroGrad();
    opt.dispose();
    disposeAll(ps);
  });
}

/** Holds a state dict and disposes its tensors at the end of a `using` block. */
function scopeless(make: () => Record<string, Tensor>): { t: Record<string, Tensor> } & Disposable {
  const t = make();
  return { t, [Symbol.dispose]: () => Object.values(t).forEach((x) => x.dispose()) };
}

leakFreeTest("AdamW: the groups matter (decaying everything changes the no-decay parameters)", () => {
  const ps = goldenParams();
  using opt = new AdamW(ps, { ...goldenOpts("auto"), noDecay: () => false });
  for (let k = 0; k < GOLDEN.lrs.length; k++) {
    setGoldenGrads(ps, k);
    opt.step(GOLDEN.lrs[k]);
  }
  const name = "blocks.0.norm1.weight";
  const got = ps.find((p) => p.name === name)!.param.toArray() as Float32Array;
  const want = GOLDEN.runs.fused.after[4][name];
  const maxDiff = Math.max(...want.map((v, i) => Math.abs(v - got[i])));
  assert.ok(maxDiff > 1e-3, `weight decay on ${name} should be visible, max diff ${maxDiff}`);
  opt.zeroGrad();
  disposeAll(ps);
});

// ---------------------------------------------------------------------------------------- frozen / late

leakFreeTest(
  "AdamW: frozen parameters stay bit-identical and get no state; late ones get state later",
  () => {
    const rng = prng(7);
    using w = randTensor([4, 5], rng, 1, true);
    using frozen = randTensor([5, 3], rng, 1, false); // a 2-d weight: in the decay group
    using late = randTensor([3, 2], rng, 1, true);
    using b = randTensor([5], rng, 1, true);
    using frozenInit = frozen.clone();
    using opt = new AdamW([
      { name: "w", param: w },
      { name: "frozen.weight", param: frozen },
      { name: "late.weight", param: late },
      { name: "b.bias", param: b },
    ], { lr: 0.5, weightDecay: 0.5 });
    assert.ok(opt.decayNames.includes("frozen.weight"));
    const before = liveTensors();
    for (let k = 0; k < 3; k++) {
      using gw = randTensor([4, 5], rng), gb = randTensor([5], rng);
      setGrad(w, gw);
      setGrad(b, gb);
      assert.equal(opt.step(), 2);
      assertBitEqual(frozen, frozenInit, `frozen after step ${k + 1}`);
      assert.equal(frozen.grad, null);
      assert.deepEqual(opt.stateNames, ["w", "b.bias"]);
    }
    // Exactly 3 state tensors per stepped parameter, nothing else left behind.
    assert.equal(liveTensors(), before + 6);
    assert.equal(opt.stepCount("frozen.weight"), 0);
    assert.equal(opt.stepCount("late.weight"), 0);
    using lateInit = late.clone();
    using gl = randTensor([3, 2], rng), gw = randTensor([4, 5], rng);
    setGrad(late, gl);
    setGrad(w, gw);
    b.zeroGrad();
    assert.equal(opt.step(), 2);
    assert.deepEqual(opt.stateNames, ["w", "late.weight", "b.bias"]);
    assert.equal(opt.stepCount("late.weight"), 1);
    assert.equal(opt.stepCount("w"), 4);
    assert.equal(opt.stepCount("b.bias"), 3);
    assert.equal(liveTensors(), before + 9 + 3); // + lateInit, gl, gw
    assert.notDeepEqual(bits(late), bits(lateInit));
    assertBitEqual(frozen, frozenInit, "frozen at the end");
    opt.zeroGrad();
    assert.equal(w.grad, null);
    assert.equal(late.grad, null);
  },
);

leakFreeTest("AdamW: step inside a scope keeps the state alive", () => {
  using p = tensor([[1, 2], [3, 4]], { requiresGrad: true });
  using g = tensor([[0.1, -0.2], [0.3, -0.4]]);
  using opt = new AdamW([{ name: "p", param: p }], { lr: 0.1 });
  for (let k = 0; k < 2; k++) {
    scope(() => {
      setGrad(p, g);
      opt.step();
      using sd = scopeless(() => opt.stateDict());
      assert.equal(sd.t["p.step"].item(), k + 1);
    });
  }
  assert.equal(opt.stepCount("p"), 2);
  p.zeroGrad();
});

// ---------------------------------------------------------------------------------------- releaseState

leakFreeTest("AdamW: releaseState frees the state tensors; a later gradient starts fresh", () => {
  const rng = prng(11);
  using a = randTensor([3, 4], rng, 1, true);
  using c = randTensor([4], rng, 1, true);
  using opt = new AdamW([{ name: "a", param: a }, { name: "c", param: c }], { lr: 0.1 });
  using ga = randTensor([3, 4], rng), gc = randTensor([4], rng);
  setGrad(a, ga);
  setGrad(c, gc);
  opt.step();
  opt.step();
  const live = liveTensors();
  opt.releaseState(["a"]);
  assert.equal(liveTensors(), live - 3);
  assert.deepEqual(opt.stateNames, ["c"]);
  opt.releaseState(["a"]); // no state: nothing happens
  assert.equal(liveTensors(), live - 3);
  assert.throws(
    () => opt.releaseState(["nope"]),
    (e) => e instanceof TorchError && /no parameter named 'nope'/.test(e.message),
  );
  opt.step();
  assert.equal(opt.stepCount("a"), 1);
  assert.equal(opt.stepCount("c"), 3);
  assert.equal(liveTensors(), live);
  opt.dispose();
  assert.equal(liveTensors(), live - 6);
  assert.throws(() => opt.step(), /disposed/);
  opt.zeroGrad();
});

// ---------------------------------------------------------------------------------------- state dict

/** The parameters of the round-trip runs: one frozen, one that gets gradients from step 2 on. */
const RT_SHAPES: Record<string, number[]> = {
  "blocks.0.attn.proj.weight": [6, 4],
  "blocks.0.attn.proj.bias": [6],
  "blocks.0.norm1.weight": [4],
  "pos_embed": [1, 3, 4],
  "frozen.weight": [4, 4],
  "late.weight": [2, 4],
};

function rtParams(): { name: string; param: Tensor }[] {
  const rng = prng(2024);
  return Object.entries(RT_SHAPES).map(([name, shape]) => ({
    name,
    param: randTensor(shape, rng, 1, name !== "frozen.weight"),
  }));
}

/** Step k's gradients (deterministic in k) and lr; late.weight has none before step 2. */
function rtStep(opt: AdamW, ps: { name: string; param: Tensor }[], k: number): void {
  const rng = prng(100 + k);
  for (const { name, param } of ps) {
    param.zeroGrad();
    if (name === "frozen.weight" || (name === "late.weight" && k < 2)) continue;
    using g = randTensor(RT_SHAPES[name], rng, 0.5 + k);
    param.setGrad(g);
  }
  opt.step(0.05 * (1 + (k % 3)));
}

for (const impl of ["fused", "foreach"] as const) {
  leakFreeTest(`AdamW (${impl}): stateDict/loadStateDict round trip continues bit-exactly`, () => {
    const N = 6, H = 3;
    const opts: AdamWOptions = { lr: 0.1, impl };
    // Straight run.
    const a = rtParams();
    const optA = new AdamW(a, opts);
    for (let k = 0; k < N; k++) rtStep(optA, a, k);
    // Half, save, load into a fresh optimizer over copies of the parameters, other half.
    const b = rtParams();
    const optB = new AdamW(b, opts);
    for (let k = 0; k < H; k++) rtStep(optB, b, k);
    const c = b.map(({ name, param }) => {
      using d = param.detach();
      const q = d.clone();
      if (param.requiresGrad) q.requiresGrad_(true);
      return { name, param: q };
    });
    const sd = optB.stateDict();
    assert.deepEqual(
      Object.keys(sd).sort(),
      [
        "blocks.0.attn.proj.weight",
        "blocks.0.attn.proj.bias",
        "blocks.0.norm1.weight",
        "pos_embed",
        "late.weight",
      ]
        .flatMap((n) => [`${n}.exp_avg`, `${n}.exp_avg_sq`, `${n}.step`]).sort(),
    );
    assert.equal(sd["late.weight.step"].item(), 1);
    assert.equal(sd["pos_embed.step"].item(), 3);
    const optC = new AdamW(c, opts);
    optC.loadStateDict(sd);
    for (const t of Object.values(sd)) t.dispose();
    optB.dispose();
    assert.equal(optC.stepCount("late.weight"), 1);
    for (let k = H; k < N; k++) rtStep(optC, c, k);
    for (let i = 0; i < a.length; i++) {
      assertBitEqual(c[i].param, a[i].param, `${a[i].name} after ${N} steps`);
    }
    using sdA = scopeless(() => optA.stateDict()), sdC = scopeless(() => optC.stateDict());
    for (const k of Object.keys(sdA.t)) assertBitEqual(sdC.t[k], sdA.t[k], k);
    for (const ps of [a, b, c]) {
      for (const p of ps) p.param.zeroGrad();
      disposeAll(ps);
    }
    optA.dispose();
    optC.dispose();
  });
}

leakFreeTest("AdamW: stateDict aliases share storage; copy: true does not", () => {
  using p = tensor([1, 2, 3], { requiresGrad: true });
  using g = tensor([0.5, -0.5, 1]);
  using opt = new AdamW([{ name: "p", param: p }], { lr: 0.1 });
  setGrad(p, g);
  opt.step();
  using alias = scopeless(() => opt.stateDict());
  using copy = scopeless(() => opt.stateDict({ copy: true }));
  const m1 = Array.from(copy.t["p.exp_avg"].toArray() as Float32Array);
  opt.step();
  assert.deepEqual(Array.from(copy.t["p.exp_avg"].toArray() as Float32Array), m1);
  assert.notDeepEqual(Array.from(alias.t["p.exp_avg"].toArray() as Float32Array), m1);
  assert.equal(alias.t["p.step"].item(), 2);
  assert.equal(copy.t["p.step"].item(), 1);
  p.zeroGrad();
});

leakFreeTest("AdamW: loadStateDict rejects bad dicts with clear errors and changes nothing", () => {
  using w = tensor([[1, 2], [3, 4]], { requiresGrad: true });
  using bias = tensor([1, 2], { requiresGrad: true });
  using gw = tensor([[1, 1], [1, 1]]), gb = tensor([1, 1]);
  using opt = new AdamW([{ name: "w", param: w }, { name: "b.bias", param: bias }], { lr: 0.1 });
  setGrad(w, gw);
  setGrad(bias, gb);
  opt.step();
  using good = scopeless(() => opt.stateDict({ copy: true }));
  using wrongShape = tensor([1, 2, 3, 4]);
  using half = tensor(1.5);
  using two = tensor([1, 2]);
  const cases: [string, Record<string, Tensor>, RegExp][] = [
    ["unknown name", { ...good.t, "x.exp_avg": good.t["w.exp_avg"] }, /no parameter named 'x'/],
    ["bad suffix", { ...good.t, "w.momentum": good.t["w.exp_avg"] }, /'w\.momentum' does not end with/],
    [
      "missing entry",
      Object.fromEntries(Object.entries(good.t).filter(([k]) => k !== "w.exp_avg_sq")),
      /'w' has no 'w\.exp_avg_sq' entry/,
    ],
    [
      "shape mismatch",
      { ...good.t, "w.exp_avg": wrongShape },
      /'w\.exp_avg' has shape \[4\] but the parameter has shape \[2, 2\]/,
    ],
    ["fractional step", { ...good.t, "w.step": half }, /'w\.step' must be a non-negative integer, got 1\.5/],
    ["step with two values", { ...good.t, "w.step": two }, /'w\.step' must hold one value/],
  ];
  const live = liveTensors();
  for (const [what, sd, re] of cases) {
    assert.throws(
      () => opt.loadStateDict(sd),
      (e) => e instanceof TorchError && e.op === "loadStateDict" && re.test(e.message),
      what,
    );
    assert.equal(liveTensors(), live, `${what}: nothing allocated`);
  }
  assert.deepEqual(opt.stateNames, ["w", "b.bias"]);
  assert.equal(opt.stepCount("w"), 1);
  // A dict without b.bias drops its state (as torch's load_state_dict replaces the whole state).
  opt.loadStateDict(Object.fromEntries(Object.entries(good.t).filter(([k]) => k.startsWith("w."))));
  assert.deepEqual(opt.stateNames, ["w"]);
  w.zeroGrad();
  bias.zeroGrad();
});

leakFreeTest("AdamW: constructor and step argument checks", () => {
  using p = tensor([1, 2]);
  assert.throws(
    () => new AdamW([{ name: "p", param: p }, { name: "p", param: p }], { lr: 1 }),
    /duplicate parameter name 'p'/,
  );
  assert.throws(
    () => new AdamW([{ name: "p", param: p }, { name: "q", param: p }], { lr: 1 }),
    /listed twice/,
  );
  assert.throws(() => new AdamW([], { lr: -1 }), /lr must be/);
  assert.throws(() => new AdamW([], { lr: 1, betas: [0.9, 1] }), /beta2/);
  using opt = new AdamW([{ name: "p", param: p }], { lr: 1 });
  assert.throws(() => opt.step(NaN), /lr must be/);
  assert.equal(opt.step(), 0);
  assert.throws(() => opt.stepCount("q"), /no parameter named 'q'/);
});

// ---------------------------------------------------------------------------------------- kernels

leakFreeTest("AdamW: fused and foreach agree within 1e-6 over 10 steps", () => {
  const shapes: Record<string, number[]> = {
    "l1.weight": [32, 16],
    "l1.bias": [32],
    "l2.weight": [8, 32],
    "norm.weight": [8],
  };
  const make = () => {
    const rng = prng(5);
    return Object.entries(shapes).map(([name, shape]) => ({ name, param: randTensor(shape, rng, 1, true) }));
  };
  const pf = make(), pe = make();
  const of = new AdamW(pf, { lr: 1e-2, impl: "fused" }), oe = new AdamW(pe, { lr: 1e-2, impl: "foreach" });
  const sched = warmupCosine({ baseLr: 1e-2, minLr: 1e-4, warmupSteps: 3, totalSteps: 10 });
  for (let k = 0; k < 10; k++) {
    const rng = prng(50 + k);
    for (let i = 0; i < pf.length; i++) {
      using g = randTensor(shapes[pf[i].name], rng);
      setGrad(pf[i].param, g);
      setGrad(pe[i].param, g);
    }
    of.step(sched(k + 1));
    oe.step(sched(k + 1));
  }
  for (let i = 0; i < pf.length; i++) {
    assertClose(pf[i].param, pe[i].param.toArray() as Float32Array, { rtol: 0, atol: 1e-6, msg: pf[i].name });
  }
  of.zeroGrad();
  oe.zeroGrad();
  of.dispose();
  oe.dispose();
  disposeAll(pf);
  disposeAll(pe);
});

leakFreeTest("AdamW.clipGradNorm: global norm over parameters with gradients, clipped in place", () => {
  using a = tensor([3, 0], { requiresGrad: true });
  using b = tensor([[0, 4]], { requiresGrad: true });
  using c = tensor([1], { requiresGrad: true }); // no gradient: skipped
  using ga = tensor([3, 0]), gb = tensor([[0, 4]]);
  setGrad(a, ga);
  setGrad(b, gb);
  using opt = new AdamW([{ name: "a", param: a }, { name: "b", param: b }, { name: "c", param: c }], {
    lr: 1,
  });
  using n = opt.clipGradNorm(1);
  assertClose([n.item()], [5], { rtol: 1e-6 });
  using after = opt.clipGradNorm(0);
  assertClose([after.item()], [1], { rtol: 1e-5 });
  opt.zeroGrad();
});

// ---------------------------------------------------------------------------------------- schedule

Deno.test("warmupCosine: hand-computed values", () => {
  const lr = warmupCosine({ baseLr: 1e-3, minLr: 1e-5, warmupSteps: 10, totalSteps: 110 });
  const close = (a: number, b: number, what: string) =>
    assert.ok(Math.abs(a - b) <= 1e-15 + 1e-12 * Math.abs(b), `${what}: ${a} vs ${b}`);
  close(lr(0), 0, "step 0");
  close(lr(5), 5e-4, "mid warmup");
  close(lr(10), 1e-3, "warmup end");
  close(lr(60), 5.05e-4, "mid cosine"); // 1e-5 + 0.99e-3 · ½(1 + cos π/2)
  close(lr(35), 1e-5 + 0.99e-3 * 0.5 * (1 + Math.SQRT1_2), "quarter cosine");
  close(lr(110), 1e-5, "end");
  close(lr(1000), 1e-5, "past the end");
  close(lr(-1), 0, "negative step");
  const defaults = warmupCosine({ baseLr: 1e-3, warmupSteps: 0, totalSteps: 100 });
  close(defaults(0), 1e-3, "no warmup: base at step 0");
  close(defaults(100), 1e-5, "default minLr");
  assert.throws(() => warmupCosine({ baseLr: 1e-3, warmupSteps: 10, totalSteps: 10 }), /totalSteps/);
  assert.throws(() => warmupCosine({ baseLr: 1e-3, warmupSteps: -1, totalSteps: 10 }), /warmupSteps/);
});

Deno.test("warmupCosine: increasing during warmup, non-increasing after", () => {
  const lr = warmupCosine({ baseLr: 1.5e-4, minLr: 1e-6, warmupSteps: 40, totalSteps: 800 });
  for (let s = 1; s <= 40; s++) assert.ok(lr(s) > lr(s - 1), `warmup at ${s}`);
  for (let s = 41; s <= 850; s++) assert.ok(lr(s) <= lr(s - 1), `decay at ${s}`);
  assert.ok(lr(799) > lr(800));
});

Deno.test("scaledLr: VideoMAE's base·batch/256", () => {
  assert.equal(scaledLr(1.5e-4, 256), 1.5e-4);
  assert.equal(scaledLr(1.5e-4, 1024), 6e-4);
  assert.equal(scaledLr(1e-3, 64), 2.5e-4);
  assert.throws(() => scaledLr(1e-3, 0), /batchSize/);
});
