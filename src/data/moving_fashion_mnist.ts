/**
 * Moving Fashion-MNIST: Moving MNIST's videos with Zalando's Fashion-MNIST garments instead of digits. Each clip
 * shows one or two 28×28 garments (by default scaled to 7/16 of the frame: native 28×28 at the default 64×64)
 * moving with a constant velocity over a black background and bouncing off the borders (each garment stays
 * wholly in the frame). Garments are drawn at sub-pixel positions (each pixel gets the area-weighted share of
 * the garment pixels that cover it), so motion is smooth and intensity is conserved.
 *
 * Colour: garments are grayscale, replicated to R, G and B (`tint: true` instead multiplies each garment by a
 * random saturated colour). The main garment, `objects[0]`, is drawn last, on top: wherever its pixel rounds to
 * a non-zero value it replaces what is below; its black pixels are transparent.
 *
 * Labels (per clip, of the main garment; `FASHION_TASKS`): `garment` = its Fashion-MNIST class (`FASHION_CLASSES`;
 * a `FashionClip`'s `shape`), `direction` = the 8-bin compass direction of its initial velocity (`directionOf` of
 * motion.ts, `DIRECTION_NAMES`: counter-clockwise from east, north up; the angle is drawn within ±11.25° of a uniformly chosen bin's centre, as for the moving
 * shapes). Three splits, with independent motion (the generator is seeded with `hash32(seed, index, split)`):
 * "train" draws garments from the first 60000 − `valImages` official training images, "val" from the last
 * `valImages` of them (default 10000: images 50000..59999), and "test" from the 10000 official test images.
 * A probe trained on one split and scored on another sees neither the same garments nor the same trajectories,
 * and model choices made on "val" never look at the test images. `valImages: 0` gives the whole training
 * file to "train" (the behaviour before the validation split existed) and leaves no "val" split.
 *
 * The images come from fashion_mnist.ts (Debian's `dataset-fashion-mnist` files, decoded once per process).
 * Pure TypeScript: no tensors.
 * @module
 */
import type { ClipBatch } from "./clip.ts";
import { labelledBatch } from "./labelled_batch.ts";
import type { ClipDataset, DatasetSpec, LabelTasks } from "./dataset.ts";
import {
  ensureFashionMnist,
  type EnsureFashionMnistOptions,
  FASHION_CLASSES,
  FASHION_IMAGE_SIZE,
  FASHION_MNIST_FILES,
  type FashionFile,
  type FashionMnistData,
  fashionMnistDir,
  loadFashionMnist,
} from "./fashion_mnist.ts";
import { bounce, directionOf, heading, hsv } from "./motion.ts";
import { DIRECTION_NAMES } from "./moving_shapes.ts";
import { hash32, Rng } from "./rng.ts";
import { BatchSampler, type Shard } from "./sampler.ts";
import { ConfigError, DataError } from "../errors.ts";

/**
 * Which clips: garments from the training file less the held-out images ("train"), from the held-out training
 * images ("val"), or from the test file ("test").
 */
export type FashionSplit = "train" | "val" | "test";

/** The splits, in the order of their generator keys. */
export const FASHION_SPLITS: readonly FashionSplit[] = ["train", "val", "test"];

/** The tasks a Moving Fashion-MNIST batch is labelled with: `garment` (`FASHION_CLASSES`) and `direction`. */
export const FASHION_TASKS: LabelTasks = { garment: FASHION_CLASSES, direction: DIRECTION_NAMES };

/** Training images held out as the validation split by default (the last 10000 of the training file). */
export const DEFAULT_VAL_IMAGES = 10000;

/** Options of `MovingFashionMnist`; all optional. */
export interface MovingFashionMnistOptions {
  /** Frames per clip (default 16). */
  frames?: number;
  /** Frame height and width in pixels (default 64). */
  size?: number;
  /** Garment height and width in pixels (default round(7·size/16): the native 28 at size 64). */
  garment?: number;
  /** The split the garments come from (default "train"; see the module documentation). */
  split?: FashionSplit;
  /** Training images held out as the "val" split, the last ones of the file (default 10000; 0: none). */
  valImages?: number;
  /** Dataset seed: which clips the indices name (default 0). */
  seed?: number;
  /** Fewest garments per clip (default 1). */
  minObjects?: number;
  /** Most garments per clip (default 2). */
  maxObjects?: number;
  /** Number of distinct clips the samplers draw from, ≤ 2^32 (default 2^31: practically unbounded). */
  length?: number;
  /** Speed range in pixels per frame, as fractions of `size` (default [0.03, 0.06]: 1.9–3.8 px at 64). */
  speed?: readonly [number, number];
  /** Tint each garment with a random saturated colour instead of drawing it gray (default false). */
  tint?: boolean;
  /** Folder of the four gzipped IDX files (default `fashionMnistDir()`). */
  dir?: string;
}

/** One garment of a clip and its trajectory. */
export interface GarmentTrack {
  /** Index of the image in its official file (the training file for "train" and "val"). */
  image: number;
  /** Its Fashion-MNIST class (index into `FASHION_CLASSES`). */
  label: number;
  /** Colour the garment's intensity scales (RGB 0..255; white when `tint` is off). */
  color: [number, number, number];
  /** Initial velocity in pixels per frame (x right, y down). */
  velocity: [number, number];
  /** Garment centre x per frame (pixel units; pixel j covers [j, j+1)). */
  x: Float64Array;
  /** Garment centre y per frame. */
  y: Float64Array;
}

/** A generated clip with its labels and the generator's ground truth. */
export interface FashionClip {
  /** Pixels [T, H, W, 3], uint8 RGB. */
  data: Uint8Array;
  /** Class of the main garment. */
  shape: number;
  /** Direction bin (0..7) of the main garment's initial velocity. */
  direction: number;
  /** The garments; `objects[0]` is the main one (drawn last, on top). */
  objects: GarmentTrack[];
}

interface Resolved {
  frames: number;
  size: number;
  garment: number;
  split: FashionSplit;
  valImages: number;
  seed: number;
  minObjects: number;
  maxObjects: number;
  length: number;
  speed: [number, number];
  tint: boolean;
  dir: string;
}

function resolve(o: MovingFashionMnistOptions): Resolved {
  const size = o.size ?? 64;
  const r: Resolved = {
    frames: o.frames ?? 16,
    size,
    garment: o.garment ?? Math.round(size * 7 / 16),
    split: o.split ?? "train",
    valImages: o.valImages ?? DEFAULT_VAL_IMAGES,
    seed: o.seed ?? 0,
    minObjects: o.minObjects ?? 1,
    maxObjects: o.maxObjects ?? 2,
    length: o.length ?? 2 ** 31,
    speed: [...(o.speed ?? [0.03, 0.06])] as [number, number],
    tint: o.tint ?? false,
    dir: o.dir ?? fashionMnistDir(),
  };
  const int = (k: keyof Resolved, min: number, max = Infinity) => {
    const v = r[k] as number;
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(
        "MovingFashionMnist",
        `MovingFashionMnist: ${k} must be an integer in [${min}, ${max}], got ${v}`,
      );
    }
  };
  int("frames", 1);
  int("size", 8);
  int("garment", 4, r.size - 2);
  int("minObjects", 1);
  int("maxObjects", r.minObjects);
  int("length", 1, 2 ** 32);
  if (!FASHION_SPLITS.includes(r.split)) {
    throw new ConfigError(
      "MovingFashionMnist",
      `MovingFashionMnist: split must be "train", "val" or "test", got '${r.split}'`,
    );
  }
  int("valImages", 0, FASHION_MNIST_FILES.train.count - 1);
  if (r.split === "val" && r.valImages === 0) {
    throw new ConfigError(
      "MovingFashionMnist",
      'MovingFashionMnist: split "val" needs valImages ≥ 1 (held-out training images)',
    );
  }
  if (!(r.speed[0] >= 0 && r.speed[0] <= r.speed[1])) {
    throw new ConfigError("MovingFashionMnist", "MovingFashionMnist: bad speed range");
  }
  return r;
}

// Antialiased linear resampling weights from n to m samples (a triangle filter widened by the shrink factor,
// as PIL's bilinear resize): row o of the result is Σ_k w[o][k] · in[start[o] + k]. Identity when m = n.
function resampleWeights(n: number, m: number): { start: Int32Array; w: Float64Array[] } {
  const scale = n / m, support = Math.max(1, scale);
  const start = new Int32Array(m), w: Float64Array[] = [];
  for (let o = 0; o < m; o++) {
    const c = (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(c - support)), hi = Math.min(n, Math.ceil(c + support));
    const row = new Float64Array(hi - lo);
    let sum = 0;
    for (let k = lo; k < hi; k++) sum += row[k - lo] = Math.max(0, 1 - Math.abs(k + 0.5 - c) / support);
    for (let k = 0; k < row.length; k++) row[k] /= sum;
    start[o] = lo;
    w.push(row);
  }
  return { start, w };
}

/**
 * The Moving Fashion-MNIST dataset (see the module documentation): `clip(index)` generates one clip,
 * `batch(indices)` a labelled `ClipBatch`, and `sampler(batchSize, seed)` the deterministic infinite sequence of
 * index batches used for training. The images are loaded on first use (`load()`); `open` also installs them.
 */
export class MovingFashionMnist implements ClipDataset {
  readonly #o: Resolved;
  readonly #weights: { start: Int32Array; w: Float64Array[] };
  // Per-instance scratch: a garment resampled to garment×garment, and its intermediate rows.
  readonly #sprite: Float64Array;
  readonly #rows: Float64Array;
  #data: FashionMnistData | null = null;

  /**
   * Makes sure the images are installed (`ensureFashionMnist`, with `install` and `log`), then returns the
   * dataset with its split decoded, so a missing or corrupt file is reported here rather than at the first batch.
   */
  static async open(
    opts: MovingFashionMnistOptions = {},
    ensure: Omit<EnsureFashionMnistOptions, "dir"> = {},
  ): Promise<MovingFashionMnist> {
    const ds = new MovingFashionMnist(opts);
    await ensureFashionMnist({ ...ensure, dir: ds.#o.dir });
    await ds.load();
    return ds;
  }

  /** A dataset with the given options (see `MovingFashionMnistOptions`); nothing is read until first use. */
  constructor(opts: MovingFashionMnistOptions = {}) {
    this.#o = resolve(opts);
    const G = this.#o.garment;
    this.#weights = resampleWeights(FASHION_IMAGE_SIZE, G);
    this.#sprite = new Float64Array(G * G);
    this.#rows = new Float64Array(FASHION_IMAGE_SIZE * G);
  }

  /** Frames per clip. */
  get frames(): number {
    return this.#o.frames;
  }
  /** Frame height in pixels. */
  get height(): number {
    return this.#o.size;
  }
  /** Frame width in pixels. */
  get width(): number {
    return this.#o.size;
  }
  /** The tasks its batches are labelled with: `garment` and `direction` (`FASHION_TASKS`). */
  get labelTasks(): LabelTasks {
    return FASHION_TASKS;
  }
  /** Garment height and width in pixels. */
  get garment(): number {
    return this.#o.garment;
  }
  /** The split the garments come from. */
  get split(): FashionSplit {
    return this.#o.split;
  }
  /** The official file the garments come from ("train" for the train and val splits). */
  get file(): FashionFile {
    return this.#o.split === "test" ? "test" : "train";
  }
  /**
   * The images of the official file this split draws from: `[first, first + count)` (for "train" the file less
   * the held-out images, for "val" the held-out ones, for "test" the whole test file).
   */
  get imageRange(): { first: number; count: number } {
    const total = FASHION_MNIST_FILES[this.file].count, held = this.#o.valImages;
    if (this.#o.split === "train") return { first: 0, count: total - held };
    if (this.#o.split === "val") return { first: total - held, count: held };
    return { first: 0, count: total };
  }
  /** The dataset seed. */
  get seed(): number {
    return this.#o.seed;
  }
  /** Number of distinct clips the samplers draw from. */
  get length(): number {
    return this.#o.length;
  }
  /** Bytes of one clip (T·H·W·3). */
  get clipBytes(): number {
    return this.#o.frames * this.#o.size * this.#o.size * 3;
  }

  /** The options with defaults filled in (a description that rebuilds this dataset). */
  options(): Required<MovingFashionMnistOptions> {
    return { ...this.#o, speed: [...this.#o.speed] };
  }

  /** A serialisable description from which `datasetFromSpec` rebuilds this dataset (e.g. in a worker). */
  spec(): DatasetSpec {
    return { kind: "moving_fashion_mnist", options: this.options() };
  }

  /** Decodes this dataset's split (once per process; see `loadFashionMnist`) and returns it. */
  async load(): Promise<FashionMnistData> {
    return this.#data ??= await loadFashionMnist(this.file, this.#o.dir);
  }

  /** Generates clip `index` (any integer in [0, 2^53)); the same (seed, split, index) always gives the same clip. */
  async clip(index: number): Promise<FashionClip> {
    const src = await this.load();
    const data = new Uint8Array(this.clipBytes);
    return { data, ...this.#draw(src, index, data, 0) };
  }

  /** Generates the clips at `indices` into one batch, with their labels (`garment` class, `direction`). */
  async batch(indices: readonly number[]): Promise<ClipBatch> {
    const src = await this.load();
    return labelledBatch(
      indices,
      this.#o.frames,
      this.#o.size,
      (i, out, off) => this.#draw(src, i, out, off),
      { garment: (c) => c.shape, direction: (c) => c.direction },
    );
  }

  /** An infinite deterministic sequence of batches of indices (see `BatchSampler`), optionally resumed. */
  sampler(batchSize: number, seed = 0, state?: readonly number[], shard?: Shard): BatchSampler {
    return new BatchSampler(this.#o.length, batchSize, seed, state, shard);
  }

  // Resamples image `k` of the split to the garment size into #sprite (a plain copy at the native size).
  #resample(src: FashionMnistData, k: number): void {
    const N = FASHION_IMAGE_SIZE, G = this.#o.garment, sprite = this.#sprite;
    const img = src.images.subarray(k * N * N, (k + 1) * N * N);
    if (G === N) {
      for (let i = 0; i < N * N; i++) sprite[i] = img[i];
      return;
    }
    const { start, w } = this.#weights, rows = this.#rows;
    for (let y = 0; y < N; y++) { // horizontal pass: [N, N] -> [N, G]
      for (let x = 0; x < G; x++) {
        const row = w[x], s = y * N + start[x];
        let v = 0;
        for (let t = 0; t < row.length; t++) v += row[t] * img[s + t];
        rows[y * G + x] = v;
      }
    }
    for (let y = 0; y < G; y++) { // vertical pass: [N, G] -> [G, G]
      const row = w[y], s = start[y];
      for (let x = 0; x < G; x++) {
        let v = 0;
        for (let t = 0; t < row.length; t++) v += row[t] * rows[(s + t) * G + x];
        sprite[y * G + x] = v;
      }
    }
  }

  // Draws clip `index` into out[offset ...], which must be zero (black); returns its labels and ground truth.
  #draw(src: FashionMnistData, index: number, out: Uint8Array, offset: number): Omit<FashionClip, "data"> {
    if (!Number.isInteger(index) || index < 0) {
      throw new DataError("MovingFashionMnist", `MovingFashionMnist: bad clip index ${index}`);
    }
    const o = this.#o, S = o.size, T = o.frames, G = o.garment;
    const rng = new Rng(hash32(o.seed, index, FASHION_SPLITS.indexOf(o.split)));
    const range = this.imageRange;

    // Trajectories: the centre stays in [G/2, S − G/2 − 1], so the (G+1)-pixel footprint stays in the frame.
    const count = o.minObjects + rng.int(o.maxObjects - o.minObjects + 1);
    const lo = G / 2, hi = S - G / 2 - 1;
    const objects: GarmentTrack[] = [];
    for (let j = 0; j < count; j++) {
      const image = range.first + rng.int(range.count);
      const hue = rng.float(), sat = rng.uniform(0.5, 1);
      const color: [number, number, number] = o.tint ? hsv(hue, sat, 1) : [255, 255, 255];
      const speed = rng.uniform(o.speed[0], o.speed[1]) * S;
      const { angle } = heading(rng, j === 0);
      const vx0 = speed * Math.cos(angle), vy0 = -speed * Math.sin(angle);
      const { x, y } = bounce(rng, T, lo, hi, vx0, vy0);
      objects.push({ image, label: src.labels[image], color, velocity: [vx0, vy0], x, y });
    }

    // Frames: distractors first, the main garment last. Garment pixel (i, j) covers [left + j, left + j + 1) ×
    // [top + i, top + i + 1); frame pixel (left₀ + j, top₀ + i) (left₀ = ⌊left⌋, fx = left − left₀) receives
    // the area-weighted mix of garment pixels j and j − 1 (and rows i, i − 1), zero outside the garment.
    const sprite = this.#sprite, frameBytes = S * S * 3;
    for (let j = count - 1; j >= 0; j--) {
      const ob = objects[j], [R, Gc, B] = ob.color;
      this.#resample(src, ob.image);
      for (let f = 0; f < T; f++) {
        const left = ob.x[f] - G / 2, top = ob.y[f] - G / 2;
        const x0 = Math.floor(left), y0 = Math.floor(top), fx = left - x0, fy = top - y0;
        const base = offset + f * frameBytes;
        for (let i = 0; i <= G; i++) {
          const r1 = i * G, r0 = (i - 1) * G; // garment rows i (weight 1 − fy) and i − 1 (weight fy)
          let q = base + ((y0 + i) * S + x0) * 3;
          for (let c = 0; c <= G; c++, q += 3) {
            let v = 0;
            if (i < G) {
              if (c < G) v += (1 - fx) * (1 - fy) * sprite[r1 + c];
              if (c > 0) v += fx * (1 - fy) * sprite[r1 + c - 1];
            }
            if (i > 0) {
              if (c < G) v += (1 - fx) * fy * sprite[r0 + c];
              if (c > 0) v += fx * fy * sprite[r0 + c - 1];
            }
            if (v < 0.5) continue; // transparent
            out[q] = Math.round(v * R / 255);
            out[q + 1] = Math.round(v * Gc / 255);
            out[q + 2] = Math.round(v * B / 255);
          }
        }
      }
    }
    const main = objects[0];
    return { shape: main.label, direction: directionOf(main.velocity[0], main.velocity[1]), objects };
  }
}
