// The trivial loss floor (hand-computed cases, the means it is computed from, its logging by the trainer) and the
// "not learning" verdict (constructed records; a run at lr 0 is flagged, a run that learns is not).
import assert from "node:assert/strict";
import * as torch from "../../mod.ts";
import { parseConfig } from "../../src/config.ts";
import { type ClipBatch, IMAGENET_MEAN, IMAGENET_STD } from "../../src/data/clip.ts";
import { batchToTensor } from "../../src/data/clip_tensor.ts";
import { floorClips, makeBatchSource } from "../../src/data/source.ts";
import { LEARNING_RATIO, learningVerdict } from "../../src/layerlock/learning.ts";
import { floorLoss } from "../../src/models/targets.ts";
import { meanTarget, TargetFloor } from "../../src/layerlock/floor.ts";
import { train } from "../../src/train/trainer.ts";
import { assertClose, leakFreeTest, prng, SMALL_DATA, tempDir } from "../helpers.ts";

leakFreeTest("floorLoss: the MSE of the per-position mean on the given tokens (hand-computed)", () => {
  torch.scope(() => {
    // targets [B=2, N=3, P=2]; the mean over clips is [[2,2],[2,2],[5,7]]
    const t = torch.tensor(new Float32Array([1, 2, 3, 4, 5, 6, 3, 2, 1, 0, 5, 8]), { shape: [2, 3, 2] });
    const mean = t.mean(0);
    assertClose(mean, [2, 2, 2, 2, 5, 7]);
    // clip 0 sees tokens 0 and 2: errors (-1, 0), (0, -1); clip 1 tokens 1 and 2: (-1, -2), (0, 1)
    // squares 1 0 0 1 1 4 0 1 → 8 / 8 elements = 1
    const ids = torch.tensor(new Int32Array([0, 2, 1, 2]), { shape: [2, 2] }).long();
    assertClose(floorLoss(mean, t, ids), [1]);
    // all tokens of clip 0 only: (-1,0),(1,2),(0,-1) → 1+0+1+4+0+1 = 7 / 6
    const one = t.narrow(0, 0, 1), all = torch.tensor(new Int32Array([0, 1, 2]), { shape: [1, 3] }).long();
    assertClose(floorLoss(mean, one, all), [7 / 6]);
  });
});

/** A batch of `n` clips of 2 frames of 4×4 with pixels from `value(clip, i)`. */
function clips(n: number, value: (clip: number, i: number) => number): ClipBatch {
  const per = 2 * 4 * 4 * 3, data = new Uint8Array(n * per);
  for (let c = 0; c < n; c++) for (let i = 0; i < per; i++) data[c * per + i] = value(c, i);
  return { data, batch: n, frames: 2, height: 4, width: 4, labels: null };
}

leakFreeTest(
  "meanTarget: the mean over clips does not depend on the chunking; TargetFloor's pixel mean (hand)",
  () => {
    const rnd = prng(3);
    const b = clips(5, () => Math.floor(rnd() * 256));
    torch.scope(() => {
      const whole = batchToTensor(b).flatten(2).mean(0);
      for (const chunk of [1, 2, 5, 8]) {
        assertClose(meanTarget(b, chunk, "cpu", (x) => x.flatten(2)), whole.toArray() as Float32Array, {
          atol: 1e-5,
          msg: `chunk ${chunk}`,
        });
      }
    });
    // two clips, one black and one white: the mean unnormalised pixel target of channel c is (0.5 - m_c) / s_c
    // at every token and element
    const floor = new TargetFloor(
      clips(2, (c) => (c === 0 ? 0 : 255)),
      { tubelet: 2, patch: 2, normalize: false, latentNorm: "none", chunk: 1, amp: false },
      "cpu",
    );
    try {
      const m = floor.pixelMean;
      assert.deepEqual(m.shape, [4, 2 * 2 * 2 * 3]); // 1×2×2 tokens, tubelet 2 × patch 2 × 2 × RGB
      const want = Array.from(
        { length: 4 * 24 },
        (_, i) => (0.5 - IMAGENET_MEAN[i % 3]) / IMAGENET_STD[i % 3],
      );
      assertClose(m, want, { atol: 1e-5 });
      assert.equal(floor.pixelMean, m, "computed once");
    } finally {
      floor.dispose();
    }
  },
);

Deno.test("learningVerdict: the ratio of the last tenth of each phase to its floor decides", () => {
  const rec = (step: number, pixel: number | null, latent: number | null = null) => ({
    step,
    pixelLoss: pixel,
    pixelFloor: pixel === null ? null : 0.8,
    latentLoss: latent,
    latentFloor: latent === null ? null : 0.5,
  });
  // 20 pixel records ending at 0.4 (the last two: 0.42 and 0.38 → mean 0.4 = 50% of 0.8)
  const mae = Array.from(
    { length: 20 },
    (_, i) => rec(10 * (i + 1), i < 18 ? 0.8 - 0.02 * i : i === 18 ? 0.42 : 0.38),
  );
  const v = learningVerdict(mae);
  assert.equal(v.learning, true);
  assert.equal(v.phases.length, 1);
  assert.deepEqual([v.phases[0].fromStep, v.phases[0].toStep], [190, 200]);
  assert.ok(Math.abs(v.phases[0].ratio - 0.5) < 1e-12);
  assert.match(v.text, /^learning: pixel loss 0\.400 is 50% of its floor 0\.800/);
  // at the floor: not learning, in those words
  const flat = learningVerdict(Array.from({ length: 10 }, (_, i) => rec(i, 0.79)));
  assert.equal(flat.learning, false);
  assert.match(flat.text, /^not learning: .* little more than the mean image/);
  // just at the threshold counts; just above does not
  assert.equal(learningVerdict([rec(1, 0.8 * LEARNING_RATIO)]).learning, true);
  assert.equal(learningVerdict([rec(1, 0.8 * LEARNING_RATIO + 1e-6)]).learning, false);
  // LayerLock: the pixel phase left its floor, the latent phase did not → not learning, naming the latent
  const ll = [
    ...Array.from({ length: 10 }, (_, i) => rec(i, 0.3)),
    ...Array.from({ length: 10 }, (_, i) => rec(10 + i, null, 0.6)),
  ];
  const w = learningVerdict(ll);
  assert.deepEqual(w.phases.map((p) => [p.phase, p.left]), [["pixels", true], ["latent", false]]);
  assert.equal(w.learning, false);
  assert.match(w.text, /worse than the mean latent/);
  // nothing logged
  assert.equal(learningVerdict([{ step: 1, pixelLoss: 0.5 }]).learning, null);
});

/** A run small enough for a test: tube masking at 0.5 of 2×4×4 tokens of moving shapes. */
function tinyRun(lr: number, mode = "mae") {
  return parseConfig({
    name: "floor-test",
    threads: 1,
    device: "cpu",
    model: {
      encoderDim: 48,
      encoderDepth: 2,
      encoderHeads: 2,
      decoderDim: 32,
      decoderDepth: 1,
      decoderHeads: 2,
      patch: 4,
    },
    data: SMALL_DATA,
    mask: { ratio: 0.5 },
    optim: { steps: 300, warmupSteps: 20, lr },
    layerlock: { mode, pixelSteps: 200, interval: 50, maxFrozen: 1 },
    log: { every: 25, checkpointEvery: 1000, keep: 1, floorClips: 32 },
  });
}

async function runTiny(lr: number, mode = "mae") {
  const dir = await tempDir("floor_");
  const cfg = tinyRun(lr, mode);
  try {
    await train(cfg, {
      runDir: dir,
      resume: false,
      data: makeBatchSource,
      onEvent: () => {},
      floorClips: (n) => floorClips(cfg, n),
    });
    return (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("trainer: floors are logged beside the losses; lr 0 is flagged not learning, a learning run is not", async () => {
  const before = torch.liveTensors();
  const still = await runTiny(0);
  assert.ok(
    still.every((r) => typeof r.pixelFloor === "number" && r.pixelFloor > 0 && r.latentFloor === null),
  );
  const stuck = learningVerdict(still);
  assert.equal(stuck.learning, false, stuck.text);
  assert.match(stuck.text, /^not learning/);
  const moving = await runTiny(1e-3);
  const ok = learningVerdict(moving);
  assert.equal(ok.learning, true, ok.text);
  // the same data and masks: the floors agree step by step (they do not depend on the model)
  assert.deepEqual(moving.map((r) => r.pixelFloor), still.map((r) => r.pixelFloor));
  // LayerLock: a latent floor once a block is frozen, none before
  const ll = await runTiny(1e-3, "layerlock");
  assert.ok(ll.filter((r) => r.step <= 200).every((r) => r.latentFloor === null && r.pixelFloor > 0));
  assert.ok(ll.filter((r) => r.step > 200).every((r) => r.latentFloor > 0 && r.pixelFloor === null));
  assert.equal(torch.liveTensors(), before);
});
