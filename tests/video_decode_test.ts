/**
 * Decoding the frames a clip needs (src/data/libav.ts, the in-process decoder; src/data/ffmpeg.ts, the ffmpeg
 * program), against references made with the ffmpeg program decoding every frame from the start — no seeking,
 * no frame selection: the frames asked for by index (keyframes every 10 frames, so requests seek), crops at full
 * resolution against the reference frame cut in JS, crop + bilinear scale against ffmpeg's own crop/scale of every
 * frame, mirroring against the unmirrored output reversed in JS, indices past the end and repeated. Then the
 * video folder: both decoders give the same batches, the probe index is written, reused and refreshed, a seeded
 * epoch is reproducible through the prefetch worker and resumes mid-epoch, evaluation clips are fixed, and the
 * batch carries the configured normalisation.
 * @module
 */
import assert from "node:assert/strict";
import { tempDir } from "./helpers.ts";
import { FfmpegDecoder } from "../src/data/ffmpeg.ts";
import { type FrameRequest, LibavDecoder, libavLibrary } from "../src/data/libav.ts";
import { createLoader } from "../src/data/prefetch.ts";
import { VideoFolder } from "../src/data/video_folder.ts";
import { ensureFfmpeg } from "../src/data/ffmpeg.ts";
import { batchToTensor } from "../src/data/clip_tensor.ts";
import { liveTensors } from "../mod.ts";

let haveFfmpeg = true;
try {
  await ensureFfmpeg({ log: (l) => console.log(l) });
} catch (e) {
  console.warn(`video decoding tests skipped: ${(e as Error).message}`);
  haveFfmpeg = false;
}
const found = libavLibrary();
if (found.lib === null) console.warn(`in-process decoder tests skipped: ${found.why}`);

async function ffmpeg(args: string[]): Promise<Uint8Array> {
  const r = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-nostdin", "-y", ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  return r.stdout;
}

/** Every frame of `file` from the start, through `vf` (or none), as RGB24 frames. */
async function reference(file: string, w: number, h: number, vf?: string): Promise<Uint8Array[]> {
  const raw = await ffmpeg([
    "-threads",
    "1",
    "-i",
    file,
    ...(vf ? ["-vf", vf] : []),
    "-vsync",
    "0",
    "-f",
    "rawvideo",
    "-pix_fmt",
    "rgb24",
    "-",
  ]);
  const n = w * h * 3;
  return Array.from({ length: raw.length / n }, (_, i) => raw.slice(i * n, (i + 1) * n));
}

function cut(frame: Uint8Array, W: number, x: number, y: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    out.set(frame.subarray(((y + r) * W + x) * 3, ((y + r) * W + x + w) * 3), r * w * 3);
  }
  return out;
}

function mirror(frames: Uint8Array, w: number): Uint8Array {
  const out = new Uint8Array(frames.length);
  for (let p = 0; p < frames.length / 3; p++) {
    const row = Math.floor(p / w), col = p % w, q = row * w + (w - 1 - col);
    out.set(frames.subarray(p * 3, p * 3 + 3), q * 3);
  }
  return out;
}

function meanAbs(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

const decoders = () => [
  ...(found.lib !== null ? [new LibavDecoder(found.lib)] : []),
  new FfmpegDecoder(),
];

const W = 96, H = 64, N = 30;

Deno.test({
  name: "decode: the frames asked for, cropped, scaled and mirrored, as ffmpeg decodes them from the start",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("decode_");
    try {
      const file = `${dir}/clip.mp4`;
      // testsrc2 changes every frame; keyframes every 10 frames so that requests seek
      await ffmpeg([
        "-f",
        "lavfi",
        "-i",
        `testsrc2=size=${W}x${H}:rate=10`,
        "-t",
        "3",
        "-g",
        "10",
        "-pix_fmt",
        "yuv420p",
        file,
      ]);
      const full = await reference(file, W, H);
      assert.equal(full.length, N);
      // consecutive reference frames differ: picking the wrong one would show
      assert.ok(meanAbs(full[14], full[15]) > 1);
      const crop = { x: 20, y: 10, w: 48, h: 32 };
      const scaled = await reference(file, 24, 16, `crop=48:32:20:10,scale=24:16:flags=bilinear`);
      for (const d of decoders()) {
        const info = await d.probe(file);
        assert.deepEqual([info.width, info.height, info.fps, info.frameCount], [W, H, 10, N], d.name);
        const cases: number[][] = [[0, 1, 2], [13, 15, 17, 19], [25, 29], [7, 7, 8], [28, 31, 40]];
        for (const index of cases) {
          // full resolution crop: the reference frame cut in JS
          const req: FrameRequest = { index, crop, width: 48, height: 32, flip: false };
          const got = await d.decode(file, req, 10);
          // past the end: the in-process decoder gives the stream's last frame; the ffmpeg program, which cannot
          // tell where the stream ends, the last frame it returned (the folder never asks past a known count)
          const lastOf = (i: number) =>
            i < N ? i : d.name === "libav" ? N - 1 : Math.max(...index.filter((j) => j < N));
          const want = index.map((i) => cut(full[lastOf(i)], W, crop.x, crop.y, crop.w, crop.h));
          index.forEach((i, k) => {
            const frame = got.subarray(k * 48 * 32 * 3, (k + 1) * 48 * 32 * 3);
            const err = meanAbs(frame, want[k]);
            assert.ok(
              err < 2,
              `${d.name}: frame ${i} (slot ${k}) differs from the reference by ${err.toFixed(2)}`,
            );
            // and it is not any other frame (the nearest neighbours differ more)
            for (const j of [i - 1, i + 1]) {
              if (j < 0 || j >= N || lastOf(i) === j) continue;
              const other = cut(full[j], W, crop.x, crop.y, crop.w, crop.h);
              assert.ok(meanAbs(frame, other) > err, `${d.name}: frame ${i} looks like frame ${j}`);
            }
          });
          // scaled: exactly ffmpeg's own crop + bilinear scale of the same frames
          const small = await d.decode(file, { index, crop, width: 24, height: 16, flip: false }, 10);
          index.forEach((i, k) => {
            const err = meanAbs(
              small.subarray(k * 24 * 16 * 3, (k + 1) * 24 * 16 * 3),
              scaled[lastOf(i)],
            );
            assert.ok(err < 0.5, `${d.name}: scaled frame ${i} differs from ffmpeg's by ${err.toFixed(3)}`);
          });
          // mirrored: the unmirrored frames reversed left-right
          const flipped = await d.decode(file, { ...req, flip: true }, 10);
          assert.deepEqual(flipped, mirror(got, 48), `${d.name}: flip of ${index}`);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "decode: unreadable files are DataErrors naming the file; a container without a frame count is estimated",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("decode_bad_");
    try {
      await Deno.writeTextFile(`${dir}/text.mp4`, "not a video at all");
      await Deno.writeFile(`${dir}/empty.mp4`, new Uint8Array(0));
      await ffmpeg(["-f", "lavfi", "-i", "testsrc=size=32x32:rate=10", "-t", "2", `${dir}/ok.mkv`]);
      const req: FrameRequest = {
        index: [0],
        crop: { x: 0, y: 0, w: 32, h: 32 },
        width: 8,
        height: 8,
        flip: false,
      };
      for (const d of decoders()) {
        for (const f of ["text.mp4", "empty.mp4", "missing.mp4"]) {
          await assert.rejects(
            d.probe(`${dir}/${f}`),
            (e: Error) => e.name === "DataError" && e.message.includes(f),
          );
          await assert.rejects(
            d.decode(`${dir}/${f}`, req, 10),
            (e: Error) => e.name === "DataError" && e.message.includes(f),
          );
        }
        // Matroska stores no frame count: duration × rate
        const info = await d.probe(`${dir}/ok.mkv`);
        assert.ok(Math.abs(info.frameCount - 20) <= 1, `${d.name}: ${info.frameCount}`);
        // a crop outside the frame is refused by the in-process decoder (the folder never asks for one)
        if (d.name === "libav") {
          await assert.rejects(
            d.decode(`${dir}/ok.mkv`, { ...req, crop: { x: 16, y: 0, w: 32, h: 32 } }, 10),
            /outside the 32x32 frame/,
          );
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "video folder: decoders agree, the probe index is reused and refreshed, epochs reproduce and resume",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("folder_");
    const index = `${dir}/index.json`;
    try {
      await Deno.mkdir(`${dir}/v`);
      for (const [k, src] of ["testsrc2", "testsrc", "smptebars"].entries()) {
        await ffmpeg([
          "-f",
          "lavfi",
          "-i",
          `${src}=size=80x48:rate=15`,
          "-t",
          "2",
          "-g",
          "8",
          "-pix_fmt",
          "yuv420p",
          `${dir}/v/${k}.mp4`,
        ]);
      }
      const opts = { frames: 4, size: 16, stride: 2, clipsPerVideo: 4, seed: 5, index, workers: 2 };
      const a = await VideoFolder.open(`${dir}/v`, opts);
      const indexed = JSON.parse(await Deno.readTextFile(index));
      assert.equal(Object.keys(indexed.files).length, 3);
      assert.equal(indexed.files[`${dir}/v/0.mp4`].info.frameCount, 30);
      // both decoders make the same batch, of two epochs
      const idx = [0, 1, 2, 3, 4, 5, 6, 7];
      const epochs = [0, 0, 0, 0, 1, 1, 1, 1];
      if (found.lib !== null) {
        assert.equal(a.decoderKind, "libav");
        const viaProgram = await VideoFolder.open(`${dir}/v`, { ...opts, decoder: "ffmpeg" });
        assert.equal(viaProgram.decoderKind, "ffmpeg");
        const [x, y] = [await a.batch(idx, epochs), await viaProgram.batch(idx, epochs)];
        assert.ok(meanAbs(x.data, y.data) < 0.5, `decoders differ by ${meanAbs(x.data, y.data)}`);
      }
      // the index is used: a file changed behind its back (same size and time) keeps its entry; a touched one is
      // probed again
      indexed.files[`${dir}/v/1.mp4`].info.frameCount = 7;
      await Deno.writeTextFile(index, JSON.stringify(indexed));
      const b = await VideoFolder.open(`${dir}/v`, opts);
      assert.equal(b.videos[1].frameCount, 7);
      await Deno.utime(`${dir}/v/1.mp4`, new Date(), new Date(Date.now() - 5000));
      const c = await VideoFolder.open(`${dir}/v`, opts);
      assert.equal(c.videos[1].frameCount, 30);
      // a seeded epoch through the prefetch worker: the same batches as direct decoding, and a resumed loader
      // continues with exactly the batches that followed
      const direct = createLoader(c, { batchSize: 3, seed: 2, prefetch: 0 });
      const want = [];
      for (let i = 0; i < 6; i++) want.push((await direct.next()).data); // 18 clips: past the first epoch of 12
      direct.close();
      const pre = createLoader(c, { batchSize: 3, seed: 2, prefetch: 3 });
      let state: number[] = [];
      for (let i = 0; i < 3; i++) {
        assert.deepEqual((await pre.next()).data, want[i], `batch ${i}`);
        state = pre.state();
      }
      pre.close();
      const resumed = createLoader(c, { batchSize: 3, seed: 2, prefetch: 2, state });
      for (let i = 3; i < 6; i++) {
        assert.deepEqual((await resumed.next()).data, want[i], `resumed batch ${i}`);
      }
      resumed.close();
      // training clips change with the epoch; evaluation clips do not, and views spread over the video
      assert.notDeepEqual(c.plan(0, 0), c.plan(0, 1));
      const ev = await VideoFolder.open(`${dir}/v`, { ...opts, augment: false, clipsPerVideo: 3 });
      assert.deepEqual(ev.plan(0, 0), ev.plan(0, 5));
      assert.deepEqual([0, 3, 6].map((i) => ev.plan(i).frames[0]), [0, 11, 22]); // 30 − 4·2 = 22: 0, 11, 22
      assert.deepEqual(ev.plan(0).crop, { x: 16, y: 0, w: 48, h: 48, flip: false });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "video folder: batches carry the configured normalisation, which batchToTensor applies",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("norm_");
    const before = liveTensors();
    try {
      await ffmpeg([
        "-f",
        "lavfi",
        "-i",
        "color=c=0x808080:size=32x32:rate=10",
        "-t",
        "1",
        "-pix_fmt",
        "yuv420p",
        `${dir}/grey.mp4`,
      ]);
      const norm = { mean: [0.5, 0.25, 0] as const, std: [0.5, 0.25, 2] as const };
      const vf = await VideoFolder.open(dir, { frames: 2, size: 8, norm, augment: false, clipsPerVideo: 1 });
      const b = await vf.batch([0]);
      assert.deepEqual(b.norm, norm);
      using x = batchToTensor(b);
      const v = x.toArray() as Float32Array; // [1, 3, 2, 8, 8]
      const px = b.data[0] / 255;
      const per = v.length / 3;
      for (let c = 0; c < 3; c++) {
        const want = (px - norm.mean[c]) / norm.std[c];
        assert.ok(Math.abs(v[c * per] - want) < 1e-5, `channel ${c}: ${v[c * per]} vs ${want}`);
      }
      // an explicit normalisation wins over the batch's; a zero std is refused
      using y = batchToTensor(b, "cpu", { mean: [0, 0, 0], std: [1, 1, 1] });
      assert.ok(Math.abs((y.toArray() as Float32Array)[0] - px) < 1e-6);
      assert.throws(() => batchToTensor(b, "cpu", { mean: [0, 0, 0], std: [1, 0, 1] }), /std must be > 0/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    assert.equal(liveTensors(), before);
  },
});
