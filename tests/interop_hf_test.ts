/**
 * Meeting PyTorch video researchers where they are (src/interop/): `import` of transformers' VideoMAE folders,
 * of VideoMAE's torch.save checkpoints and of our own runs; `export` to a folder transformers' `from_pretrained`
 * loads and to VideoMAE's `{"model": state_dict}`.
 *
 * (a) small random transformers models (every parameter randomised, saved by `save_pretrained`) imported give
 * transformers' encoder output on a fixed clip (and its decoder's predictions, whose final norm transformers
 * runs at eps 1e-5 against VideoMAE's 1e-6), at another clip too (the fixed table rebuilt), in both of
 * transformers' spellings of the attention biases, with mean pooling (no final norm), and at layer_norm_eps
 * 1e-12 (kept, or run at 1e-6 when asked); exported again, transformers reproduces its own output. (b) a run
 * trained with `model.posEmbed=videomae`, exported, loads with no missing or unexpected keys and gives `embed`'s
 * features; a `sincos` run is refused. (c) VideoMAE's checkpoint layouts (containers, prefixes, fine-tuning
 * heads, joined qkv biases, a learned table at another clip) imported give the same weights; `export --format
 * videomae` reads back as VideoMAE's code reads it. (d) through the command line: malformed inputs end in one
 * line naming the problem and exit code 2. The Python parts use the pinned transformers (tests/python_env.ts)
 * and are skipped, with the reason, only when it cannot be had.
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { modelConfig, parseConfig, type TrainConfig } from "../src/config.ts";
import { makeBatchSource } from "../src/data/source.ts";
import { ConfigError, DataError } from "../src/errors.ts";
import { extractFeatures } from "../src/eval/features.ts";
import { exportRun } from "../src/interop/export.ts";
import { fromHfName, hfMapping, officialStateDict } from "../src/interop/videomae_names.ts";
import { importWeights } from "../src/interop/import.ts";
import { resizeTable } from "../src/interop/pos_table.ts";
import { VideoMAE } from "../src/models/video_mae.ts";
import { AdamW } from "../src/optim/adamw.ts";
import { layerNorm } from "../src/torch/functional.ts";
import { loadModelCheckpoint, saveCheckpoint, verifyCheckpoint } from "../src/train/checkpoint.ts";
import { RunFolder } from "../src/train/run_folder.ts";
import { train } from "../src/train/trainer.ts";
import { CLI_PERMISSIONS, noLeak, SMALL_DATA, tempDir } from "./helpers.ts";
import { pythonWith } from "./python_env.ts";

const env = await pythonWith("transformers");
if (env.skip) console.warn(`interop_hf tests: the Python parts are skipped: ${env.skip}`);
const PY = env.python;
const HF_SCRIPT = decodeURIComponent(new URL("./interop/hf_videomae.py", import.meta.url).pathname);
const PTH_SCRIPT = decodeURIComponent(new URL("./interop/videomae_pth.py", import.meta.url).pathname);

/** Runs a Python script; returns its last line of output as JSON. */
async function py(script: string, args: string[]): Promise<unknown> {
  const r = await new Deno.Command(PY!, { args: [script, ...args], stdout: "piped", stderr: "piped" })
    .output();
  const out = new TextDecoder().decode(r.stdout).trim();
  assert.ok(r.success, `${script} ${args.join(" ")} failed:\n${new TextDecoder().decode(r.stderr)}`);
  return JSON.parse(out.split("\n").pop()!);
}

/** The tiny architecture of every test: transformers' test model's sizes (tests/interop/hf_videomae.py). */
const TINY = {
  encoderDim: 48,
  encoderDepth: 2,
  encoderHeads: 3,
  decoderDim: 24,
  decoderDepth: 1,
  decoderHeads: 3,
} as const;

function tinyConfig(name: string, posEmbed: "videomae" | "sincos" | "learned", extra = {}): TrainConfig {
  return parseConfig({
    name,
    device: "cpu",
    model: { ...TINY, posEmbed },
    data: { ...SMALL_DATA },
    optim: { steps: 4, batchSize: 2, lr: 1e-2, warmupSteps: 1 },
    layerlock: { mode: "mae" },
    log: { floorClips: 0, every: 2, checkpointEvery: 4 },
    ...extra,
  });
}

/**
 * A run folder `dir` holding one checkpoint of a model of `cfg` whose every parameter is randomised (norm
 * weights about 1, the rest about 0, all distinct), written by saveCheckpoint.
 */
function randomRun(dir: string, cfg: TrainConfig): string {
  torch.manualSeed(11);
  const model = new VideoMAE(modelConfig(cfg));
  const opt = new AdamW(model.namedParameters().map(([name, param]) => ({ name, param })), { lr: 1e-3 });
  try {
    torch.noGrad(() =>
      torch.scope(() => {
        for (const [, p] of model.namedParameters()) p.add_(torch.randn(p.shape).mul(0.1));
      })
    );
    const folder = new RunFolder(dir);
    folder.writeConfig(cfg);
    return saveCheckpoint(folder.checkpointDir, { model }, opt, { step: 7, config: cfg, data: null });
  } finally {
    opt.dispose();
    model.dispose();
  }
}

/** The `model.*` tensors of a checkpoint, as host arrays by name. */
function weights(path: string): Map<string, Float32Array> {
  return torch.scope(() => {
    const out = new Map<string, Float32Array>();
    for (const [k, t] of Object.entries(torch.loadSafetensors(path).tensors)) {
      if (k.startsWith("model.")) out.set(k.slice(6), t.toArray() as Float32Array);
    }
    return out;
  });
}

function sameArray(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: ${a.length} vs ${b.length} values`);
  for (let i = 0; i < a.length; i++) assert.ok(a[i] === b[i], `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

/** max |a − b| of two tensors. */
const gap = (a: torch.Tensor, b: torch.Tensor): number =>
  torch.scope(() => {
    assert.deepEqual(a.shape, b.shape);
    return a.sub(b).abs().max().item();
  });

/**
 * Our model's encoder output (and, with `keep`/`masked` in the file, decoder predictions) on the clip of a
 * transformers output file, beside transformers' values: the largest differences.
 */
function against(
  checkpoint: string,
  io: string,
  clip = "x",
  tokens = "tokens",
): { tokens: number; logits?: number } {
  const { model } = loadModelCheckpoint(checkpoint, "cpu");
  try {
    return torch.scope(() => {
      const t = torch.loadSafetensors(io).tensors;
      const ours = torch.noGrad(() => model.encoder.forward(t[clip], null));
      const r: { tokens: number; logits?: number } = { tokens: gap(ours, t[tokens]) };
      if (t.logits && clip === "x") {
        r.logits = gap(torch.noGrad(() => model.forward(t.x, t.keep, t.masked)), t.logits);
      }
      return r;
    });
  } finally {
    model.dispose();
  }
}

// ------------------------------------------------------------------------------ names and tables (no Python)

Deno.test("names: every parameter maps to transformers' names and back; VideoMAE's containers and prefixes", () =>
  noLeak(() => {
    const model = new VideoMAE(modelConfig(tinyConfig("names", "videomae")));
    try {
      for (const base of ["videomae.", ""]) {
        for (const ours of Object.keys(model.stateDict())) {
          const m = hfMapping(ours, base);
          assert.ok(m, `${ours} has a transformers name`);
          m.names.forEach((n, i) => {
            const back = fromHfName(n, base);
            assert.equal(back.kind, "ours", n);
            if (back.kind === "ours") {
              assert.equal(back.ours, ours, n);
              if (m.kind === "qkv") assert.equal(back.part, i);
            }
          });
        }
      }
    } finally {
      model.dispose();
    }
    assert.equal(
      hfMapping("encoder.pos_embed", "videomae."),
      null,
      "a learned table has no place in transformers",
    );
    assert.deepEqual(fromHfName("videomae.encoder.layer.3.attention.attention.q_bias", "videomae."), {
      kind: "ours",
      ours: "encoder.blocks.3.attn.q_bias",
    });
    assert.equal(
      fromHfName("videomae.encoder.layer.0.attention.attention.key.bias", "videomae.").kind,
      "keyBias",
    );
    assert.equal(fromHfName("classifier.weight", "videomae.").kind, "classifier");
    assert.equal(fromHfName("videomae.pooler.dense.weight", "videomae.").kind, "unknown");

    const a = officialStateDict([
      "model.module._orig_mod.encoder.blocks.0.norm1.weight",
      "model.mask_token",
      "epoch",
    ]);
    assert.equal(a.container, "model");
    // not every name carries the prefixes, so none is taken off (and the name maps to nothing: an error later)
    assert.deepEqual([...a.names.keys()].sort(), [
      "mask_token",
      "module._orig_mod.encoder.blocks.0.norm1.weight",
    ]);
    const b = officialStateDict(["module._orig_mod.encoder.norm.weight", "module._orig_mod.mask_token"]);
    assert.deepEqual([...b.names.keys()].sort(), ["encoder.norm.weight", "mask_token"]);
    assert.deepEqual(b.prefixes, ["_orig_mod."]);
    const c = officialStateDict([
      "model.blocks.0.attn.qkv.weight",
      "model.fc_norm.weight",
      "model.head.bias",
      "optimizer.state.0.exp_avg",
    ]);
    assert.deepEqual([...c.names.keys()], ["encoder.blocks.0.attn.qkv.weight"]);
    assert.deepEqual(c.dropped, ["model.fc_norm.weight", "model.head.bias"]);
    assert.ok(c.bareEncoder);
    const d = officialStateDict(["backbone.patch_embed.proj.weight"]);
    assert.deepEqual([...d.names.keys()], ["encoder.patch_embed.proj.weight"]);
  }));

Deno.test("pos table: trilinear resizing as F.interpolate(align_corners=False), by hand; same grid is the identity", () => {
  // one channel, time 2 → 4: source positions −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to the last)
  assert.deepEqual([...resizeTable(Float32Array.from([0, 1]), [2, 1, 1], [4, 1, 1], 1)], [0, 0.25, 0.75, 1]);
  // width 3 → 2 (downsampling): positions 0.25 and 1.75
  assert.deepEqual([...resizeTable(Float32Array.from([0, 4, 8]), [1, 1, 3], [1, 1, 2], 1)], [1, 7]);
  const t = Float32Array.from({ length: 2 * 3 * 2 * 5 }, (_, i) => Math.sin(i));
  assert.deepEqual([...resizeTable(t, [2, 3, 2], [2, 3, 2], 5)], [...t]);
});

// ------------------------------------------------------------------------------ (a) transformers → import

Deno.test({
  name:
    "import: transformers' VideoMAE folders give transformers' features (biases both spellings, other clips, " +
    "mean pooling, eps); exported again, transformers reproduces them",
  ignore: PY === null,
  async fn() {
    const dir = await tempDir("interop_hf_a_");
    const root = `${dir}/runs`, src = `${dir}/src`;
    try {
      await py(HF_SCRIPT, ["make", `${src}/a`, "--geometry", "8", "24"]);
      await py(HF_SCRIPT, ["make", `${src}/v4`, "--v4-names", "--bin"]);
      await py(HF_SCRIPT, [
        "make",
        `${src}/pooled`,
        "--mean-pooling",
        "--base-only",
        "--max-shard-size",
        "20KB",
      ]);
      await py(HF_SCRIPT, ["make", `${src}/eps12`, "--eps", "1e-12"]);
      const before = torch.liveTensors();

      const a = importWeights(`${src}/a/model`, { name: "a", root });
      verifyCheckpoint(a.checkpoint);
      assert.equal(a.cfg.model.posEmbed, "videomae");
      assert.deepEqual([a.cfg.data.frames, a.cfg.data.size, a.cfg.model.encoderHeads], [4, 16, 3]);
      assert.ok(a.lines.some((l) => /dropped 3 tensors: key biases/.test(l)), a.lines.join("\n"));
      const ga = against(a.checkpoint, `${src}/a/io.safetensors`);
      assert.ok(ga.tokens <= 1e-4, `encoder output differs from transformers' by ${ga.tokens}`);
      assert.ok(ga.logits! <= 1e-4, `decoder predictions differ from transformers' by ${ga.logits}`);

      const geo = importWeights(`${src}/a/model`, { name: "geo", root, frames: 8, size: 24 });
      assert.ok(geo.lines.some((l) => /rebuilt for 4×3×3 tokens \(exact\)/.test(l)), geo.lines.join("\n"));
      const gg = against(geo.checkpoint, `${src}/a/io.safetensors`, "x_geo", "tokens_geo");
      assert.ok(gg.tokens <= 1e-4, `at 8 frames of 24², ${gg.tokens}`);

      // transformers 4's q_bias/v_bias, as a pytorch_model.bin: the same weights
      assert.ok(Deno.statSync(`${src}/v4/model/pytorch_model.bin`).isFile);
      const v4 = importWeights(`${src}/v4/model`, { name: "v4", root });
      const wa = weights(a.checkpoint), w4 = weights(v4.checkpoint);
      assert.deepEqual([...w4.keys()].sort(), [...wa.keys()].sort());
      for (const [k, v] of wa) sameArray(w4.get(k)!, v, k);

      // a VideoMAEModel with mean pooling (no final norm), in shards
      assert.ok(Deno.statSync(`${src}/pooled/model/model.safetensors.index.json`).isFile);
      const pooled = importWeights(`${src}/pooled/model`, { name: "pooled", root });
      assert.ok(pooled.lines.some((l) => /decoder initialised fresh/.test(l)), pooled.lines.join("\n"));
      assert.ok(pooled.lines.some((l) => /encoder.norm initialised fresh/.test(l)), pooled.lines.join("\n"));
      const { model: pm } = loadModelCheckpoint(pooled.checkpoint, "cpu");
      const gp = torch.scope(() => {
        const t = torch.loadSafetensors(`${src}/pooled/io.safetensors`).tensors;
        const ours = torch.noGrad(() => pm.encoder.forward(t.x, null));
        return gap(ours, layerNorm(t.tokens, [48], null, null, 1e-6));
      });
      pm.dispose();
      assert.ok(gp <= 1e-4, `mean-pooling model: ${gp}`);

      // layer_norm_eps 1e-12 is kept (model.layerNormEps): the features are transformers'; run at 1e-6 on request
      const exact12 = importWeights(`${src}/eps12/model`, { name: "eps12-exact", root });
      const g12exact = against(exact12.checkpoint, `${src}/eps12/io.safetensors`);
      assert.ok(g12exact.tokens <= 1e-4, `eps 1e-12 kept: ${g12exact.tokens}`);
      const e12 = importWeights(`${src}/eps12/model`, { name: "eps12", root, layerNormEps: 1e-6 });
      assert.ok(
        e12.lines.some((n) => /layer_norm_eps 1e-12 in config.json is run at 0.000001/.test(n)),
        `${e12.lines}`,
      );
      const g12 = against(e12.checkpoint, `${src}/eps12/io.safetensors`);
      assert.ok(g12.tokens <= 1e-4, `eps 1e-12 run at 1e-6: ${g12.tokens}`);

      // back out: transformers loads our export of the imported model and reproduces its own output
      const ex = exportRun({ run: "a", root, format: "hf" });
      const info = await py(HF_SCRIPT, [
        "load",
        ex.out,
        `${src}/a/io.safetensors`,
        `${dir}/back.safetensors`,
      ]) as Record<string, Record<string, string[]>>;
      assert.deepEqual(info.VideoMAEForPreTraining, {
        missing_keys: [],
        unexpected_keys: [],
        mismatched_keys: [],
      });
      const back = torch.scope(() => {
        const theirs = torch.loadSafetensors(`${src}/a/io.safetensors`).tensors;
        const again = torch.loadSafetensors(`${dir}/back.safetensors`).tensors;
        return { tokens: gap(again.tokens, theirs.tokens), logits: gap(again.logits, theirs.logits) };
      });
      assert.ok(back.tokens <= 1e-5 && back.logits <= 1e-5, `round trip: ${JSON.stringify(back)}`);
      assert.equal(torch.liveTensors(), before);
      console.log(
        `max |ours − transformers'|: tokens ${ga.tokens.toExponential(2)}, decoder predictions ` +
          `${ga.logits!.toExponential(2)}, at 8×24² ${gg.tokens.toExponential(2)}, mean pooling ` +
          `${gp.toExponential(2)}, eps 1e-12 run at 1e-6 ${g12.tokens.toExponential(2)}; exported again: ` +
          `tokens ${back.tokens.toExponential(2)}, predictions ${back.logits.toExponential(2)}`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ------------------------------------------------------------------------------ (b) our run → transformers

Deno.test({
  name:
    "export: a run trained with model.posEmbed=videomae loads in transformers with no missing or unexpected " +
    "keys and gives embed's features; a sincos run is refused",
  ignore: PY === null,
  async fn() {
    const dir = await tempDir("interop_hf_b_");
    const root = `${dir}/runs`;
    try {
      const cfg = tinyConfig("b", "videomae");
      await train(cfg, { runDir: `${root}/b`, resume: false, data: makeBatchSource, onEvent: () => {} });
      const before = torch.liveTensors();
      const full = exportRun({ run: "b", root, format: "hf" });
      const enc = exportRun({ run: "b", root, format: "hf", encoderOnly: true });
      assert.equal(full.out, `${root}/b/export/hf`);
      const { model } = loadModelCheckpoint(new RunFolder(`${root}/b`).newestCheckpoint()!, "cpu");
      torch.scope(() => {
        torch.manualSeed(3);
        torch.saveSafetensors(`${dir}/io.safetensors`, { x: torch.randn([2, 3, 4, 16, 16]) });
      });
      const info = await py(HF_SCRIPT, [
        "load",
        full.out,
        `${dir}/io.safetensors`,
        `${dir}/full.safetensors`,
      ]) as Record<string, Record<string, string[]>>;
      const infoEnc = await py(HF_SCRIPT, [
        "load",
        enc.out,
        `${dir}/io.safetensors`,
        `${dir}/enc.safetensors`,
        "--encoder-only",
      ]) as Record<string, Record<string, string[]>>;
      const none = { missing_keys: [], unexpected_keys: [], mismatched_keys: [] };
      assert.deepEqual(info.VideoMAEForPreTraining, none);
      assert.deepEqual(infoEnc.VideoMAEModel, none);
      assert.deepEqual(info.VideoMAEModel.missing_keys, []);
      assert.ok(
        info.VideoMAEModel.unexpected_keys.every((k) => /^(decoder\.|encoder_to_decoder|mask_token)/.test(k)),
      );
      const gaps = torch.scope(() => {
        const x = torch.loadSafetensors(`${dir}/io.safetensors`).tensors.x;
        const f = extractFeatures(model.encoder, x); // what embed writes: tokens and their mean
        const r: Record<string, number> = {};
        for (const which of ["full", "enc"]) {
          const t = torch.loadSafetensors(`${dir}/${which}.safetensors`).tensors;
          r[`${which}.tokens`] = gap(f.tokens, t.tokens);
          r[`${which}.pooled`] = gap(f.pooled, t.pooled);
        }
        return r;
      });
      model.dispose();
      for (const [k, v] of Object.entries(gaps)) assert.ok(v <= 1e-4, `${k}: ${v}`);

      randomRun(`${root}/s`, tinyConfig("s", "sincos"));
      assert.throws(
        () => exportRun({ run: "s", root, format: "hf" }),
        (e) =>
          e instanceof ConfigError && /model\.posEmbed=sincos/.test(e.message) &&
          /--set model\.posEmbed=videomae/.test(e.message),
      );
      assert.throws(
        () => exportRun({ run: "b", root, format: "hf", out: `${dir}/elsewhere` }),
        /not a folder under/,
      );
      assert.equal(torch.liveTensors(), before);
      console.log(`max |embed − transformers'| after export: ${JSON.stringify(gaps)}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ------------------------------------------------------------------------------ (c) VideoMAE's .pth

Deno.test("import/export: a .pth of ours reads back with the same weights (no Python)", async () => {
  const dir = await tempDir("interop_pth_ours_");
  const root = `${dir}/runs`;
  try {
    const ckpt = randomRun(`${root}/src`, tinyConfig("src", "videomae"));
    const before = torch.liveTensors();
    const ex = exportRun({ run: "src", root, format: "videomae" });
    assert.deepEqual(ex.files, [`${root}/src/export/videomae/checkpoint.pth`]);
    // a .pth records no head counts (and VideoMAE has no model of width 48): given
    const set: [string, unknown][] = [["model.encoderHeads", 3], ["model.decoderHeads", 3]];
    const r = importWeights(ex.files[0], { name: "back", root, frames: 4, size: 16, set });
    assert.ok(r.lines.some((l) => /state dict under 'model'/.test(l)), r.lines.join("\n"));
    const w0 = weights(ckpt), w1 = weights(r.checkpoint);
    assert.deepEqual([...w1.keys()].sort(), [...w0.keys()].sort());
    for (const [k, v] of w0) sameArray(w1.get(k)!, v, k);
    // our own run, copied under another name
    const copy = importWeights(`${root}/src`, { name: "copy", root });
    for (const [k, v] of weights(copy.checkpoint)) sameArray(v, w0.get(k)!, k);
    assert.equal(copy.cfg.model.posEmbed, "videomae");
    assert.equal(torch.liveTensors(), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "import: VideoMAE's checkpoint layouts (model/module/bare, prefixes, fine-tuning heads, joined biases, " +
    "a learned table at another clip) give the same weights; export --format videomae reads as VideoMAE reads it",
  ignore: PY === null,
  async fn() {
    const dir = await tempDir("interop_pth_");
    const root = `${dir}/runs`;
    try {
      const ckpt = randomRun(`${root}/src`, tinyConfig("src", "videomae"));
      const cases = await py(PTH_SCRIPT, ["write", ckpt, `${dir}/pth`]) as {
        file: string;
        decoder?: boolean;
        refused?: boolean;
        fresh_norm?: boolean;
      }[];
      const before = torch.liveTensors();
      const w0 = weights(ckpt);
      // a .pth records no head counts, and VideoMAE has no model of width 48: given, with the fresh decoder's sizes
      const set: [string, unknown][] = [
        ["model.encoderHeads", 3],
        ["model.decoderHeads", 3],
        ["model.decoderDim", 24],
        ["model.decoderDepth", 1],
      ];
      assert.throws(
        () => importWeights(cases[0].file, { name: "noheads", root }),
        (e) => e instanceof ConfigError && /--set model\.encoderHeads=N/.test(e.message),
      );
      for (const [i, c] of cases.entries()) {
        if (c.refused) {
          assert.throws(
            () => importWeights(c.file, { name: `case${i}`, root, set }),
            (e) => e instanceof DataError && e.message.includes(c.file) && /legacy/.test(e.message),
          );
          continue;
        }
        const r = importWeights(c.file, { name: `case${i}`, root, set, frames: 4, size: 16 });
        const w = weights(r.checkpoint);
        assert.deepEqual([...w.keys()].sort(), [...w0.keys()].sort(), c.file);
        for (const [k, v] of w0) {
          if (!c.decoder && !k.startsWith("encoder.")) continue; // initialised fresh
          if (c.fresh_norm && k.startsWith("encoder.norm.")) {
            assert.ok(w.get(k)!.every((x) => x === (k.endsWith("weight") ? 1 : 0)), `${c.file}: ${k} fresh`);
            continue;
          }
          sameArray(w.get(k)!, v, `${c.file}: ${k}`);
        }
        if (!c.decoder) {
          assert.ok(r.lines.some((l) => /decoder initialised fresh/.test(l)), r.lines.join("\n"));
        }
        if (c.fresh_norm) assert.ok(r.lines.some((l) => /classification head/.test(l)), r.lines.join("\n"));
      }

      // export --format videomae, read by torch.load and VideoMAE's fine-tuning loader
      const ex = exportRun({ run: "src", root, format: "videomae" });
      const sizes = {
        in_chans: 3,
        frames: 4,
        height: 16,
        width: 16,
        patch: 8,
        tubelet: 2,
        encoder_dim: 48,
        encoder_depth: 2,
        encoder_heads: 3,
        mlp_ratio: 4,
        decoder_dim: 24,
        decoder_depth: 1,
        decoder_heads: 3,
      };
      const check = await py(PTH_SCRIPT, ["check", ex.files[0], ckpt, JSON.stringify(sizes)]) as {
        top: string[];
        equal: boolean;
        finetune_missing: string[];
        finetune_unused: string[];
      };
      assert.deepEqual(check.top, ["model"]);
      assert.ok(check.equal, "every tensor of the export equals the checkpoint's");
      assert.deepEqual(check.finetune_missing, []);
      assert.ok(check.finetune_unused.every((k) => /^(decoder\.|encoder_to_decoder|mask_token)/.test(k)));

      // a learned table, imported at another clip: resized as F.interpolate(trilinear, align_corners=False)
      const lcfg = tinyConfig("learned", "learned");
      torch.manualSeed(12);
      const lm = new VideoMAE(modelConfig(lcfg));
      torch.scope(() => {
        torch.noGrad(() => {
          for (const [, p] of lm.namedParameters()) p.add_(torch.randn(p.shape).mul(0.1));
        });
        const sd: Record<string, torch.Tensor> = {};
        for (const [k, t] of Object.entries(lm.stateDict())) sd[`model.${k}`] = t;
        torch.saveSafetensors(`${dir}/learned.safetensors`, sd, { grid: JSON.stringify(lm.encoder.grid) });
      });
      lm.dispose();
      const lcases = await py(PTH_SCRIPT, [
        "write",
        `${dir}/learned.safetensors`,
        `${dir}/lpth`,
        "--resize",
        "4",
        "3",
        "3",
      ]) as {
        file: string;
      }[];
      const lr = importWeights(lcases[0].file, {
        name: "learned",
        root,
        set,
        frames: 8,
        size: 24,
        sourceFrames: 4,
      });
      assert.equal(lr.cfg.model.posEmbed, "learned");
      assert.ok(
        lr.lines.some((l) => /interpolated \(trilinear.*from 2×2×2 to 4×3×3/.test(l)),
        lr.lines.join("\n"),
      );
      const gpos = torch.scope(() =>
        gap(
          torch.loadSafetensors(lr.checkpoint).tensors["model.encoder.pos_embed"],
          torch.loadSafetensors(`${dir}/lpth/pos_resized.safetensors`).tensors.pos,
        )
      );
      assert.ok(gpos <= 1e-6, `learned table resized: ${gpos} from torch's`);
      // without --source-frames, VideoMAE's 16 frames are assumed (8 tokens: 8×1×1), and the output says so
      const assumed = importWeights(lcases[0].file, { name: "learned2", root, set });
      assert.ok(
        assumed.lines.some((l) => /learned position table: 8×1×1 tokens \(16 frames of 8×8\)/.test(l)),
      );
      assert.throws(
        () => importWeights(lcases[0].file, { name: "learned3", root, set, sourceFrames: 6 }),
        (e) => e instanceof DataError && /--source-frames/.test(e.message),
        "8 tokens are not 3 time positions of a square grid",
      );
      assert.equal(torch.liveTensors(), before);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ------------------------------------------------------------------------------ (d) the command line

async function cli(tool: "import" | "export" | "embed", args: string[]) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_PERMISSIONS, `src/cli/${tool}.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr).trim() };
}

/** A failure of the command line: exit code 2, and one line on stderr naming the problem, with no stack. */
/** One line naming the problem, and runMain's exit code: 2 for a usage mistake, 1 for bad data or files. */
function oneLine(r: { code: number; err: string }, tool: string, ...want: RegExp[]): void {
  assert.ok(r.code === 1 || r.code === 2, `exit code ${r.code}: ${r.err}`);
  assert.equal(r.err.split("\n").length, 1, `one line, got:\n${r.err}`);
  assert.ok(r.err.startsWith(`${tool}: `), r.err);
  assert.ok(!/\n\s+at /.test(r.err), r.err);
  for (const w of want) assert.match(r.err, w);
}

Deno.test("command line: import, embed and export of an imported run; malformed inputs are one line, never a stack trace", async () => {
  const id = crypto.randomUUID().slice(0, 8);
  const name = (s: string) => `ll-interop-${id}-${s}`;
  const made: string[] = [];
  const dir = await tempDir("interop_cli_");
  try {
    made.push(name("src"), name("sincos"));
    randomRun(`runs/${name("src")}`, tinyConfig(name("src"), "videomae"));
    randomRun(`runs/${name("sincos")}`, tinyConfig(name("sincos"), "sincos"));
    let r = await cli("export", ["--run", name("src"), "--format", "hf"]);
    assert.equal(r.code, 0, r.err);
    r = await cli("export", ["--run", name("src"), "--format", "videomae"]);
    assert.equal(r.code, 0, r.err);
    const hf = `runs/${name("src")}/export/hf`, pth = `runs/${name("src")}/export/videomae/checkpoint.pth`;

    made.push(name("imported"));
    r = await cli("import", [hf, "--name", name("imported")]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /position table videomae/);
    r = await cli("embed", ["--run", name("imported"), "--clips", "2"]);
    assert.equal(r.code, 0, r.err);
    r = await cli("export", ["--run", name("imported"), "--format", "hf", "--encoder-only"]);
    assert.equal(r.code, 0, r.err);

    // malformed inputs
    const bytes = Deno.readFileSync(pth);
    Deno.writeFileSync(`${dir}/cut.pth`, bytes.subarray(0, bytes.length >> 1));
    oneLine(await cli("import", [`${dir}/cut.pth`, "--name", name("cut")]), "import", /cut\.pth/);
    const edited = (what: string, edit: (c: Record<string, unknown>) => void) => {
      Deno.mkdirSync(`${dir}/${what}`);
      Deno.copyFileSync(`${hf}/model.safetensors`, `${dir}/${what}/model.safetensors`);
      const c = JSON.parse(Deno.readTextFileSync(`${hf}/config.json`));
      edit(c);
      Deno.writeTextFileSync(`${dir}/${what}/config.json`, JSON.stringify(c));
      return `${dir}/${what}`;
    };
    oneLine(
      await cli("import", [
        edited("wide", (c) => Object.assign(c, { hidden_size: 96, intermediate_size: 384 })),
        "--name",
        name("wide"),
      ]),
      "import",
      /videomae\.embeddings\.patch_embeddings\.projection\.weight is \[48, 3, 2, 8, 8\]/,
      /\[96, 3, 2, 8, 8\]/,
    );
    oneLine(
      await cli("import", [edited("deep", (c) => (c.num_hidden_layers = 3)), "--name", name("deep")]),
      "import",
      /num_hidden_layers is 3/,
    );
    oneLine(
      await cli("import", [edited("vit", (c) => (c.model_type = "vit")), "--name", name("vit")]),
      "import",
      /model_type is "vit", not "videomae"/,
    );
    oneLine(
      await cli("import", [edited("eps", (c) => (c.layer_norm_eps = -1)), "--name", name("eps")]),
      "import",
      /layer_norm_eps must be a positive number, got -1/,
    );
    oneLine(await cli("import", [`${dir}/nothing.pth`, "--name", name("none")]), "import", /nothing\.pth/);
    oneLine(await cli("import", [hf, "--name", name("imported")]), "import", /already exists/);
    oneLine(
      await cli("import", [hf, "--name", name("odd"), "--size", "20"]),
      "import",
      /--size 20 .* patch size 8/,
    );
    oneLine(await cli("import", [hf]), "import", /--name/);
    oneLine(
      await cli("export", ["--run", name("sincos"), "--format", "hf"]),
      "export",
      /model\.posEmbed=sincos/,
      /--set model\.posEmbed=videomae/,
    );
    oneLine(await cli("export", ["--run", name("src"), "--format", "onnx"]), "export", /--format/);
    oneLine(
      await cli("export", ["--run", name("src"), "--format", "hf", "--out", "/tmp/x"]),
      "export",
      /under runs/,
    );
    for (const n of ["cut", "wide", "deep", "vit", "eps", "none", "odd"]) {
      assert.throws(
        () => Deno.statSync(`runs/${name(n)}`),
        Deno.errors.NotFound,
        `a failed import leaves no runs/${name(n)}`,
      );
    }
  } finally {
    for (const n of made) await Deno.remove(`runs/${n}`, { recursive: true }).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
