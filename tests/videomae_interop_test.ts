// Interop with VideoMAE's PyTorch code: the `videomae` position table equals VideoMAE's sinusoid table (checked
// by hand here), and a checkpoint of a `videomae` model, loaded strictly into a VideoMAE-named PyTorch encoder
// that builds its own table (tests/interop/videomae_features.py), gives the features this encoder gives. The
// same check on a `sincos` model fails by a wide margin: the test can tell the tables apart.
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { positionTable, sinusoidTable } from "../src/nn/pos_embed.ts";
import { AdamW } from "../src/optim/adamw.ts";
import { saveCheckpoint } from "../src/train/checkpoint.ts";
import type { VideoMAEConfig } from "../src/models/video_mae.ts";
import { noLeak, tempDir } from "./helpers.ts";

Deno.test("videomae table: VideoMAE's get_sinusoid_encoding_table, by hand", () =>
  noLeak(() => {
    const t = sinusoidTable(3, 4);
    const v = Array.from(t.toArray() as Float32Array);
    t.dispose();
    // token p, channel j: sin (j even) / cos (j odd) of p / 10000^(2·⌊j/2⌋/4): exponents 0, 0, 0.5, 0.5
    const want = [0, 1, 2].flatMap((p) => [Math.sin(p), Math.cos(p), Math.sin(p / 100), Math.cos(p / 100)]);
    v.forEach((x, i) => assert.ok(Math.abs(x - want[i]) < 1e-6, `element ${i}: ${x} vs ${want[i]}`));
    // the 3-d table is another one (the default, which VideoMAE's code does not build)
    torch.scope(() => {
      const a = positionTable("sincos", [1, 2, 2], 12), b = positionTable("videomae", [1, 2, 2], 12);
      assert.ok(a.sub(b).abs().max().item() > 0.1);
    });
  }));

/** The Python with torch and safetensors that the build used, or null. */
function python(): string | null {
  try {
    const py = JSON.parse(Deno.readTextFileSync(new URL("../native/build/current.json", import.meta.url)))
      ?.torch?.python as string | undefined;
    if (!py) return null;
    const ok =
      new Deno.Command(py, { args: ["-c", "import torch, safetensors"], stdout: "null", stderr: "null" })
        .outputSync().success;
    return ok ? py : null;
  } catch {
    return null;
  }
}
const PY = python();
const SCRIPT = decodeURIComponent(new URL("./interop/videomae_features.py", import.meta.url).pathname);

const CFG: Omit<VideoMAEConfig, "posEmbed"> = {
  encoderDim: 48,
  encoderDepth: 2,
  encoderHeads: 3,
  mlpRatio: 4,
  decoderDim: 24,
  decoderDepth: 1,
  decoderHeads: 3,
  inChans: 3,
  frames: 4,
  height: 16,
  width: 24,
  patch: 8,
  tubelet: 2,
  qkvBias: true,
};

/** Max |ours − VideoMAE's| over the features of every token, for a model with a position table of `kind`. */
async function featureGap(kind: "videomae" | "sincos"): Promise<number> {
  const dir = await tempDir("videomae_");
  torch.manualSeed(7);
  const model = new torch.VideoMAE({ ...CFG, posEmbed: kind });
  const opt = new AdamW(model.namedParameters().map(([name, param]) => ({ name, param })), { lr: 1e-3 });
  try {
    const ckpt = saveCheckpoint(`${dir}/checkpoints`, { model }, opt, { step: 0, config: {}, data: null });
    return torch.scope(() => {
      const x = torch.randn([2, 3, CFG.frames, CFG.height, CFG.width]);
      torch.saveSafetensors(`${dir}/x.safetensors`, { x });
      const sizes = {
        in_chans: 3,
        encoder_dim: CFG.encoderDim,
        encoder_depth: CFG.encoderDepth,
        encoder_heads: CFG.encoderHeads,
        mlp_ratio: CFG.mlpRatio,
        frames: CFG.frames,
        height: CFG.height,
        width: CFG.width,
        tubelet: CFG.tubelet,
        patch: CFG.patch,
      };
      const r = new Deno.Command(PY!, {
        args: [SCRIPT, ckpt, `${dir}/x.safetensors`, `${dir}/out.safetensors`, JSON.stringify(sizes)],
      }).outputSync();
      assert.ok(r.success, `videomae_features.py failed:\n${new TextDecoder().decode(r.stderr)}`);
      const info = JSON.parse(new TextDecoder().decode(r.stdout).trim());
      assert.equal(info.tokens, 2 * 2 * 3);
      const theirs = torch.loadSafetensors(`${dir}/out.safetensors`).tensors.features;
      const ours = torch.noGrad(() => model.encoder.forward(x, null));
      assert.deepEqual(theirs.shape, ours.shape);
      return ours.sub(theirs).abs().max().item();
    });
  } finally {
    opt.dispose();
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "a videomae checkpoint loads strictly into VideoMAE's PyTorch encoder and gives the same features",
  ignore: PY === null,
  async fn() {
    const before = torch.liveTensors();
    const same = await featureGap("videomae");
    assert.ok(same < 1e-5, `features differ by ${same}`);
    const other = await featureGap("sincos");
    assert.ok(other > 0.1, `a sincos model should not match VideoMAE's table (gap ${other})`);
    assert.equal(torch.liveTensors(), before);
  },
});
