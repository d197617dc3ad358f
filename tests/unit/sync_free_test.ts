/**
 * A training step that never waits on the device: the shim's count of device-to-host reads (`hostReads`) goes
 * up with every `item()`/`toArray()`/`toBytes()` and not with computation; a training run reads the same number
 * of times per logging window whether the window holds 2 steps or 8 — so a step itself reads nothing (loss terms
 * accumulate on the device, masks are drawn on the device, AdamW's counters live there), with pixel and with
 * latent targets, and with gradient clipping.
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../../mod.ts";
import { parseConfig } from "../../src/config.ts";
import { growthPerWindow } from "../helpers.ts";

Deno.test("hostReads counts reads of tensor data, not computation", () => {
  using a = torch.ones([4]);
  const r0 = torch.hostReads();
  torch.scope(() => a.add(a).mul(a).sum());
  assert.equal(torch.hostReads(), r0);
  a.toArray();
  torch.scope(() => a.sum().item());
  a.toBytes();
  assert.equal(torch.hostReads(), r0 + 3);
});

/** The run whose logging windows are compared: a 2-block LayerLock model that freezes at half of 4 windows. */
function runOf(every: number, clipGrad: number) {
  return parseConfig({
    model: {
      encoderDim: 48,
      encoderDepth: 2,
      encoderHeads: 3,
      decoderDim: 24,
      decoderDepth: 1,
      decoderHeads: 3,
    },
    data: { frames: 4, size: 16, prefetch: 0 },
    optim: { batchSize: 2, steps: 4 * every, warmupSteps: 1, clipGrad },
    log: { every, checkpointEvery: 1000, floorClips: 0 },
  });
}

for (const clip of [0, 1]) {
  Deno.test(`a training step makes no host read (LayerLock through a freeze, clipGrad ${clip})`, async () => {
    const short = await growthPerWindow(runOf(2, clip), torch.hostReads);
    const long = await growthPerWindow(runOf(8, clip), torch.hostReads);
    assert.equal(short.length, 3);
    assert.deepEqual(long, short, `reads per window of 8 steps ${long} vs of 2 steps ${short}`);
  });
}

Deno.test("a training step uploads one thing, its batch (hostWrites per logging window = its steps)", async () => {
  assert.deepEqual(await growthPerWindow(runOf(2, 1), torch.hostWrites), [2, 2, 2]);
  assert.deepEqual(await growthPerWindow(runOf(8, 1), torch.hostWrites), [8, 8, 8]);
});
