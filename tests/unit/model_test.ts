/**
 * The video MAE against an independent PyTorch reference (golden/video_mae.safetensors, made by
 * golden/make_video_mae_golden.py after VideoMAE's modeling_pretrain.py; regenerate with
 * `.venv/bin/python3 tests/golden/make_video_mae_golden.py`), module structure (names and shapes of the
 * `tiny` and `base` presets, state-dict loading, train/eval, requiresGrad_, to, dispose), masking and
 * patch-embedding errors.
 *
 * The golden comparison runs in float64 on both sides: the reference's parameters and input are f32 values
 * (saved as F32, exact in f64), both compute in f64, and the outputs and gradients are compared with
 * rtol 1e-9, atol 1e-12.
 * @module
 */
import assert from "node:assert/strict";
import {
  liveTensors,
  loadSafetensors,
  manualSeed,
  randn,
  scope,
  type Tensor,
  TorchError,
} from "../../mod.ts";
import { Block, PatchEmbed3d } from "../../src/nn/layers.ts";
import { type Module, ModuleList } from "../../src/nn/module.ts";
import { sincos3d, sincosSplit } from "../../src/nn/pos_embed.ts";
import {
  gatherTokens,
  makeMask,
  maskedCount,
  type MaskKind,
  randomMask,
  tubeMask,
} from "../../src/models/masking.ts";
import { maskedMse, pixelTargets } from "../../src/models/targets.ts";
import { VideoMAE, type VideoMAEConfig } from "../../src/models/video_mae.ts";
import { PRESETS } from "../../src/models/presets.ts";
import { assertClose, leakFreeTest } from "../helpers.ts";

// ---------------------------------------------------------------------------------------- helpers

const GOLDEN_PATH = new URL("../golden/video_mae.safetensors", import.meta.url).pathname;

/** The golden file's small configuration (CFG in make_video_mae_golden.py). */
const SMALL: VideoMAEConfig = {
  inChans: 3,
  frames: 4,
  height: 8,
  width: 12,
  patch: 4,
  tubelet: 2,
  encoderDim: 32,
  encoderDepth: 2,
  encoderHeads: 4,
  mlpRatio: 4,
  decoderDim: 20,
  decoderDepth: 1,
  decoderHeads: 2,
  qkvBias: true,
  posEmbed: "sincos",
};

/** The clip geometry of VideoMAE's Kinetics/SSv2 pretraining: 16 frames of 224², patch 16, tubelet 2. */
const GEOMETRY = {
  inChans: 3,
  frames: 16,
  height: 224,
  width: 224,
  patch: 16,
  tubelet: 2,
  qkvBias: true,
  posEmbed: "sincos" as const,
};

/** f64 comparison tolerance of the golden outputs and gradients. */
const TOL = { rtol: 1e-9, atol: 1e-12 };

const NON_PARAM = /^(input|keep|masked|pos\.|out\.|grad\.)/;

/** The golden tensors split into parameters and the rest, plus metadata. */
interface Golden {
  params: Record<string, Tensor>;
  data: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/** Loads the golden file (its tensors belong to the current scope). */
function loadGolden(): Golden {
  const { tensors, metadata } = loadSafetensors(GOLDEN_PATH);
  const params: Record<string, Tensor> = {}, data: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(tensors)) (NON_PARAM.test(k) ? data : params)[k] = t;
  return { params, data, metadata };
}

/** Builds the small model in float64 with the golden parameters loaded strictly. */
function goldenModel(g: Golden): VideoMAE {
  const model = new VideoMAE(SMALL).to({ dtype: "f64" });
  try {
    model.loadStateDict(g.params);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** Names and shapes of a state dict, sorted by name. */
function spec(sd: Record<string, Tensor>): [string, number[]][] {
  return Object.entries(sd).map(([k, t]) => [k, t.shape] as [string, number[]]).sort((a, b) =>
    a[0] < b[0] ? -1 : 1
  );
}

/** Every module in a tree, with its path. */
function allModules(m: Module, prefix = ""): [string, Module][] {
  const out: [string, Module][] = [[prefix, m]];
  for (const [n, c] of m.children()) out.push(...allModules(c, prefix ? `${prefix}.${n}` : n));
  return out;
}

/**
 * The parameter count of a configuration, worked out by hand from VideoMAE's layers (sin-cos position tables
 * are not parameters): patch embedding, per block norm1 + qkv + q/v bias + proj + norm2 + fc1 + fc2, the
 * encoder norm, encoder→decoder, mask token, decoder blocks, decoder norm, head.
 */
function expectedParams(c: VideoMAEConfig): number {
  const block = (d: number) => {
    const h = Math.round(d * c.mlpRatio);
    return 2 * d + 3 * d * d + 2 * d + (d * d + d) + 2 * d + (d * h + h) + (h * d + d);
  };
  const target = c.tubelet * c.patch * c.patch * c.inChans;
  const e = c.encoderDim, d = c.decoderDim;
  return (e * c.inChans * c.tubelet * c.patch * c.patch + e) + c.encoderDepth * block(e) + 2 * e +
    e * d + d + c.decoderDepth * block(d) + 2 * d + (d * target + target);
}

const asNumbers = (t: Tensor): number[] => Array.from(t.toArray() as ArrayLike<number | bigint>, Number);

/** The rows of a [B, K] index tensor. */
function rows(t: Tensor): number[][] {
  const [b, k] = t.shape;
  const flat = asNumbers(t);
  return Array.from({ length: b }, (_, i) => flat.slice(i * k, (i + 1) * k));
}

// ----------------------------------------------------------------------------- golden comparisons

leakFreeTest(
  "golden: the VideoMAE reference's state dict loads strictly by name into the small model",
  () => {
    scope(() => {
      const g = loadGolden();
      using model = new VideoMAE(SMALL);
      // Same names and shapes as the reference (no position tables: they are fixed, non-persistent).
      assert.deepEqual(spec(model.stateDict()), spec(g.params));
      const report = model.loadStateDict(g.params);
      assert.deepEqual(report, { missing: [], unexpected: [], misShaped: [] });
      // Loaded into the f32 model: the f32 golden values exactly.
      const sd = model.stateDict();
      for (const [k, t] of Object.entries(g.params)) assert.deepEqual(sd[k].toArray(), t.toArray(), k);
      assert.deepEqual(
        model.namedBuffers().map(([k]) => k).sort(),
        ["decoder_pos_embed", "encoder.pos_embed"],
      );
    });
  },
);

leakFreeTest("golden: 3-d sin-cos position tables (f32) match the reference's", () => {
  scope(() => {
    const g = loadGolden();
    assert.deepEqual(sincosSplit(32), [12, 10, 10]);
    assert.deepEqual(sincosSplit(20), [8, 6, 6]);
    using model = new VideoMAE(SMALL);
    const bufs = Object.fromEntries(model.namedBuffers());
    assert.deepEqual(bufs["encoder.pos_embed"].shape, [1, 12, 32]);
    assertClose(bufs["encoder.pos_embed"], asNumbers(g.data["pos.encoder"]), { rtol: 0, atol: 1e-7 });
    assertClose(bufs["decoder_pos_embed"], asNumbers(g.data["pos.decoder"]), { rtol: 0, atol: 1e-7 });
    assertClose(sincos3d([2, 2, 3], 20), asNumbers(g.data["pos.decoder"]), { rtol: 0, atol: 1e-7 });
  });
});

leakFreeTest("golden: embedding, first block, encoder, predictions, targets and loss in float64", () => {
  scope(() => {
    const g = loadGolden();
    using model = goldenModel(g);
    const x = g.data.input.double();
    const { keep, masked } = g.data;
    const enc = model.encoder;

    const embedded = enc.embed(x);
    assert.equal(embedded.dtype, "f64");
    assertClose(embedded, asNumbers(g.data["out.embed"]), { ...TOL, msg: "embed" });
    const block0 = enc.blocks.items[0].forward(gatherTokens(embedded, keep));
    assert.deepEqual(block0.shape, [2, 5, 32]);
    assertClose(block0, asNumbers(g.data["out.block0"]), { ...TOL, msg: "block0" });
    // runBlocks(…, 0, 1) is the same single block.
    assertClose(enc.runBlocks(gatherTokens(embedded, keep), 0, 1), asNumbers(g.data["out.block0"]), TOL);

    const encoded = enc.forward(x, keep);
    assert.deepEqual(encoded.shape, [2, 5, 32]);
    assertClose(encoded, asNumbers(g.data["out.encoder"]), { ...TOL, msg: "encoder" });

    const pred = model.forward(x, keep, masked);
    assert.deepEqual(pred.shape, [2, 7, 96]);
    assertClose(pred, asNumbers(g.data["out.pred"]), { ...TOL, msg: "pred" });
    // decode() of the encoder output is forward().
    assertClose(model.decode(encoded, keep, masked), asNumbers(g.data["out.pred"]), TOL);

    const targets = pixelTargets(x, SMALL.tubelet, SMALL.patch);
    assert.deepEqual(targets.shape, [2, 12, 96]);
    assertClose(targets, asNumbers(g.data["out.targets"]), { ...TOL, msg: "targets" });

    const loss = maskedMse(pred, targets, masked);
    assert.deepEqual(loss.shape, []);
    assertClose([loss.item()], asNumbers(g.data["out.loss"]), { ...TOL, msg: "loss" });
  });
});

leakFreeTest("golden: gradients of the loss in float64", () => {
  scope(() => {
    const g = loadGolden();
    using model = goldenModel(g);
    const x = g.data.input.double();
    const { keep, masked } = g.data;
    const loss = maskedMse(
      model.forward(x, keep, masked),
      pixelTargets(x, SMALL.tubelet, SMALL.patch),
      masked,
    );
    loss.backward();
    const params = Object.fromEntries(model.namedParameters());
    for (
      const name of ["encoder.blocks.0.attn.qkv.weight", "mask_token", "encoder.patch_embed.proj.weight"]
    ) {
      const grad = params[name].grad;
      assert.ok(grad, `no gradient for ${name}`);
      assert.deepEqual(grad.shape, params[name].shape);
      assertClose(grad, asNumbers(g.data[`grad.${name}`]), { ...TOL, msg: `grad ${name}` });
    }
    // Every parameter took part (the fixed position tables have no gradient and are no parameters).
    for (const [name, p] of Object.entries(params)) assert.ok(p.grad, `no gradient for ${name}`);
  });
});

// ------------------------------------------------------------------------------- module structure

leakFreeTest("presets: tiny's names, shapes and parameter count are the reference's", () => {
  scope(() => {
    const g = loadGolden();
    const cfg = { ...PRESETS.tiny, ...GEOMETRY };
    using model = new VideoMAE(cfg);
    const ref = (JSON.parse(g.metadata["tiny.state_dict"]) as [string, number[]][]).sort((a, b) =>
      a[0] < b[0] ? -1 : 1
    );
    assert.deepEqual(spec(model.stateDict()), ref);
    assert.equal(model.numParameters(), Number(g.metadata["tiny.num_params"]));
    assert.equal(model.numParameters(), expectedParams(cfg));
    assert.equal(model.encoder.blocks.length, 12);
    assert.equal(model.decoder.blocks.length, 2);
  });
});

leakFreeTest(
  "presets: base is VideoMAE ViT-B (94,210,944 parameters), names and shapes as the reference",
  () => {
    scope(() => {
      const g = loadGolden();
      const cfg = { ...PRESETS.base, ...GEOMETRY };
      // By hand: encoder 86,227,200 (patch embedding 1,180,416 + 12 blocks of 7,087,104 + norm 1,536),
      // encoder_to_decoder 294,912, mask token 384, decoder 7,688,448 (4 blocks of 1,774,080 + norm 768 +
      // head 591,360).
      assert.equal(expectedParams(cfg), 94_210_944);
      using model = new VideoMAE(cfg); // built once: ~380 MB of f32
      assert.equal(model.numParameters(), 94_210_944);
      assert.equal(Number(g.metadata["base.num_params"]), 94_210_944);
      const sd = model.stateDict();
      const ref = (JSON.parse(g.metadata["base.state_dict"]) as [string, number[]][]).sort((a, b) =>
        a[0] < b[0] ? -1 : 1
      );
      assert.deepEqual(spec(sd), ref);
      assert.equal(model.encoder.blocks.length, 12);
      assert.equal(model.decoder.blocks.length, 4);
      assert.equal(model.encoder.numTokens, 8 * 14 * 14);
      assert.deepEqual(sd["encoder.patch_embed.proj.weight"].shape, [768, 3, 2, 16, 16]);
      assert.deepEqual(sd["encoder.blocks.11.attn.qkv.weight"].shape, [2304, 768]);
      assert.deepEqual(sd["encoder.blocks.11.mlp.fc1.weight"].shape, [3072, 768]);
      assert.deepEqual(sd["encoder_to_decoder.weight"].shape, [384, 768]);
      assert.deepEqual(sd["mask_token"].shape, [1, 1, 384]);
      assert.deepEqual(sd["decoder.head.weight"].shape, [1536, 384]);
      assert.ok(!("encoder.blocks.0.attn.qkv.bias" in sd) && !("encoder_to_decoder.bias" in sd));
      assert.ok(!("encoder.pos_embed" in sd) && !("decoder_pos_embed" in sd));
      assert.deepEqual(Object.fromEntries(model.namedBuffers()).decoder_pos_embed.shape, [1, 1568, 384]);
    });
  },
);

leakFreeTest(
  "loadStateDict: strict errors name missing, unexpected and mis-shaped keys; non-strict reports",
  () => {
    scope(() => {
      using model = new VideoMAE(SMALL);
      using other = new VideoMAE(SMALL);
      const sd: Record<string, Tensor> = { ...other.stateDict() };
      delete sd["encoder.norm.bias"];
      delete sd["mask_token"];
      sd["encoder.blocks.7.attn.qkv.weight"] = other.stateDict()["encoder.blocks.0.attn.qkv.weight"];
      sd["decoder.head.weight"] = other.stateDict()["decoder.head.weight"].transpose(0, 1);
      const before = model.stateDict()["encoder.blocks.0.mlp.fc1.weight"].clone();
      assert.throws(
        () => model.loadStateDict(sd),
        (e: unknown) => {
          assert.ok(e instanceof TorchError);
          assert.match(e.message, /missing keys: .*encoder\.norm\.bias/);
          assert.match(e.message, /missing keys: .*mask_token/);
          assert.match(e.message, /unexpected keys: encoder\.blocks\.7\.attn\.qkv\.weight/);
          assert.match(e.message, /mis-shaped: decoder\.head\.weight: expected \[96, 20\], got \[20, 96\]/);
          return true;
        },
      );
      // Strict failure copies nothing.
      assert.deepEqual(model.stateDict()["encoder.blocks.0.mlp.fc1.weight"].toArray(), before.toArray());

      const report = model.loadStateDict(sd, { strict: false });
      assert.deepEqual(report.missing.sort(), ["encoder.norm.bias", "mask_token"]);
      assert.deepEqual(report.unexpected, ["encoder.blocks.7.attn.qkv.weight"]);
      assert.deepEqual(report.misShaped, ["decoder.head.weight: expected [96, 20], got [20, 96]"]);
      const now = model.stateDict();
      // The good keys were copied; the mis-shaped and missing ones were left alone.
      assert.deepEqual(
        now["encoder.blocks.0.mlp.fc1.weight"].toArray(),
        other.stateDict()["encoder.blocks.0.mlp.fc1.weight"].toArray(),
      );
      assert.notDeepEqual(
        now["decoder.head.weight"].toArray(),
        other.stateDict()["decoder.head.weight"].toArray(),
      );
      assert.notDeepEqual(now["mask_token"].toArray(), other.stateDict()["mask_token"].toArray());
    });
  },
);

leakFreeTest("train()/eval() propagate to every descendant", () => {
  using model = new VideoMAE(SMALL);
  const mods = allModules(model);
  assert.ok(mods.length > 20);
  assert.ok(mods.every(([, m]) => m.training));
  assert.equal(model.eval(), model);
  assert.deepEqual(mods.filter(([, m]) => m.training).map(([n]) => n), []);
  model.decoder.train();
  assert.ok(!model.training && !model.encoder.blocks.items[0].attn.training);
  assert.ok(model.decoder.blocks.items[0].mlp.fc2.training && model.decoder.head.training);
  model.train();
  assert.ok(mods.every(([, m]) => m.training));
  model.train(false);
  assert.ok(mods.every(([, m]) => !m.training));
});

leakFreeTest("requiresGrad_(false) on a submodule turns off exactly its parameters", () => {
  using model = new VideoMAE(SMALL);
  const total = model.numParameters();
  model.encoder.blocks.items[1].requiresGrad_(false);
  for (const [name, p] of model.namedParameters()) {
    assert.equal(p.requiresGrad, !name.startsWith("encoder.blocks.1."), name);
  }
  const frozen = model.encoder.blocks.items[1].numParameters();
  assert.equal(model.numParameters(true), total - frozen);
  assert.equal(model.numParameters(), total);
  model.encoder.requiresGrad_(false);
  for (const [name, p] of model.namedParameters()) {
    assert.equal(p.requiresGrad, !name.startsWith("encoder."), name);
  }
  model.requiresGrad_(true);
  assert.equal(model.numParameters(true), total);
});

leakFreeTest(
  "to({dtype: 'f64'}) converts parameters and buffers, keeping names, order and requiresGrad",
  () => {
    using model = new VideoMAE(SMALL);
    model.encoder.patchEmbed.requiresGrad_(false);
    const names = model.namedParameters().map(([n, p]) => [n, p.shape, p.requiresGrad]);
    const values = scope(() => model.parameters().map((p) => p.toArray()));
    const live = liveTensors();
    assert.equal(model.to({ dtype: "f64" }), model);
    assert.equal(liveTensors(), live, "the f32 tensors are freed");
    assert.deepEqual(model.namedParameters().map(([n, p]) => [n, p.shape, p.requiresGrad]), names);
    model.parameters().forEach((p, i) => {
      assert.equal(p.dtype, "f64");
      assert.ok(p.isLeaf);
      assert.deepEqual(Array.from(p.toArray() as Float64Array), Array.from(values[i] as Float32Array));
    });
    for (const [, b] of model.namedBuffers()) assert.equal(b.dtype, "f64");
    // Layers reach the new tensors: an f64 forward and backward fill the new (trainable) parameters' grads.
    scope(() => {
      const x = randn([1, 3, 4, 8, 12], { dtype: "f64" });
      const mask = randomMask(1, 12, 0.5);
      const loss = model.forward(x, mask.keep, mask.masked).square().mean();
      assert.equal(loss.dtype, "f64");
      loss.backward();
      for (const [name, p] of model.namedParameters()) {
        assert.equal(p.grad === null, name.startsWith("encoder.patch_embed."), name);
      }
    });
  },
);

leakFreeTest("dispose() frees every tensor of a model; `using` does too", () => {
  const base = liveTensors();
  const model = new VideoMAE(SMALL);
  // 3 blocks of 13 (norm1 2, q_bias, v_bias, qkv, proj 2, norm2 2, fc1 2, fc2 2), patch embedding 2,
  // encoder and decoder norms 4, encoder_to_decoder 1, mask token 1, head 2; and the 2 fixed position tables.
  assert.equal(model.parameters().length, 3 * 13 + 2 + 4 + 1 + 1 + 2);
  assert.equal(liveTensors() - base, model.parameters().length + 2);
  model.dispose();
  assert.equal(liveTensors(), base);
  model.dispose(); // idempotent
  assert.equal(liveTensors(), base);
  {
    using _m = new VideoMAE({ ...SMALL, posEmbed: "learned" });
    assert.ok(liveTensors() > base);
  }
  assert.equal(liveTensors(), base);
});

leakFreeTest("learned position embedding is a parameter [1, N, D] in the state dict", () => {
  using model = new VideoMAE({ ...SMALL, posEmbed: "learned" });
  const sd = model.stateDict();
  assert.deepEqual(sd["encoder.pos_embed"].shape, [1, 12, 32]);
  assert.ok(sd["encoder.pos_embed"].requiresGrad);
  assert.deepEqual(model.namedBuffers().map(([k]) => k), ["decoder_pos_embed"]);
  assert.equal(model.numParameters(), expectedParams(SMALL) + 12 * 32);
});

leakFreeTest("ModuleList names its items 0, 1, ... and Block's names are VideoMAE's", () => {
  using list = new ModuleList([new Block(8, 2), new Block(8, 2, 2, false)]);
  assert.equal(list.length, 2);
  const names = list.namedParameters().map(([n]) => n);
  assert.deepEqual(names.filter((n) => n.startsWith("0.")), [
    "0.norm1.weight",
    "0.norm1.bias",
    "0.attn.q_bias",
    "0.attn.v_bias",
    "0.attn.qkv.weight",
    "0.attn.proj.weight",
    "0.attn.proj.bias",
    "0.norm2.weight",
    "0.norm2.bias",
    "0.mlp.fc1.weight",
    "0.mlp.fc1.bias",
    "0.mlp.fc2.weight",
    "0.mlp.fc2.bias",
  ]);
  // Without qkvBias there are no q/v biases; mlpRatio 2 gives a hidden width of 16.
  assert.ok(!names.includes("1.attn.q_bias"));
  assert.deepEqual(list.items[1].mlp.fc1.weight.shape, [16, 8]);
});

// ------------------------------------------------------------------------------------------- masking

leakFreeTest("tubeMask keeps the same spatial positions at every time step", () => {
  scope(() => {
    manualSeed(7);
    const grid: [number, number, number] = [4, 3, 5];
    const hw = 15, nm = Math.floor(0.75 * hw);
    const { keep, masked } = tubeMask(3, grid, 0.75);
    assert.deepEqual(keep.shape, [3, 4 * (hw - nm)]);
    assert.deepEqual(masked.shape, [3, 4 * nm]);
    assert.equal(keep.dtype, "i64");
    for (const ids of [...rows(keep), ...rows(masked)]) {
      const k = ids.length / 4;
      const spatial = ids.slice(0, k);
      assert.ok(spatial.every((s) => s < hw));
      for (let t = 0; t < 4; t++) {
        assert.deepEqual(
          ids.slice(t * k, (t + 1) * k),
          spatial.map((s) => s + t * hw),
        );
      }
    }
    checkPartition(keep, masked, 60);
  });
});

/** Asserts keep and masked are sorted, disjoint and together all n tokens, per sample. */
function checkPartition(keep: Tensor, masked: Tensor, n: number): void {
  const kr = rows(keep), mr = rows(masked);
  for (let b = 0; b < kr.length; b++) {
    for (const r of [kr[b], mr[b]]) for (let i = 1; i < r.length; i++) assert.ok(r[i - 1] < r[i], "sorted");
    const all = [...kr[b], ...mr[b]].sort((a, c) => a - c);
    assert.deepEqual(all, Array.from({ length: n }, (_, i) => i), "a partition of the tokens");
  }
}

leakFreeTest("randomMask: sizes, a sorted partition of the tokens, reproducible with manualSeed", () => {
  scope(() => {
    for (const [n, ratio] of [[1568, 0.9], [12, 0.5], [10, 0.75], [2, 0.5]] as const) {
      const { keep, masked } = randomMask(4, n, ratio);
      const nm = Math.floor(n * ratio);
      assert.equal(maskedCount(n, ratio), nm);
      assert.deepEqual(keep.shape, [4, n - nm]);
      assert.deepEqual(masked.shape, [4, nm]);
      checkPartition(keep, masked, n);
    }
    manualSeed(42);
    const a = randomMask(4, 100, 0.9);
    manualSeed(42);
    const b = randomMask(4, 100, 0.9);
    manualSeed(43);
    const c = randomMask(4, 100, 0.9);
    assert.deepEqual(rows(a.keep), rows(b.keep));
    assert.deepEqual(rows(a.masked), rows(b.masked));
    assert.notDeepEqual(rows(a.keep), rows(c.keep));
    // Samples of a batch differ.
    const ar = rows(a.keep);
    assert.ok(ar.some((r) => JSON.stringify(r) !== JSON.stringify(ar[0])));
  });
});

leakFreeTest("makeMask dispatches on the kind; tube masks are reproducible too", () => {
  scope(() => {
    const grid: [number, number, number] = [8, 14, 14];
    for (const kind of ["tube", "random"] as MaskKind[]) {
      manualSeed(5);
      const a = makeMask(kind, 2, grid, 0.9);
      manualSeed(5);
      const b = makeMask(kind, 2, grid, 0.9);
      manualSeed(6);
      const c = makeMask(kind, 2, grid, 0.9);
      assert.deepEqual(rows(a.keep), rows(b.keep), kind);
      assert.notDeepEqual(rows(a.keep), rows(c.keep), kind);
      checkPartition(a.keep, a.masked, 1568);
      // Tube: 176 of 196 positions masked at each of 8 steps; random: floor(0.9 · 1568) = 1411.
      assert.equal(a.masked.shape[1], kind === "tube" ? 8 * 176 : 1411, kind);
    }
  });
});

leakFreeTest("bad mask ratios and kinds are TorchErrors naming the problem", () => {
  for (const ratio of [0, 1, -0.1, 1.5, NaN]) {
    assert.throws(() => randomMask(2, 10, ratio), (e: unknown) => {
      assert.ok(e instanceof TorchError);
      assert.match(e.message, /mask ratio must be in \(0, 1\)/);
      return true;
    });
    assert.throws(() => tubeMask(2, [2, 2, 2], ratio), TorchError);
  }
  // Too few tokens to mask any: 0.05 of 10 is 0.
  assert.throws(() => randomMask(2, 10, 0.05), /mask ratio 0.05 of 10 tokens leaves 10 visible and 0 masked/);
  // A tube mask of a 1x1 spatial grid cannot keep one position and mask another.
  assert.throws(() => tubeMask(2, [4, 1, 1], 0.5), /of 1 tokens leaves 1 visible and 0 masked/);
  assert.throws(() => makeMask("block" as MaskKind, 1, [2, 2, 2], 0.5), /unknown mask kind 'block'/);
});

// -------------------------------------------------------------------------------- patch embedding

leakFreeTest("PatchEmbed3d: token order (t, h, w); rejects clips not divisible by tubelet/patch", () => {
  using pe = new PatchEmbed3d(3, 8, 2, 4);
  assert.deepEqual(pe.grid(4, 8, 12), [2, 2, 3]);
  scope(() => {
    assert.deepEqual(pe.forward(randn([2, 3, 4, 8, 12])).shape, [2, 12, 8]);
    assert.throws(() => pe.forward(randn([1, 3, 3, 8, 12])), (e: unknown) => {
      assert.ok(e instanceof TorchError);
      assert.match(e.message, /clip 3x8x12 \(T x H x W\) is not divisible by the tubelet 2 and patch 4/);
      return true;
    });
    assert.throws(() => pe.forward(randn([1, 3, 4, 8, 10])), /clip 4x8x10 .*tubelet 2 and patch 4/);
    assert.throws(
      () => pe.forward(randn([1, 1, 4, 8, 12])),
      /expected \[B, 3, T, H, W\], got \[1, 1, 4, 8, 12\]/,
    );
    assert.throws(() => pe.forward(randn([3, 4, 8, 12])), /expected \[B, 3, T, H, W\], got \[3, 4, 8, 12\]/);
  });
  // The model checks its configuration at construction, before allocating anything (so nothing leaks).
  const live = liveTensors();
  assert.throws(() => new VideoMAE({ ...SMALL, height: 10 }), /clip 4x10x12 .*tubelet 2 and patch 4/);
  assert.throws(() => new VideoMAE({ ...SMALL, frames: 5 }), /clip 5x8x12 .*tubelet 2 and patch 4/);
  assert.throws(() => new VideoMAE({ ...SMALL, encoderHeads: 5 }), /width 32 is not divisible by 5 heads/);
  assert.throws(() => new VideoMAE({ ...SMALL, decoderHeads: 3 }), /width 20 is not divisible by 3 heads/);
  assert.throws(() => new VideoMAE({ ...SMALL, decoderDim: 4, decoderHeads: 1 }), /width 4 is too small/);
  assert.throws(
    () => new VideoMAE({ ...SMALL, encoderDim: 33, encoderHeads: 3 }),
    /width 33 is too small or odd/,
  );
  assert.equal(liveTensors(), live);
});

leakFreeTest("Mlp: the tanh GELU option is fc2(geluTanh(fc1 x)), close to but not the exact GELU", () => {
  manualSeed(3);
  using exact = new Block(8, 2, 4, true);
  using approx = new Block(8, 2, 4, true, { gelu: "tanh" });
  approx.loadStateDict(scope(() => exact.stateDict()));
  assert.equal(exact.mlp.gelu, "none");
  assert.equal(approx.mlp.gelu, "tanh");
  scope(() => {
    const x = randn([2, 5, 8]).mul(3);
    const manual = approx.mlp.fc2.forward(approx.mlp.fc1.forward(x).gelu("tanh"));
    assertClose(approx.mlp.forward(x), manual.toArray() as Float32Array, { rtol: 0, atol: 0 });
    const d = approx.mlp.forward(x).sub(exact.mlp.forward(x)).abs().max().item();
    assert.ok(d > 0 && d < 1e-2, `tanh vs exact GELU differ by ${d}`);
  });
});
