/**
 * Moving Fashion-MNIST: decoding of the official files (counts, sizes, label histograms and checksums, known
 * properties of the fixed files), clip determinism, labels against the generator's trajectory and the pixels,
 * the train/test split, rebuilding from the spec (prefetch worker), the training configuration, and clear errors
 * on missing, corrupt or truncated IDX files. The tests that need the real files are ignored only when Debian's
 * `dataset-fashion-mnist` cannot be installed (not root, no network).
 * @module
 */
import assert from "node:assert/strict";
import { noLeak, tempDir } from "../helpers.ts";
import {
  batchToTensor,
  createLoader,
  datasetFromSpec,
  DIRECTION_NAMES,
  directionOf,
  DirectLoader,
  ensureFashionMnist,
  FASHION_CLASSES,
  FASHION_MNIST_DIR,
  FASHION_MNIST_FILES,
  type FashionClip,
  type FashionMnistData,
  loadFashionMnist,
  MovingFashionMnist,
  parseConfig,
} from "../../mod.ts";
import { fashionMnistDir } from "../../src/data/fashion_mnist.ts";
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, parseIdx } from "../../src/data/idx.ts";
import { makeDataset } from "../../src/data/registry.ts";

let haveFashion = true;
try {
  await ensureFashionMnist({ log: (l) => console.log(l) });
} catch (e) {
  console.warn(`Fashion-MNIST tests skipped: ${(e as Error).message}`);
  haveFashion = false;
}

/** A Deno.test that needs the real Fashion-MNIST files. */
function fashionTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: !haveFashion, fn });
}

// ---------------------------------------------------------------- the official files

fashionTest(
  "fashion-mnist: the official files decode with their known counts, sizes, labels and checksums",
  async () => {
    const train = await loadFashionMnist("train"), test = await loadFashionMnist("test");
    assert.equal(await loadFashionMnist("train"), train); // cached per process
    const sum = (a: Uint8Array) => {
      let s = 0;
      for (let i = 0; i < a.length; i++) s += a[i];
      return s;
    };
    for (const [d, n] of [[train, 60000], [test, 10000]] as const) {
      assert.equal(d.count, n);
      assert.equal(d.images.length, n * 28 * 28);
      assert.equal(d.labels.length, n);
      const hist = new Array(10).fill(0);
      for (const l of d.labels) hist[l]++;
      assert.deepEqual(hist, new Array(10).fill(n / 10), `${d.split}: every class ${n / 10} times`);
    }
    // Known properties of the official files (computed once, independently, with Python's gzip module).
    assert.equal(sum(train.labels), 270000);
    assert.equal(sum(test.labels), 45000);
    assert.deepEqual(Array.from(train.labels.subarray(0, 10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assert.deepEqual(Array.from(test.labels.subarray(0, 10)), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    assert.equal(sum(train.images.subarray(0, 784)), 76247);
    assert.equal(sum(test.images.subarray(0, 784)), 33456);
    assert.equal(sum(train.images), 3431114169);
    assert.equal(sum(test.images), 573469082);
    assert.equal(FASHION_CLASSES.length, 10);
    assert.equal(FASHION_CLASSES[train.labels[0]], "Ankle boot");
  },
);

// ---------------------------------------------------------------- clips

fashionTest(
  "moving fashion-mnist: deterministic per (seed, index), independent of order; seeds differ",
  async () => {
    const a = new MovingFashionMnist({ seed: 1 }),
      b = new MovingFashionMnist({ seed: 1 }),
      c = new MovingFashionMnist({ seed: 2 });
    const x = await a.clip(17);
    assert.equal(x.data.length, 16 * 64 * 64 * 3);
    await b.clip(3); // drawing other clips first changes nothing
    assert.deepEqual((await b.clip(17)).data, x.data);
    assert.notDeepEqual((await a.clip(18)).data, x.data);
    assert.notDeepEqual((await c.clip(17)).data, x.data);
    const batch = await a.batch([5, 17, 2]);
    assert.deepEqual([batch.batch, batch.frames, batch.height, batch.width], [3, 16, 64, 64]);
    assert.deepEqual(batch.data.subarray(x.data.length, 2 * x.data.length), x.data);
    const c5 = await a.clip(5), c2 = await a.clip(2);
    assert.deepEqual(batch.data.subarray(0, x.data.length), c5.data);
    assert.deepEqual(Array.from(batch.labels!.garment), [c5.shape, x.shape, c2.shape]);
    assert.deepEqual(Array.from(batch.labels!.direction), [c5.direction, x.direction, c2.direction]);
    assert.deepEqual(a.labelTasks, { garment: FASHION_CLASSES, direction: DIRECTION_NAMES });
    // Gray by default: R = G = B everywhere; tinted garments are coloured; one or two garments.
    assert.ok(x.data.every((v, i) => i % 3 !== 0 || (v === x.data[i + 1] && v === x.data[i + 2])));
    const counts = new Set<number>();
    for (let i = 0; i < 40; i++) counts.add((await a.clip(i)).objects.length);
    assert.deepEqual([...counts].sort(), [1, 2]);
    const tinted = await new MovingFashionMnist({ seed: 1, tint: true }).clip(17);
    assert.deepEqual(
      tinted.objects.map((o) => [o.x, o.y, o.image]),
      x.objects.map((o) => [o.x, o.y, o.image]),
    );
    assert.ok(tinted.data.some((v, i) => i % 3 === 0 && v !== tinted.data[i + 1]));
    // Other sizes: the garment scales with the frame (14 px at 32) and stays inside it.
    const small = new MovingFashionMnist({ size: 32, frames: 4 });
    assert.equal(small.garment, 14);
    const sb = await small.batch([0, 1, 2, 3]);
    assert.equal(sb.data.length, 4 * 4 * 32 * 32 * 3);
    assert.ok(sb.data.some((v) => v > 100));
    assert.throws(() => new MovingFashionMnist({ size: 32, garment: 31 }), /garment must be an integer/);
    assert.throws(() => new MovingFashionMnist({ split: "dev" as "test" }), /split/);
  },
);

/** Intensity-weighted centroid (x, y) of frame f of a clip (pixel j at j + 0.5), over all channels. */
function centroid(c: { data: Uint8Array }, f: number, S: number): [number, number] {
  let sx = 0, sy = 0, m = 0;
  const base = f * S * S * 3;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const q = base + (y * S + x) * 3, v = c.data[q] + c.data[q + 1] + c.data[q + 2];
      sx += v * (x + 0.5);
      sy += v * (y + 0.5);
      m += v;
    }
  }
  return [sx / m, sy / m];
}

/** The centroid of a 28×28 image (pixel j at j + 0.5), relative to its centre. */
function imageCentroid(d: FashionMnistData, k: number): [number, number] {
  let sx = 0, sy = 0, m = 0;
  for (let i = 0; i < 28; i++) {
    for (let j = 0; j < 28; j++) {
      const v = d.images[k * 784 + i * 28 + j];
      sx += v * (j + 0.5);
      sy += v * (i + 0.5);
      m += v;
    }
  }
  return [sx / m - 14, sy / m - 14];
}

fashionTest(
  "moving fashion-mnist: labels are the main garment's class and velocity bin; its pixels move that way",
  async () => {
    const S = 64, ds = new MovingFashionMnist({ seed: 5, minObjects: 1, maxObjects: 1 });
    const src = await ds.load();
    const classes = new Set<number>(), dirs = new Set<number>();
    let tested = 0, agree = 0;
    for (let i = 0; i < 150; i++) {
      const c = await ds.clip(i), o = c.objects[0];
      assert.equal(c.shape, src.labels[o.image]);
      assert.equal(c.shape, o.label);
      assert.equal(c.direction, directionOf(o.velocity[0], o.velocity[1]));
      classes.add(c.shape);
      dirs.add(c.direction);
      // Every frame: the rendered garment's centroid is the image's centroid carried along the trajectory.
      const [cx, cy] = imageCentroid(src, o.image);
      for (let f = 0; f < ds.frames; f++) {
        const m = centroid(c, f, S);
        const err = Math.hypot(m[0] - (o.x[f] + cx), m[1] - (o.y[f] + cy));
        assert.ok(
          err < 0.1,
          `clip ${i} frame ${f}: centroid ${m} vs trajectory ${o.x[f] + cx},${o.y[f] + cy}`,
        );
      }
      // From the pixels alone: the centroid's displacement over the bounce-free start has the label's direction.
      let k = 0;
      while (
        k + 1 < ds.frames &&
        Math.abs(o.x[k + 1] - o.x[k] - o.velocity[0]) < 1e-9 &&
        Math.abs(o.y[k + 1] - o.y[k] - o.velocity[1]) < 1e-9
      ) k++;
      if (k < 1) continue;
      const p0 = centroid(c, 0, S), pk = centroid(c, k, S);
      tested++;
      if (directionOf(pk[0] - p0[0], pk[1] - p0[1]) === c.direction) agree++;
    }
    assert.equal(classes.size, 10);
    assert.equal(dirs.size, 8);
    assert.ok(tested >= 100, `only ${tested} clips had a bounce-free first step`);
    assert.equal(agree, tested, `direction from pixels agreed with the label in ${agree}/${tested} clips`);
  },
);

/**
 * An independent reference of the renderer at the native size: splats each garment pixel onto the (up to) four
 * frame pixels it overlaps, weighted by the overlap areas; values under 0.5 are transparent.
 */
function reference(d: FashionMnistData, k: number, cx: number, cy: number, S: number): Float64Array {
  const out = new Float64Array(S * S), left = cx - 14, top = cy - 14;
  for (let i = 0; i < 28; i++) {
    for (let j = 0; j < 28; j++) {
      const v = d.images[k * 784 + i * 28 + j], x = left + j, y = top + i;
      const X = Math.floor(x), Y = Math.floor(y), fx = x - X, fy = y - Y;
      out[Y * S + X] += v * (1 - fx) * (1 - fy);
      out[Y * S + X + 1] += v * fx * (1 - fy);
      out[(Y + 1) * S + X] += v * (1 - fx) * fy;
      out[(Y + 1) * S + X + 1] += v * fx * fy;
    }
  }
  return out;
}

/** Largest difference between frame f of a clip (red channel) and a reference rendering. */
function worst(c: FashionClip, f: number, ref: Float64Array, S: number): number {
  let w = 0;
  for (let p = 0; p < S * S; p++) {
    const want = ref[p] < 0.5 ? 0 : Math.round(ref[p]);
    w = Math.max(w, Math.abs(c.data[(f * S * S + p) * 3] - want));
  }
  return w;
}

fashionTest(
  "moving fashion-mnist: train clips show training images, test clips test images (main garment on top)",
  async () => {
    const S = 64, opts = { seed: 9, minObjects: 1, maxObjects: 1 };
    const train = new MovingFashionMnist(opts), test = new MovingFashionMnist({ ...opts, split: "test" });
    const trainData = await train.load(), testData = await test.load();
    for (let i = 0; i < 20; i++) {
      const a = await train.clip(i), b = await test.clip(i);
      assert.notDeepEqual(a.data, b.data);
      assert.notDeepEqual(a.objects[0].x, b.objects[0].x); // independent motion too
      const ob = b.objects[0], oa = a.objects[0];
      assert.ok(ob.image < 10000);
      assert.equal(b.shape, testData.labels[ob.image]);
      for (const f of [0, 7]) {
        assert.ok(worst(b, f, reference(testData, ob.image, ob.x[f], ob.y[f], S), S) <= 1, `test clip ${i}`);
        assert.ok(
          worst(a, f, reference(trainData, oa.image, oa.x[f], oa.y[f], S), S) <= 1,
          `train clip ${i}`,
        );
      }
      // The same index in the other split's images does not match.
      assert.ok(worst(b, 0, reference(trainData, ob.image, ob.x[0], ob.y[0], S), S) > 20);
    }
    // Two garments: wherever the main one is visible, its own pixels are shown.
    const two = new MovingFashionMnist({ seed: 3, minObjects: 2, maxObjects: 2, split: "test" });
    for (let i = 0; i < 10; i++) {
      const c = await two.clip(i), o = c.objects[0];
      for (const f of [0, 15]) {
        const ref = reference(testData, o.image, o.x[f], o.y[f], S);
        for (let p = 0; p < S * S; p++) {
          if (ref[p] >= 1) assert.ok(Math.abs(c.data[(f * S * S + p) * 3] - Math.round(ref[p])) <= 1);
        }
      }
    }
  },
);

fashionTest(
  "moving fashion-mnist: rebuilt from its spec in the prefetch worker; batches upload; config",
  async () => {
    const ds = new MovingFashionMnist({ seed: 4, frames: 8, size: 48 });
    const spec = ds.spec();
    assert.equal(spec.kind, "moving_fashion_mnist");
    const rebuilt = datasetFromSpec(structuredClone(spec));
    assert.deepEqual((await rebuilt.batch([1, 2])).data, (await ds.batch([1, 2])).data);
    using direct = new DirectLoader(ds, { batchSize: 3, seed: 7 });
    using pre = createLoader(ds, { batchSize: 3, seed: 7, prefetch: 2 });
    for (let i = 0; i < 3; i++) {
      const a = await direct.next(), b = await pre.next();
      assert.deepEqual(b.data, a.data);
      assert.deepEqual(b.labels, a.labels);
    }
    const batch = await ds.batch([0, 1]);
    noLeak(() => {
      using x = batchToTensor(batch);
      assert.deepEqual(x.shape, [2, 3, 8, 48, 48]);
    });
    const cfg = parseConfig({ data: { source: "fashion", size: 64, frames: 4 } });
    const made = await makeDataset(cfg);
    assert.ok(made instanceof MovingFashionMnist);
    assert.deepEqual([made.frames, made.height, made.split], [4, 64, "train"]);
  },
);

// ---------------------------------------------------------------- errors (no real files needed)

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

function idx(magic: number, dims: number[], data: Uint8Array | number): Uint8Array {
  const n = typeof data === "number" ? data : data.length;
  const out = new Uint8Array(4 + 4 * dims.length + n);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d));
  if (typeof data !== "number") out.set(data, 4 + 4 * dims.length);
  return out;
}

Deno.test("fashion-mnist: missing, corrupt or truncated IDX files give clear errors", async () => {
  const dir = await tempDir("fashion_bad_");
  try {
    const f = FASHION_MNIST_FILES.test, imgPath = `${dir}/${f.images}`, labPath = `${dir}/${f.labels}`;
    const put = async (path: string, bytes: Uint8Array, compress = true) =>
      await Deno.writeFile(path, compress ? await gzip(bytes) : bytes);
    const goodImages = idx(IDX_IMAGES_MAGIC, [10000, 28, 28], 10000 * 784);
    const goodLabels = idx(IDX_LABELS_MAGIC, [10000], new Uint8Array(10000).map((_, i) => i % 10));
    const fails = (re: RegExp) => assert.rejects(loadFashionMnist("test", dir), re);

    await fails(
      /t10k-images-idx3-ubyte\.gz was not found; install it with `apt-get install dataset-fashion-mnist`/,
    );
    await assert.rejects(
      ensureFashionMnist({ dir, install: false }),
      /t10k-images-idx3-ubyte\.gz.* missing from .*fashion_bad_.*apt-get install dataset-fashion-mnist/,
    );
    await put(labPath, goodLabels);
    await put(imgPath, goodLabels); // a labels file where the images belong
    await fails(/t10k-images.*magic number 0x00000801, expected 0x00000803/);
    await put(imgPath, new TextEncoder().encode("not an idx file"));
    await fails(/t10k-images.*magic number 0x6e6f7420, expected 0x00000803/);
    await put(imgPath, idx(IDX_IMAGES_MAGIC, [10000, 28, 28], new Uint8Array(1000)));
    await fails(
      /truncated IDX file: the header promises 10000×28×28 = 7840000 bytes of data, the file holds 1000/,
    );
    await put(imgPath, idx(IDX_IMAGES_MAGIC, [10000], 0)); // the header stops after one of three dims
    await fails(/truncated IDX header/);
    await put(imgPath, new Uint8Array([...goodImages, 1, 2]));
    await fails(/2 unexpected bytes after the 10000×28×28 values/);
    await put(imgPath, idx(IDX_IMAGES_MAGIC, [100, 32, 32], 100 * 1024));
    await fails(/holds 32×32 images, expected 28×28/);
    await put(imgPath, idx(IDX_IMAGES_MAGIC, [100, 28, 28], 100 * 784));
    await fails(/holds 100 images, the test split has 10000/);
    const gz = await gzip(goodImages);
    await put(imgPath, gz.subarray(0, gz.length >> 1), false); // a gzip stream cut short
    await fails(/t10k-images-idx3-ubyte\.gz is not a valid gzip file, it is corrupt or truncated/);
    await put(imgPath, new TextEncoder().encode("plain text, not gzip"), false);
    await fails(/is not a valid gzip file/);
    await put(imgPath, goodImages);
    await put(labPath, idx(IDX_LABELS_MAGIC, [9999], new Uint8Array(9999)));
    await fails(/t10k-labels.*holds 9999 labels, the test split has 10000/);
    const bad = goodLabels.slice();
    bad[8 + 1234] = 10;
    await put(labPath, bad);
    await fails(/t10k-labels-idx1-ubyte\.gz: label 10 at index 1234 is out of range 0\.\.9/);
    await put(labPath, goodLabels); // now valid: decodes (and the dataset draws from it)
    const d = await loadFashionMnist("test", dir);
    assert.equal(d.count, 10000);
    const ds = new MovingFashionMnist({ split: "test", dir, frames: 2 });
    assert.equal((await ds.batch([0])).data.every((v) => v === 0), true); // all-black images
    assert.throws(() => parseIdx(new Uint8Array(2), "x"), /x: truncated IDX file: 2 bytes/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fashion-mnist: LAYERLOCK_FASHION_MNIST names the folder, and is never installed into", async () => {
  await ensureFashionMnist({ log: () => {} });
  const dir = await tempDir("fashion_env_");
  const saved = Deno.env.get("LAYERLOCK_FASHION_MNIST");
  try {
    Deno.env.set("LAYERLOCK_FASHION_MNIST", dir);
    assert.equal(fashionMnistDir(), dir);
    // empty folder: a clear error naming it and the variable, without trying apt-get
    await assert.rejects(
      ensureFashionMnist({ log: () => assert.fail("must not try to install") }),
      (e: Error) =>
        e.message.includes(`missing from ${dir}`) && e.message.includes("LAYERLOCK_FASHION_MNIST"),
    );
    // a copy of the official files there: the datasets read it by default
    for (const f of Object.values(FASHION_MNIST_FILES)) {
      for (const name of [f.images, f.labels]) {
        await Deno.copyFile(`${FASHION_MNIST_DIR}/${name}`, `${dir}/${name}`);
      }
    }
    assert.equal(await ensureFashionMnist({ install: false }), dir);
    const fromEnv = await loadFashionMnist("test");
    const fromDefault = await loadFashionMnist("test", FASHION_MNIST_DIR);
    assert.notEqual(fromEnv, fromDefault, "decoded from the other folder, not the cache of the default one");
    assert.deepEqual(fromEnv.labels, fromDefault.labels);
    Deno.env.set("LAYERLOCK_FASHION_MNIST", "");
    assert.equal(fashionMnistDir(), FASHION_MNIST_DIR, "an empty variable means the default");
  } finally {
    if (saved === undefined) Deno.env.delete("LAYERLOCK_FASHION_MNIST");
    else Deno.env.set("LAYERLOCK_FASHION_MNIST", saved);
    await Deno.remove(dir, { recursive: true });
  }
});

fashionTest(
  "moving fashion-mnist: the val split holds out the last training images; train, val and test clips share none",
  async () => {
    const opts = { frames: 2, size: 32, minObjects: 2, maxObjects: 2 };
    const train = new MovingFashionMnist({ ...opts, split: "train", seed: 1 });
    const val = new MovingFashionMnist({ ...opts, split: "val", seed: 2 });
    const test = new MovingFashionMnist({ ...opts, split: "test", seed: 2 });
    assert.deepEqual(train.imageRange, { first: 0, count: 50000 });
    assert.deepEqual(val.imageRange, { first: 50000, count: 10000 });
    assert.deepEqual([train.file, val.file, test.file], ["train", "train", "test"]);
    // clip identity: the (file, image) of every garment of a clip, main garment and distractor
    const ids = async (ds: MovingFashionMnist, n: number) => {
      const s = new Set<string>();
      for (let i = 0; i < n; i++) for (const o of (await ds.clip(i)).objects) s.add(`${ds.file}:${o.image}`);
      return s;
    };
    const [a, b, c] = [await ids(train, 400), await ids(val, 200), await ids(test, 200)];
    for (const k of b) {
      assert.ok(!a.has(k), `val garment ${k} is also a probe-training garment`);
      assert.ok(Number(k.split(":")[1]) >= 50000);
    }
    for (const k of c) assert.ok(!a.has(k) && !b.has(k), `test garment ${k} also in another split`);
    assert.ok(b.size > 300 && a.size > 600, "the garments are many and spread");
    // val clips show the held-out image they name, with its label
    const data = await val.load(), clip = await val.clip(0);
    assert.equal(clip.shape, data.labels[clip.objects[0].image]);
    // the same index and seed in train and val are different clips (separate generator streams)
    const t0 = await new MovingFashionMnist({ ...opts, split: "train", seed: 2 }).clip(0);
    assert.notDeepEqual(t0.objects[0].x, clip.objects[0].x);
    // valImages: 0 gives the whole training file to train (the earlier behaviour) and no val split
    const all = new MovingFashionMnist({ ...opts, valImages: 0 });
    assert.deepEqual(all.imageRange, { first: 0, count: 60000 });
    assert.throws(
      () => new MovingFashionMnist({ ...opts, split: "val", valImages: 0 }),
      /val" needs valImages ≥ 1/,
    );
    assert.throws(
      () => new MovingFashionMnist({ ...opts, valImages: 60000 }),
      /valImages must be an integer/,
    );
  },
);
