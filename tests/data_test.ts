/**
 * The data layer: the seedable generator and sampler, the moving-shapes dataset (determinism, labels, value
 * ranges, speed), batch upload, the prefetching loader (same sequence as direct, exact resumption) and the video
 * folder dataset over ffmpeg (skipped only when ffmpeg cannot be installed).
 * @module
 */
import assert from "node:assert/strict";
import { assertClose, CLI_PERMISSIONS, leakFreeTest, tempDir } from "./helpers.ts";
import {
  BatchSampler,
  batchToTensor,
  type ClipBatch,
  createLoader,
  DIRECTION_NAMES,
  directionOf,
  DirectLoader,
  ensureFfmpeg,
  FfmpegDecoder,
  IMAGENET_MEAN,
  IMAGENET_STD,
  MovingShapes,
  PrefetchLoader,
  Rng,
  SHAPE_NAMES,
  VideoFolder,
} from "../mod.ts";
import { hash32 } from "../src/data/rng.ts";
import { permuteIndex } from "../src/data/sampler.ts";
import { bounce, heading } from "../src/data/motion.ts";

// ---------------------------------------------------------------- rng and sampler

Deno.test("rng: deterministic per seed, state save/restore resumes exactly, ranges", () => {
  const a = new Rng(42), b = new Rng(42), c = new Rng(43);
  const xs = Array.from({ length: 100 }, () => a.nextU32());
  assert.deepEqual(Array.from({ length: 100 }, () => b.nextU32()), xs);
  assert.notDeepEqual(Array.from({ length: 100 }, () => c.nextU32()), xs);
  const s = a.state();
  const next = Array.from({ length: 10 }, () => a.float());
  const d = new Rng(7);
  d.setState(s);
  assert.deepEqual(Array.from({ length: 10 }, () => d.float()), next);
  for (let i = 0; i < 1000; i++) {
    const f = a.float(), k = a.int(5);
    assert.ok(f >= 0 && f < 1 && Number.isInteger(k) && k >= 0 && k < 5);
  }
  assert.equal(hash32(1, 2), hash32(1, 2));
  assert.notEqual(hash32(1, 2), hash32(2, 1));
  assert.notEqual(hash32(0, 2 ** 32), hash32(0, 0)); // high bits are folded in
});

Deno.test("sampler: permuteIndex is a bijection of [0, n), keyed", () => {
  for (const n of [1, 2, 3, 7, 64, 100, 1000]) {
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) seen.add(permuteIndex(i, n, 5));
    assert.equal(seen.size, n);
    assert.ok([...seen].every((v) => v >= 0 && v < n));
  }
  const p1 = Array.from({ length: 100 }, (_, i) => permuteIndex(i, 100, 1));
  const p2 = Array.from({ length: 100 }, (_, i) => permuteIndex(i, 100, 2));
  assert.notDeepEqual(p1, p2);
  assert.ok(permuteIndex(123456789, 2 ** 32, 3) < 2 ** 32);
});

Deno.test("sampler: epochs visit every index once; state save/restore reproduces the continuation", () => {
  const s = new BatchSampler(10, 4, 3);
  const first = [...s.next(), ...s.next(), ...s.next(), ...s.next(), ...s.next()]; // 20 = two epochs
  assert.deepEqual([...first.slice(0, 10)].sort((a, b) => a - b), [...Array(10).keys()]);
  assert.deepEqual([...first.slice(10, 20)].sort((a, b) => a - b), [...Array(10).keys()]);
  assert.notDeepEqual(first.slice(0, 10), first.slice(10, 20)); // a new order each epoch
  const saved = s.state();
  const cont = [s.next(), s.next(), s.next()];
  const r = new BatchSampler(10, 4, 3, saved);
  assert.deepEqual([r.next(), r.next(), r.next()], cont);
  assert.throws(() => new BatchSampler(10, 4, 4, saved), /seed/);
  assert.throws(() => new BatchSampler(11, 4, 3, saved), /length/);
  assert.notDeepEqual(new BatchSampler(1000, 8, 1).next(), new BatchSampler(1000, 8, 2).next());
});

Deno.test("sampler, sharded: N ranks × batch B are disjoint and together the batch N·B of one process; resumes on any N", () => {
  const global = new BatchSampler(37, 6, 5);
  const shards = [0, 1, 2].map((rank) => new BatchSampler(37, 2, 5, undefined, { rank, size: 3 }));
  for (let step = 0; step < 15; step++) { // crosses two epoch boundaries (37 is not a multiple of 6)
    const parts = shards.map((s) => s.next());
    assert.deepEqual(parts.flat(), global.next(), `step ${step}`);
  }
  // positions are global: a state saved on 3 ranks continues on 2 ranks (batch 3) and on 1 (batch 6)
  const saved = shards[1].state();
  assert.equal(saved[0], 15 * 6);
  const two = [0, 1].map((rank) => new BatchSampler(37, 3, 5, saved, { rank, size: 2 }));
  assert.deepEqual(two.flatMap((s) => s.next()), global.next());
  assert.throws(
    () => new BatchSampler(37, 2, 5, undefined, { rank: 3, size: 3 }),
    /rank 3 is not in a world of size 3/,
  );
  assert.throws(() => new BatchSampler(37, 2, 5, undefined, { rank: 0, size: 0 }), /world of size 0/);
});

// ---------------------------------------------------------------- moving shapes

Deno.test("moving shapes: deterministic per (seed, index), independent of order; seeds differ", () => {
  const a = new MovingShapes({ seed: 1 }),
    b = new MovingShapes({ seed: 1 }),
    c = new MovingShapes({ seed: 2 });
  const x = a.clip(17);
  assert.equal(x.data.length, 16 * 32 * 32 * 3);
  b.clip(3); // drawing other clips first changes nothing
  assert.deepEqual(b.clip(17).data, x.data);
  assert.notDeepEqual(a.clip(18).data, x.data);
  assert.notDeepEqual(c.clip(17).data, x.data);
  const batch = a.batch([5, 17, 2]);
  assert.deepEqual(batch.data.subarray(x.data.length, 2 * x.data.length), x.data);
  assert.deepEqual(batch.data.subarray(0, x.data.length), a.clip(5).data);
  assert.deepEqual(Array.from(batch.labels!.shape), [a.clip(5).shape, x.shape, a.clip(2).shape]);
  assert.deepEqual(Array.from(batch.labels!.direction), [
    a.clip(5).direction,
    x.direction,
    a.clip(2).direction,
  ]);
  assert.deepEqual(Object.keys(batch.labels!), Object.keys(a.labelTasks));
  assert.deepEqual(a.labelTasks, { shape: SHAPE_NAMES, direction: DIRECTION_NAMES });
  assert.deepEqual(
    [batch.batch, batch.frames, batch.height, batch.width],
    [3, 16, 32, 32],
  );
  const small = new MovingShapes({ frames: 4, size: 16, maxObjects: 3, minObjects: 3 });
  const sc = small.clip(0);
  assert.equal(sc.data.length, 4 * 16 * 16 * 3);
  assert.equal(sc.objects.length, 3);
});

Deno.test("moving shapes: labels in range, every class and direction appears, label = initial velocity bin", () => {
  const ds = new MovingShapes({ seed: 0 });
  const shapes = new Set<number>(), dirs = new Set<number>(), bgs = new Set<number>();
  for (let i = 0; i < 300; i++) {
    const c = ds.clip(i);
    assert.ok(c.shape >= 0 && c.shape < SHAPE_NAMES.length);
    assert.ok(c.direction >= 0 && c.direction < DIRECTION_NAMES.length);
    assert.equal(c.objects[0].shape, c.shape);
    const [vx, vy] = c.objects[0].velocity;
    assert.equal(directionOf(vx, vy), c.direction);
    // The angle sits within the central half of its bin (±11.25°), clear of the bin boundaries.
    const a = Math.atan2(-vy, vx), centre = c.direction * Math.PI / 4;
    const off = Math.abs(((a - centre + 3 * Math.PI) % (2 * Math.PI)) - Math.PI);
    assert.ok(off <= Math.PI / 16 + 1e-9, `clip ${i}: ${off} rad off the bin centre`);
    // Every step moves by the initial velocity, up to sign flips from bounces.
    const o = c.objects[0];
    for (let f = 1; f < ds.frames; f++) {
      assert.ok(Math.abs(Math.abs(o.x[f] - o.x[f - 1]) - Math.abs(vx)) < 2 * Math.abs(vx) + 1e-9);
      assert.ok(Math.abs(o.y[f] - o.y[f - 1]) <= Math.abs(vy) + 1e-9);
    }
    shapes.add(c.shape);
    dirs.add(c.direction);
    bgs.add(c.background);
  }
  assert.equal(shapes.size, SHAPE_NAMES.length);
  assert.equal(dirs.size, 8);
  assert.equal(bgs.size, 3);
  assert.deepEqual([directionOf(1, 0), directionOf(0, -1), directionOf(-1, 0), directionOf(0, 1)], [
    0,
    2,
    4,
    6,
  ]);
  assert.equal(directionOf(1, -1), 1); // north-east: right and up the image
});

/** Centroid (x, y) of the pixels of frame f exactly equal to `rgb`, or null if there are none. */
function colourCentroid(
  c: { data: Uint8Array },
  f: number,
  S: number,
  rgb: number[],
): [number, number] | null {
  let sx = 0, sy = 0, n = 0;
  const base = f * S * S * 3;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const q = base + (y * S + x) * 3;
      if (c.data[q] === rgb[0] && c.data[q + 1] === rgb[1] && c.data[q + 2] === rgb[2]) {
        sx += x + 0.5;
        sy += y + 0.5;
        n++;
      }
    }
  }
  return n === 0 ? null : [sx / n, sy / n];
}

Deno.test("moving shapes: the rendered main object follows its trajectory, and its motion matches the label", () => {
  const S = 32, ds = new MovingShapes({ seed: 5, size: S });
  let tested = 0, agree = 0;
  for (let i = 0; i < 120; i++) {
    const c = ds.clip(i), o = c.objects[0];
    // Every frame: the main object (drawn on top, flat colour) is centred on the generator's trajectory.
    for (let f = 0; f < ds.frames; f++) {
      const m = colourCentroid(c, f, S, o.color);
      assert.ok(m !== null, `clip ${i} frame ${f}: main object not visible`);
      const err = Math.hypot(m[0] - o.x[f], m[1] - o.y[f]);
      assert.ok(err < 0.75, `clip ${i} frame ${f}: centroid ${m} vs trajectory ${o.x[f]},${o.y[f]}`);
    }
    // From the pixels alone: the centroid's displacement over the bounce-free start has the label's direction.
    let k = 0;
    while (
      k + 1 < ds.frames &&
      Math.abs(o.x[k + 1] - o.x[k] - o.velocity[0]) < 1e-9 &&
      Math.abs(o.y[k + 1] - o.y[k] - o.velocity[1]) < 1e-9
    ) k++;
    if (k < 3) continue;
    const p0 = colourCentroid(c, 0, S, o.color)!, pk = colourCentroid(c, k, S, o.color)!;
    tested++;
    if (directionOf(pk[0] - p0[0], pk[1] - p0[1]) === c.direction) agree++;
  }
  assert.ok(tested >= 40, `only ${tested} clips had 3 bounce-free frames`);
  assert.ok(
    agree >= 0.95 * tested,
    `direction from pixels agreed with the label in ${agree}/${tested} clips`,
  );
});

Deno.test("moving shapes: value ranges and noise: full-range pixels, static background, small frame noise", () => {
  const ds = new MovingShapes({ seed: 3 });
  const b = ds.batch([0, 1, 2, 3, 4, 5, 6, 7]);
  let min = 255, max = 0;
  for (const v of b.data) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  assert.ok(min < 40 && max > 200, `pixel range ${min}..${max}`);
  // The background is static up to the per-frame noise (±2): away from the shapes, frames differ by ≤ 4.
  const c = ds.clip(0), S = 32, fb = S * S * 3;
  let diffs = 0, far = 0;
  for (let p = 0; p < S * S; p++) {
    const x = p % S + 0.5, y = Math.floor(p / S) + 0.5;
    const clear = c.objects.every((o) =>
      [0, 1].every((f) => Math.hypot(x - o.x[f], y - o.y[f]) > 1.3 * o.radius + 1.5)
    );
    if (!clear) continue;
    for (let ch = 0; ch < 3; ch++) {
      const d = Math.abs(c.data[p * 3 + ch] - c.data[fb + p * 3 + ch]);
      if (d > 0) diffs++;
      if (d > 4) far++;
    }
  }
  assert.equal(far, 0);
  assert.ok(diffs > 100, "the per-frame noise changes background pixels");
  const quiet = new MovingShapes({ seed: 3, temporalNoise: 0, grain: 0, backgrounds: [0] }).clip(0);
  assert.equal(quiet.background, 0);
});

Deno.test("moving shapes: a batch of 8 clips of 16×32×32 takes well under 50 ms", () => {
  const ds = new MovingShapes({ seed: 0 });
  const s = ds.sampler(8, 0);
  for (let i = 0; i < 5; i++) ds.batch(s.next()); // warm up the JIT
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    ds.batch(s.next());
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[10];
  console.log(`moving shapes: batch of 8 × 16×32×32 in ${median.toFixed(2)} ms (median of 20)`);
  // about 2 ms on an idle 2-core machine: 25 ms leaves a loaded (or slower) machine a 10× margin, and still
  // catches a generator that became an order of magnitude slower
  assert.ok(median < 25, `median ${median} ms`);
});

// ---------------------------------------------------------------- upload

leakFreeTest("batchToTensor: [B, 3, T, H, W] f32, ImageNet-normalised values", () => {
  const ds = new MovingShapes({ frames: 4, size: 16, seed: 9 });
  const b = ds.batch([0, 1]);
  using t = batchToTensor(b, "cpu");
  assert.deepEqual(t.shape, [2, 3, 4, 16, 16]);
  assert.equal(t.dtype, "f32");
  assert.equal(t.device, "cpu");
  assert.ok(t.isContiguous());
  const got = t.toArray() as Float32Array;
  const [B, C, T, H, W] = [2, 3, 4, 16, 16];
  const want = new Float64Array(got.length);
  for (let bi = 0; bi < B; bi++) {
    for (let c = 0; c < C; c++) {
      for (let f = 0; f < T; f++) {
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            const src = b.data[((((bi * T + f) * H + y) * W + x) * 3) + c];
            want[(((bi * C + c) * T + f) * H + y) * W + x] = (src / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
          }
        }
      }
    }
  }
  assertClose(got, want, { rtol: 1e-5, atol: 1e-5 });
  const bad: ClipBatch = { ...b, frames: 5 };
  assert.throws(() => batchToTensor(bad, "cpu"), /expected/);
});

// ---------------------------------------------------------------- loaders

function sameBatch(a: ClipBatch, b: ClipBatch, msg: string): void {
  assert.deepEqual([a.batch, a.frames, a.height, a.width], [b.batch, b.frames, b.height, b.width], msg);
  assert.ok(
    a.data.length === b.data.length && a.data.every((v, i) => v === b.data[i]),
    `${msg}: pixels differ`,
  );
  assert.deepEqual(a.labels, b.labels, msg);
}

Deno.test("prefetch: the worker yields the direct sequence; state is that of the next batch consumed", async () => {
  const ds = new MovingShapes({ seed: 4, frames: 8, size: 24 });
  const direct = new DirectLoader(ds, { batchSize: 3, seed: 11 });
  const pre = createLoader(ds, { batchSize: 3, seed: 11, prefetch: 3 });
  try {
    assert.ok(pre instanceof PrefetchLoader);
    for (let i = 0; i < 6; i++) {
      const [a, b] = [await direct.next(), await pre.next()];
      sameBatch(b, a, `batch ${i}`);
      assert.deepEqual(pre.state(), direct.state());
    }
    // The worker has read ahead, but the state counts consumed batches only: 6 batches of 3.
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(pre.state(), [18, 11, ds.length]);
    // Concurrent next() calls resolve in order.
    const [x, y] = await Promise.all([pre.next(), pre.next()]);
    sameBatch(x, await direct.next(), "concurrent 1");
    sameBatch(y, await direct.next(), "concurrent 2");
  } finally {
    pre.close();
    direct.close();
  }
  await assert.rejects(pre.next(), /close/);
});

Deno.test("prefetch: resuming from a saved state reproduces the continuation (prefetch and direct)", async () => {
  const ds = new MovingShapes({ seed: 2, frames: 4, size: 16 });
  using first = new PrefetchLoader(ds, { batchSize: 4, seed: 1, prefetch: 2 });
  for (let i = 0; i < 3; i++) await first.next();
  const saved = first.state();
  const cont = [await first.next(), await first.next()];
  using resumed = new PrefetchLoader(ds, { batchSize: 4, seed: 1, prefetch: 4, state: saved });
  using direct = createLoader(ds, { batchSize: 4, seed: 1, prefetch: 0, state: saved });
  for (let i = 0; i < 2; i++) {
    sameBatch(await resumed.next(), cont[i], `resumed ${i}`);
    sameBatch(await direct.next(), cont[i], `direct ${i}`);
  }
  assert.throws(() => new PrefetchLoader(ds, { batchSize: 4, seed: 2, state: saved }), /seed/);
});

Deno.test("prefetch: the worker's module graph never reaches the FFI shim", async () => {
  // Follow the runtime imports (type-only imports are erased) from the worker entry point.
  const seen = new Set<string>();
  const visit = async (url: URL) => {
    if (seen.has(url.href)) return;
    seen.add(url.href);
    const src = await Deno.readTextFile(url);
    for (const m of src.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+"([^"]+)"/gms)) {
      if (m[2] !== undefined) continue;
      await visit(new URL(m[3], url));
    }
  };
  await visit(new URL("../src/data/prefetch_worker.ts", import.meta.url));
  const files = [...seen].map((u) => u.replace(/^.*\/src\//, "src/"));
  assert.ok(files.includes("src/data/moving_shapes.ts") && files.includes("src/data/video_folder.ts"));
  // only the data modules (not clip_tensor.ts, which makes tensors) and the error family, which imports nothing
  const allowed = (f: string) =>
    (f.startsWith("src/data/") && f !== "src/data/clip_tensor.ts") || f === "src/errors.ts";
  assert.deepEqual(files.filter((f) => !allowed(f)), []);
});

// ---------------------------------------------------------------- video folder (ffmpeg)

let haveFfmpeg = true;
try {
  await ensureFfmpeg({ log: (l) => console.log(l) });
} catch (e) {
  console.warn(`video folder tests skipped: ${(e as Error).message}`);
  haveFfmpeg = false;
}

async function ffmpegMake(args: string[]): Promise<void> {
  const r = await new Deno.Command("ffmpeg", { args: ["-v", "error", "-y", ...args], stderr: "piped" })
    .output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
}

Deno.test({
  name: "video folder: decodes random clips of the user's videos (shape, ranges, colours, loaders)",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("videos_");
    try {
      await Deno.mkdir(`${dir}/sub`);
      await ffmpegMake(["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "2", `${dir}/test.mp4`]);
      await ffmpegMake([
        "-f",
        "lavfi",
        "-i",
        "color=c=red:size=32x32:rate=10",
        "-t",
        "1",
        `${dir}/sub/red.mkv`,
      ]);
      await Deno.writeTextFile(`${dir}/notes.txt`, "not a video");
      const vf = await VideoFolder.open(dir, { frames: 4, size: 32, stride: 2, clipsPerVideo: 8, seed: 1 });
      assert.deepEqual(vf.videos.map((v) => v.path.replace(`${dir}/`, "")), ["sub/red.mkv", "test.mp4"]);
      const test = vf.videos[1];
      assert.ok(Math.abs(test.duration - 2) < 0.15 && Math.abs(test.fps - 10) < 1e-6, JSON.stringify(test));
      assert.equal(vf.length, 16);
      // Clip 1 is from test.mp4 (index mod 2): 4 frames 2 apart within its 20; testsrc's bars span the range.
      const plan = vf.plan(1);
      assert.equal(plan.video.path, test.path);
      assert.equal(test.frameCount, 20);
      assert.ok(
        plan.frames.every((f, i) => f === plan.frames[0] + 2 * i) && plan.frames[3] <= 19,
        `${plan.frames}`,
      );
      assert.ok(
        plan.crop.x + plan.crop.w <= 64 && plan.crop.y + plan.crop.h <= 48,
        JSON.stringify(plan.crop),
      );
      const clip = await vf.clip(1);
      assert.equal(clip.length, 4 * 32 * 32 * 3);
      let min = 255, max = 0;
      for (const v of clip) [min, max] = [Math.min(min, v), Math.max(max, v)];
      assert.ok(min < 30 && max > 220, `range ${min}..${max}`);
      // Clip 0 is from the solid red video: every pixel near (255, 0, 0).
      const red = await vf.clip(0);
      let worst = 0;
      for (let p = 0; p < red.length; p += 3) {
        worst = Math.max(worst, Math.abs(red[p] - 255), red[p + 1], red[p + 2]);
      }
      assert.ok(worst <= 12, `red decoded up to ${worst} away from (255, 0, 0)`);
      // Batches: labels null; the worker decodes the same batches as the direct loader.
      const direct = new DirectLoader(vf, { batchSize: 2, seed: 2 });
      const pre = new PrefetchLoader(vf, { batchSize: 2, seed: 2, prefetch: 1 });
      try {
        for (let i = 0; i < 1; i++) {
          const [a, b] = [await direct.next(), await pre.next()];
          assert.equal(a.labels, null);
          assert.deepEqual([a.batch, a.frames, a.height, a.width], [2, 4, 32, 32]);
          sameBatch(b, a, `video batch ${i}`);
        }
      } finally {
        pre.close();
        direct.close();
      }
      await assert.rejects(VideoFolder.open(`${dir}/sub/none`, {}), /cannot read the video folder/);
      // A decoding failure in the worker surfaces from next().
      const spec = vf.spec();
      assert.equal(spec.kind, "video_folder");
      if (spec.kind === "video_folder") {
        spec.spec.videos = [{ ...spec.spec.videos[0], path: `${dir}/gone.mp4` }];
        using broken = new PrefetchLoader(VideoFolder.fromSpec(spec.spec), { batchSize: 1, prefetch: 1 });
        await assert.rejects(broken.next(), /prefetch worker: .*cannot decode .*gone\.mp4/s);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "video folder: unreadable files are skipped with a warning and counted; their clips are replaced by others",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("badvideos_");
    try {
      // a good video; the same with its index up front, then cut in half (it probes, but decoding past the cut
      // fails); and files that do not even probe: empty, and text named .mp4
      const good = (name: string, extra: string[] = []) =>
        ffmpegMake([
          "-f",
          "lavfi",
          "-i",
          "testsrc=size=32x32:rate=10",
          "-t",
          "4",
          ...extra,
          `${dir}/${name}`,
        ]);
      await good("a_good.mp4");
      await good("b_cut.mp4", ["-movflags", "+faststart"]);
      const bytes = await Deno.readFile(`${dir}/b_cut.mp4`);
      await Deno.writeFile(`${dir}/b_cut.mp4`, bytes.subarray(0, Math.floor(bytes.length * 0.3)));
      await Deno.writeFile(`${dir}/c_empty.mp4`, new Uint8Array(0));
      await Deno.writeTextFile(`${dir}/d_text.mp4`, "this is not a video");
      const vf = await VideoFolder.open(dir, { frames: 4, size: 16, stride: 1, clipsPerVideo: 4, seed: 3 });
      // the empty and text files are skipped at the start (ffprobe cannot read them)
      assert.deepEqual(vf.videos.map((v) => v.path.split("/").pop()), ["a_good.mp4", "b_cut.mp4"]);
      // every clip of the cut video starting past its end fails and is replaced by the good video's clip
      const all = [...Array(vf.length).keys()];
      const batch = await vf.batch(all);
      assert.deepEqual(batch.skipped?.map((p) => p.split("/").pop()), ["b_cut.mp4"]);
      assert.equal(batch.batch, all.length);
      const again = await vf.batch(all); // known bad now: replaced without a new warning
      assert.equal(again.skipped, undefined);
      assert.deepEqual(again.data, batch.data);
      // a fresh instance (a resumed run, the prefetch worker) makes the same replacement
      const fresh = VideoFolder.fromSpec(
        (vf.spec() as { spec: Parameters<typeof VideoFolder.fromSpec>[0] }).spec,
      );
      assert.deepEqual((await fresh.batch(all)).data, batch.data);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "video folder: labelled by an annotation list or by class subfolders; batches carry the class ids",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("labelled_");
    try {
      await Deno.mkdir(`${dir}/run`);
      await Deno.mkdir(`${dir}/walk`);
      const make = (path: string, colour: string) =>
        ffmpegMake([
          "-f",
          "lavfi",
          "-i",
          `color=c=${colour}:size=32x32:rate=10`,
          "-t",
          "2",
          `${dir}/${path}`,
        ]);
      await make("run/r1.mp4", "red");
      await make("walk/w1.mp4", "blue");
      await make("walk/w2.mp4", "green");
      const opts = { frames: 2, size: 16, stride: 1, clipsPerVideo: 2, seed: 1 };
      // class subfolders: names numbered in sorted order
      const byFolder = await VideoFolder.open(dir, { ...opts, classFolders: true });
      assert.deepEqual(byFolder.classes, { run: 0, walk: 1 });
      const b = await byFolder.batch([0, 1, 2, 3, 4, 5]); // clip i is video i % 3: r1, w1, w2, r1, w1, w2
      assert.deepEqual(Array.from(b.labels!.class), [0, 1, 1, 0, 1, 1]);
      assert.deepEqual(byFolder.labelTasks, { class: ["run", "walk"] });
      // a list: only the listed videos, their labels (integer ids kept)
      await Deno.writeTextFile(`${dir}/train.txt`, "walk/w2.mp4 4\nrun/r1.mp4 9\n");
      const listed = await VideoFolder.open(dir, { ...opts, list: `${dir}/train.txt` });
      assert.deepEqual(listed.videos.map((v) => [v.path.slice(dir.length + 1), v.label]), [
        ["walk/w2.mp4", 4],
        [
          "run/r1.mp4",
          9,
        ],
      ]);
      assert.deepEqual(Array.from((await listed.batch([0, 1])).labels!.class), [4, 9]);
      assert.deepEqual(listed.labelTasks, { class: ["", "", "", "", "4", "", "", "", "", "9"] });
      // the worker's copy (from the spec) keeps the labels; an unlabelled folder has none
      const fresh = VideoFolder.fromSpec(
        (listed.spec() as { spec: Parameters<typeof VideoFolder.fromSpec>[0] }).spec,
      );
      assert.deepEqual(Array.from((await fresh.batch([1])).labels!.class), [9]);
      const unlabelled = await VideoFolder.open(dir, opts);
      assert.equal(unlabelled.classes, null);
      assert.deepEqual(unlabelled.labelTasks, {});
      // a listed file that is missing, and an unknown label against a given mapping, are errors naming the line
      await Deno.writeTextFile(`${dir}/val.txt`, "walk/w1.mp4,walk\nwalk/gone.mp4,walk\n");
      await assert.rejects(
        VideoFolder.open(dir, { ...opts, list: `${dir}/val.txt` }),
        /gone\.mp4 \(.*val\.txt:2\)/,
      );
      await Deno.writeTextFile(`${dir}/test.txt`, "walk/w1.mp4,swim\n");
      await assert.rejects(
        VideoFolder.open(dir, { ...opts, list: `${dir}/test.txt`, labelMap: { run: 0, walk: 1 } }),
        /test\.txt:1: label 'swim' is not one of the 2 classes/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "train on a labelled folder saves labels.json; data.labelMap reuses it for another list",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("labelled_cli_");
    const name = `labelled_${Date.now()}`;
    try {
      for (const [c, colour] of [["jump", "red"], ["sit", "blue"]]) {
        await Deno.mkdir(`${dir}/${c}`);
        await ffmpegMake([
          "-f",
          "lavfi",
          "-i",
          `color=c=${colour}:size=32x32:rate=10`,
          "-t",
          "2",
          `${dir}/${c}/a.mp4`,
        ]);
      }
      const train = (args: string[]) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            ...CLI_PERMISSIONS,
            "--allow-run",
            "src/cli/train.ts",
            "--data",
            "folder",
            "--data-path",
            dir,
            "--frames",
            "2",
            "--size",
            "16",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--batch-size",
            "2",
            "--set",
            "model.encoderDepth=2",
            "--set",
            "log.floorClips=0",
            ...args,
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
      const r = await train(["--name", name, "--set", "data.classFolders=true"]);
      assert.ok(r.success, new TextDecoder().decode(r.stderr));
      const saved = JSON.parse(await Deno.readTextFile(`runs/${name}/labels.json`));
      assert.deepEqual(saved, { jump: 0, sit: 1 });
      // a list whose label is not in the saved mapping is refused, naming its line
      await Deno.writeTextFile(`${dir}/val.txt`, "sit/a.mp4 sit\njump/a.mp4 stand\n");
      const bad = await train([
        "--name",
        `${name}_val`,
        "--set",
        `data.list=${dir}/val.txt`,
        "--set",
        `data.labelMap=runs/${name}/labels.json`,
      ]);
      assert.equal(bad.success, false);
      assert.match(
        new TextDecoder().decode(bad.stderr),
        /val\.txt:2: label 'stand' is not one of the 2 classes/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
      for (const n of [name, `${name}_val`]) {
        await Deno.remove(`runs/${n}`, { recursive: true }).catch(() => {});
      }
    }
  },
});

Deno.test("video folder: a missing ffmpeg is a clear error that says how to install it", async () => {
  await assert.rejects(
    ensureFfmpeg({ ffmpeg: "/nonexistent/ffmpeg", install: false }),
    /apt-get install ffmpeg/,
  );
  const req = { index: [0], crop: { x: 0, y: 0, w: 8, h: 8 }, width: 8, height: 8, flip: false };
  await assert.rejects(
    new FfmpegDecoder("/nonexistent/ffmpeg").decode("x.mp4", req, 1),
    /apt-get install ffmpeg/,
  );
});

Deno.test("video folder: the tasks permit ffmpeg where apt installs it, even when it is missing at start-up", async () => {
  // Deno resolves --allow-run names at start-up, so a binary apt installs mid-run is covered only by its path
  const config = JSON.parse(await Deno.readTextFile("deno.json"));
  for (const name of ["train-worker", "embed"]) assert.match(config.tasks[name], /-P=run /, name);
  for (const bin of ["/usr/bin/ffmpeg", "/usr/bin/ffprobe"]) {
    assert.ok(config.permissions.run.run.includes(bin), `the run tasks' permission set: ${bin}`);
  }
  // without that permission, asking for ffmpeg is a DataError naming the permitted paths, not Deno's bare error
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-read",
      "--allow-env",
      "--allow-run=id",
      "tests/fixtures/ffmpeg_not_permitted.ts",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.match(
    text,
    /^DataError: running 'ffmpeg' is not permitted: the tasks allow ffmpeg and ffprobe in \/usr\/bin/,
  );
});

Deno.test("bounce: a trajectory reflects off the borders of its range (hand-computed), heading labels the main object", () => {
  // a stand-in generator whose uniform draws sit at 90% of their range: the start is (9, 9) in [0, 10]²
  const rng = { uniform: (a: number, b: number) => a + 0.9 * (b - a) } as unknown as Rng;
  const { x, y } = bounce(rng, 8, 0, 10, 2, 0);
  assert.deepEqual(Array.from(x), [9, 9, 7, 5, 3, 1, 1, 3]); // 9+2 = 11 → 9 (reflected); 1−2 = −1 → 1
  assert.deepEqual(Array.from(y), [9, 9, 9, 9, 9, 9, 9, 9]);
  const real = new Rng(3);
  for (let i = 0; i < 50; i++) {
    const h = heading(real, true);
    assert.ok(h.direction !== null && directionOf(Math.cos(h.angle), -Math.sin(h.angle)) === h.direction);
    assert.equal(heading(real, false).direction, null);
  }
});
