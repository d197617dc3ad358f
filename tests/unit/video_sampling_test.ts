/**
 * Clip sampling as VideoMAE does it (src/data/clip_sampling.ts), against hand-computed cases: dense clips at a
 * stride (centred, spread views, random offsets covering exactly the allowed range, a clip longer than its
 * video), segments, a fixed output rate; the multi-scale crop (the sizes VideoMAE's GroupMultiScaleCrop allows
 * for a 456×256 frame, its 13 grid positions), the evaluation centre crop, the flip rate; and that a clip is a
 * pure function of (seed, index, epoch). Pure arithmetic: no decoding.
 * @module
 */
import assert from "node:assert/strict";
import { clipRng, cropBox, fixedOffsets, frameIndices } from "../../src/data/clip_sampling.ts";
import { BatchSampler } from "../../src/data/sampler.ts";
import { ConfigError, DataError } from "../../src/errors.ts";

Deno.test("sampling: dense clips at a stride — centred, spread views, and a video shorter than the clip", () => {
  // n = 100, 4 frames every 3: the clip covers 12 frames, so 89 offsets (0..88); the centred one is 44
  assert.deepEqual(frameIndices(100, 30, { frames: 4, stride: 3 }, null), [44, 47, 50, 53]);
  // three evaluation views spread evenly over the 89 offsets: 0, 44, 88
  assert.deepEqual(
    [0, 1, 2].map((v) => frameIndices(100, 30, { frames: 4, stride: 3 }, null, v, 3)[0]),
    [0, 44, 88],
  );
  // n = 10, 4 frames every 4 need 16: start at 0 and repeat the last frame the stride reaches (8, not 9)
  assert.deepEqual(frameIndices(10, 30, { frames: 4, stride: 4 }, null), [0, 4, 8, 8]);
  // a one-frame video
  assert.deepEqual(frameIndices(1, 30, { frames: 3, stride: 2 }, null), [0, 0, 0]);
  // exactly the clip's length: one offset
  assert.deepEqual(frameIndices(8, 30, { frames: 4, stride: 2 }, null), [0, 2, 4, 6]);
});

Deno.test("sampling: training offsets are uniform over exactly the allowed range", () => {
  // n = 20, 4 frames every 2: 13 offsets (0..12); 2000 draws hit each, none outside, each roughly 1/13
  const counts = new Array(20).fill(0);
  for (let i = 0; i < 2000; i++) {
    const f = frameIndices(20, 30, { frames: 4, stride: 2 }, clipRng(7, i, 0));
    assert.deepEqual(f, [f[0], f[0] + 2, f[0] + 4, f[0] + 6]);
    counts[f[0]]++;
  }
  assert.deepEqual(counts.slice(13), new Array(7).fill(0));
  for (const c of counts.slice(0, 13)) assert.ok(c > 2000 / 13 * 0.6 && c < 2000 / 13 * 1.4, `${counts}`);
});

Deno.test("sampling: segments (TSN) — the middle of each segment, or a random frame within it", () => {
  // 100 frames in 4 segments of 25: middles at 12.5 → 12, 37, 62, 87
  assert.deepEqual(frameIndices(100, 30, { frames: 4, stride: 1, segments: true }, null), [12, 37, 62, 87]);
  for (let i = 0; i < 200; i++) {
    const f = frameIndices(100, 30, { frames: 4, stride: 1, segments: true }, clipRng(1, i, 0));
    f.forEach((x, s) => assert.ok(x >= 25 * s && x < 25 * (s + 1), `${f}`));
  }
  // fewer frames than segments: every index stays inside the video
  assert.deepEqual(frameIndices(3, 30, { frames: 6, stride: 1, segments: true }, null), [0, 0, 1, 1, 2, 2]);
});

Deno.test("sampling: a fixed output rate takes source frames at srcFps / fps", () => {
  // 30 fps to 10 fps: every 3rd frame, as stride 3
  assert.deepEqual(frameIndices(100, 30, { frames: 4, stride: 1, fps: 10 }, null), [44, 47, 50, 53]);
  // 25 fps to 10 fps: steps of 2.5 rounded per frame; the clip covers 10 frames, offsets 0..90, centred 45
  assert.deepEqual(frameIndices(100, 25, { frames: 4, stride: 1, fps: 10 }, null), [45, 48, 50, 53]);
});

Deno.test("sampling: a bad source is a DataError, bad options a ConfigError", () => {
  const is = (cls: typeof DataError | typeof ConfigError, where: string, re: RegExp) => (e: unknown) =>
    e instanceof cls && e.where === where && re.test(e.message);
  assert.throws(
    () => frameIndices(0, 30, { frames: 4, stride: 2 }, null),
    is(DataError, "frameIndices", /frame count must be ≥ 1, got 0/),
  );
  assert.throws(
    () => frameIndices(10, 30, { frames: 0, stride: 2 }, null),
    is(ConfigError, "frameIndices", /frames must be ≥ 1/),
  );
  assert.throws(
    () => frameIndices(10, 30, { frames: 2, stride: 2 }, null, 3, 2),
    is(ConfigError, "frameIndices", /view 3 of 2/),
  );
  assert.throws(
    () => cropBox(1, 10, { width: 8, height: 8 }, null),
    is(DataError, "cropBox", /at least 2×2, got 1×10/),
  );
  assert.throws(
    () => cropBox(64, 64, { width: 8, height: 8, scales: [1.5] }, clipRng(0, 0, 0)),
    is(ConfigError, "cropBox", /scales must be in \(0, 1\], got \[1\.5\]/),
  );
});

Deno.test("crop: evaluation is a short-side resize and centre crop", () => {
  // 456×256 to 224²: the short side 256 maps to 224, the crop is the centred 256² (x = 100)
  assert.deepEqual(cropBox(456, 256, { width: 224, height: 224 }, null), {
    x: 100,
    y: 0,
    w: 256,
    h: 256,
    flip: false,
  });
  // 64×48 to 32²: a 48² centred crop; portrait 48×64 likewise
  assert.deepEqual(cropBox(64, 48, { width: 32, height: 32 }, null), {
    x: 8,
    y: 0,
    w: 48,
    h: 48,
    flip: false,
  });
  assert.deepEqual(cropBox(48, 64, { width: 32, height: 32 }, null), {
    x: 0,
    y: 8,
    w: 48,
    h: 48,
    flip: false,
  });
  // a non-square output keeps its aspect: 320×240 to 64×32 takes 320×160 from y = 40
  assert.deepEqual(cropBox(320, 240, { width: 64, height: 32 }, null), {
    x: 0,
    y: 40,
    w: 320,
    h: 160,
    flip: false,
  });
});

Deno.test("crop: training draws VideoMAE's multi-scale sizes at its 13 grid positions, flipping half", () => {
  // 456×256, output 224: sides floor(256·[1, .875, .75, .66]) = 256, 224, 192, 168, at most one step apart
  const allowed = new Set([
    "256x256",
    "224x256",
    "256x224",
    "224x224",
    "192x224",
    "224x192",
    "192x192",
    "168x192",
    "192x168",
    "168x168",
  ]);
  const seen = new Set<string>();
  let flips = 0;
  const N = 3000;
  for (let i = 0; i < N; i++) {
    const c = cropBox(456, 256, { width: 224, height: 224 }, clipRng(3, i, 0));
    const size = `${c.w}x${c.h}`;
    assert.ok(allowed.has(size), size);
    seen.add(size);
    const grid = fixedOffsets(456, 256, c.w, c.h).map(([x, y]) => `${x - (x % 2)},${y - (y % 2)}`);
    assert.ok(grid.includes(`${c.x},${c.y}`), `${c.x},${c.y} not on the grid for ${size}`);
    assert.ok(c.x % 2 === 0 && c.y % 2 === 0 && c.x + c.w <= 456 && c.y + c.h <= 256);
    if (c.flip) flips++;
  }
  assert.equal(seen.size, allowed.size);
  assert.ok(Math.abs(flips / N - 0.5) < 0.04, `flip rate ${flips / N}`);
  // no flip when turned off
  for (let i = 0; i < 50; i++) {
    assert.equal(cropBox(456, 256, { width: 224, height: 224, flip: false }, clipRng(3, i, 0)).flip, false);
  }
  // the grid by hand: 456×256 with a 224² crop — steps of 58 and 8
  assert.deepEqual(fixedOffsets(456, 256, 224, 224), [
    [0, 0],
    [232, 0],
    [0, 32],
    [232, 32],
    [116, 16],
    [0, 16],
    [232, 16],
    [116, 32],
    [116, 0],
    [58, 8],
    [174, 8],
    [58, 24],
    [174, 24],
  ]);
});

Deno.test("sampling: a clip is a pure function of (seed, index, epoch); the sampler gives each sample's epoch", () => {
  const draw = (seed: number, i: number, e: number) => {
    const r = clipRng(seed, i, e);
    return [
      frameIndices(300, 30, { frames: 16, stride: 4 }, r),
      cropBox(456, 256, { width: 224, height: 224 }, r),
    ];
  };
  assert.deepEqual(draw(1, 5, 0), draw(1, 5, 0));
  // another epoch, index or seed draws anew (nearly always: check over several)
  let differ = 0;
  for (let i = 0; i < 20; i++) {
    if (JSON.stringify(draw(1, i, 0)) !== JSON.stringify(draw(1, i, 1))) differ++;
  }
  assert.ok(differ >= 18, `${differ}/20 clips changed between epochs`);
  // the sampler's epochs: a dataset of 5 items in batches of 3 → epochs 0,0,0 | 0,0,1 | 1,1,1 ...
  const s = new BatchSampler(5, 3, 9);
  assert.deepEqual([s.nextWithEpochs().epochs, s.nextWithEpochs().epochs, s.nextWithEpochs().epochs], [
    [0, 0, 0],
    [0, 0, 1],
    [1, 1, 1],
  ]);
  // and the same indices as next() would have given
  const t = new BatchSampler(5, 3, 9);
  const u = new BatchSampler(5, 3, 9);
  for (let k = 0; k < 4; k++) assert.deepEqual(t.next(), u.nextWithEpochs().indices);
});
