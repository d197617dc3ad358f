/**
 * Moving shapes: the embedded default dataset. Procedurally generated RGB videos of 1..maxObjects flat-coloured
 * shapes (circle, square, triangle, cross; rotated at random, constant per clip) moving with a per-clip constant
 * velocity over a textured background and bouncing off the borders (each shape stays wholly in the frame).
 *
 * Each clip is a pure function of (dataset seed, index): its generator is seeded with `hash32(seed, index)`, so
 * any clip can be regenerated alone, in any order, in any thread. Labels (per clip, of the main object, which is
 * drawn on top of the others so it is never occluded):
 * - `shape`: the class index in `SHAPE_NAMES`;
 * - `direction`: 8 compass bins of the initial velocity's angle, counter-clockwise from east with north up
 *   the image (`DIRECTION_NAMES`: E, NE, N, NW, W, SW, S, SE). The angle is drawn within the central half of a
 *   uniformly chosen bin (±11.25° around its centre), so no label sits on a bin boundary.
 *
 * Backgrounds (`BACKGROUND_NAMES`, one per clip): a linear gradient between two muted colours at a random
 * angle, sinusoidal stripes (random orientation, period and phase), or a checkerboard (random cell size and
 * offset); all static over the clip, with a static per-pixel grain and a small per-frame noise on top. Shapes are
 * saturated and bright, backgrounds muted and darker, so shapes stand out. Pure TypeScript (no tensors).
 * @module
 */
import type { ClipBatch } from "./clip.ts";
import { labelledBatch } from "./labelled_batch.ts";
import type { ClipDataset, DatasetSpec, LabelTasks } from "./dataset.ts";
import { hash32, Rng } from "./rng.ts";
import { BatchSampler, type Shard } from "./sampler.ts";
import { bounce, heading, hsv } from "./motion.ts";
import { ConfigError, DataError } from "../errors.ts";

/** Shape class names, indexed by the `shape` label. */
export const SHAPE_NAMES: readonly string[] = ["circle", "square", "triangle", "cross"];
/** Motion direction names, indexed by the `direction` label (counter-clockwise from east, north up). */
export const DIRECTION_NAMES: readonly string[] = ["E", "NE", "N", "NW", "W", "SW", "S", "SE"];
/** The tasks a moving-shapes batch is labelled with: `shape` (`SHAPE_NAMES`) and `direction` (`DIRECTION_NAMES`). */
export const SHAPES_TASKS: LabelTasks = { shape: SHAPE_NAMES, direction: DIRECTION_NAMES };
/** Background kinds, indexed by `ShapesClip.background`. */
export const BACKGROUND_NAMES: readonly string[] = ["gradient", "stripes", "checker"];

/** Options of `MovingShapes`; all optional. */
export interface MovingShapesOptions {
  /** Frames per clip (default 16). */
  frames?: number;
  /** Frame height and width in pixels (default 32). */
  size?: number;
  /** Dataset seed: which clips the indices name (default 0). */
  seed?: number;
  /** Fewest shapes per clip (default 1). */
  minObjects?: number;
  /** Most shapes per clip (default 2). */
  maxObjects?: number;
  /** Number of distinct clips the samplers draw from, ≤ 2^32 (default 2^31: practically unbounded). */
  length?: number;
  /** Speed range in pixels per frame, as fractions of `size` (default [0.025, 0.06]: 0.8–1.9 px at 32). */
  speed?: readonly [number, number];
  /** Shape radius range as fractions of `size` (default [0.1, 0.18]). */
  radius?: readonly [number, number];
  /** Amplitude of the static per-pixel background grain, in 0..255 units (default 10). */
  grain?: number;
  /** Amplitude of the per-frame background noise, in 0..255 units (default 2). */
  temporalNoise?: number;
  /** Background kinds to draw from (indices into `BACKGROUND_NAMES`; default all). */
  backgrounds?: readonly number[];
}

/** One shape of a clip and its trajectory. */
export interface ShapeTrack {
  /** Class index into `SHAPE_NAMES`. */
  shape: number;
  /** Fill colour (RGB, 0..255). */
  color: [number, number, number];
  /** Radius in pixels (the shape's size parameter; triangles reach 1.2× further). */
  radius: number;
  /** Rotation in radians. */
  rotation: number;
  /** Initial velocity in pixels per frame (x right, y down). */
  velocity: [number, number];
  /** Centre x per frame (pixel units; pixel j covers [j, j+1)). */
  x: Float64Array;
  /** Centre y per frame. */
  y: Float64Array;
}

/** A generated clip with its labels and the generator's ground truth. */
export interface ShapesClip {
  /** Pixels [T, H, W, 3], uint8 RGB. */
  data: Uint8Array;
  /** Shape class of the main object. */
  shape: number;
  /** Direction bin (0..7) of the main object's initial velocity. */
  direction: number;
  /** Background kind (index into `BACKGROUND_NAMES`). */
  background: number;
  /** The shapes; `objects[0]` is the main object (drawn last, on top). */
  objects: ShapeTrack[];
}

// Distance from centre to the farthest point of each shape, in radii (rotation-independent bound).
const EXTENT = [1, 0.8 * Math.SQRT2, 1.2, Math.hypot(0.3, 1)];

// Whether local coordinates (u, v) (v down) fall inside a shape of radius r.
function inside(shape: number, u: number, v: number, r: number): boolean {
  switch (shape) {
    case 0:
      return u * u + v * v <= r * r;
    case 1: {
      const h = 0.8 * r;
      return u <= h && u >= -h && v <= h && v >= -h;
    }
    case 2: {
      // Equilateral, apex up: inradius 0.6r (circumradius 1.2r); outward normals down, up-right, up-left.
      const ir = 0.6 * r;
      return v <= ir && 0.8660254 * u - 0.5 * v <= ir && -0.8660254 * u - 0.5 * v <= ir;
    }
    default: {
      const au = u < 0 ? -u : u, av = v < 0 ? -v : v, w = 0.3 * r;
      return (au <= w && av <= r) || (av <= w && au <= r);
    }
  }
}

interface Resolved {
  frames: number;
  size: number;
  seed: number;
  minObjects: number;
  maxObjects: number;
  length: number;
  speed: [number, number];
  radius: [number, number];
  grain: number;
  temporalNoise: number;
  backgrounds: number[];
}

function resolve(o: MovingShapesOptions): Resolved {
  const r: Resolved = {
    frames: o.frames ?? 16,
    size: o.size ?? 32,
    seed: o.seed ?? 0,
    minObjects: o.minObjects ?? 1,
    maxObjects: o.maxObjects ?? 2,
    length: o.length ?? 2 ** 31,
    speed: [...(o.speed ?? [0.025, 0.06])] as [number, number],
    radius: [...(o.radius ?? [0.1, 0.18])] as [number, number],
    grain: o.grain ?? 10,
    temporalNoise: o.temporalNoise ?? 2,
    backgrounds: [...(o.backgrounds ?? [0, 1, 2])],
  };
  const int = (k: keyof Resolved, min: number) => {
    const v = r[k] as number;
    if (!Number.isInteger(v) || v < min) {
      throw new ConfigError("MovingShapes", `MovingShapes: ${k} must be an integer ≥ ${min}`);
    }
  };
  int("frames", 1);
  int("size", 8);
  int("minObjects", 1);
  int("maxObjects", r.minObjects);
  int("length", 1);
  if (r.length > 2 ** 32) throw new ConfigError("MovingShapes", "MovingShapes: length must be ≤ 2^32");
  if (!(r.radius[0] > 0 && r.radius[0] <= r.radius[1] && r.radius[1] * 1.2 < 0.45)) {
    throw new ConfigError(
      "MovingShapes",
      "MovingShapes: radius must satisfy 0 < lo ≤ hi < 0.375 (fractions of size)",
    );
  }
  if (!(r.speed[0] >= 0 && r.speed[0] <= r.speed[1])) {
    throw new ConfigError("MovingShapes", "MovingShapes: bad speed range");
  }
  if (r.backgrounds.length === 0 || r.backgrounds.some((b) => !(b in BACKGROUND_NAMES))) {
    throw new ConfigError(
      "MovingShapes",
      `MovingShapes: backgrounds must be indices into [${BACKGROUND_NAMES.join(", ")}]`,
    );
  }
  if (!(r.grain >= 0 && r.temporalNoise >= 0)) {
    throw new ConfigError("MovingShapes", "MovingShapes: noise must be ≥ 0");
  }
  return r;
}

/**
 * The moving-shapes dataset: `clip(index)` generates one clip, `batch(indices)` a `ClipBatch`, and
 * `sampler(batchSize, seed)` the deterministic infinite sequence of index batches used for training.
 */
export class MovingShapes implements ClipDataset {
  readonly #o: Resolved;
  // Per-instance scratch: the static background of the clip being drawn.
  readonly #bg: Uint8ClampedArray;

  /** A dataset with the given options (see `MovingShapesOptions` for the defaults). */
  constructor(opts: MovingShapesOptions = {}) {
    this.#o = resolve(opts);
    this.#bg = new Uint8ClampedArray(this.#o.size * this.#o.size * 3);
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
  /** The tasks its batches are labelled with: `shape` and `direction` (`SHAPES_TASKS`). */
  get labelTasks(): LabelTasks {
    return SHAPES_TASKS;
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
  options(): Required<MovingShapesOptions> {
    const o = this.#o;
    return { ...o, speed: [...o.speed], radius: [...o.radius], backgrounds: [...o.backgrounds] };
  }

  /** A serialisable description from which `datasetFromSpec` rebuilds this dataset (e.g. in a worker). */
  spec(): DatasetSpec {
    return { kind: "moving_shapes", options: this.options() };
  }

  /** Generates clip `index` (any integer in [0, 2^53)); the same (seed, index) always gives the same clip. */
  clip(index: number): ShapesClip {
    const data = new Uint8Array(this.clipBytes);
    return { data, ...this.#draw(index, data, 0) };
  }

  /** Generates the clips at `indices` into one batch, with their labels (`shape`, `direction`). */
  batch(indices: readonly number[]): ClipBatch {
    return labelledBatch(indices, this.#o.frames, this.#o.size, (i, out, off) => this.#draw(i, out, off), {
      shape: (c) => c.shape,
      direction: (c) => c.direction,
    });
  }

  /** An infinite deterministic sequence of batches of indices (see `BatchSampler`), optionally resumed. */
  sampler(batchSize: number, seed = 0, state?: readonly number[], shard?: Shard): BatchSampler {
    return new BatchSampler(this.#o.length, batchSize, seed, state, shard);
  }

  // Draws clip `index` into out[offset ...]; returns its labels and ground truth.
  #draw(index: number, out: Uint8Array, offset: number): Omit<ShapesClip, "data"> {
    if (!Number.isInteger(index) || index < 0) {
      throw new DataError("MovingShapes", `MovingShapes: bad clip index ${index}`);
    }
    const o = this.#o, S = o.size, T = o.frames;
    const rng = new Rng(hash32(o.seed, index));

    // Background: two muted colours and a pattern, plus static grain.
    const background = o.backgrounds[rng.int(o.backgrounds.length)];
    const c1 = hsv(rng.float(), rng.uniform(0, 0.6), rng.uniform(0.08, 0.55));
    const c2 = hsv(rng.float(), rng.uniform(0, 0.6), rng.uniform(0.08, 0.55));
    const theta = rng.uniform(0, 2 * Math.PI), ct = Math.cos(theta), st = Math.sin(theta);
    const period = rng.uniform(4, 12) * S / 32, phase = rng.uniform(0, 2 * Math.PI);
    const cell = (3 + rng.int(6)) * S / 32, ox = rng.uniform(0, cell), oy = rng.uniform(0, cell);
    const bg = this.#bg, grain = o.grain;
    const k = 2 * Math.PI / period;
    for (let y = 0, p = 0; y < S; y++) {
      for (let x = 0; x < S; x++, p += 3) {
        let t: number;
        if (background === 0) {
          t = ((x + 0.5 - S / 2) * ct + (y + 0.5 - S / 2) * st) / S + 0.5;
          t = t < 0 ? 0 : t > 1 ? 1 : t;
        } else if (background === 1) {
          t = 0.5 + 0.5 * Math.sin(k * (x * ct + y * st) + phase);
        } else {
          t = (Math.floor((x + ox) / cell) + Math.floor((y + oy) / cell)) & 1;
        }
        const g = grain > 0 ? (rng.float() * 2 - 1) * grain : 0;
        bg[p] = c1[0] + (c2[0] - c1[0]) * t + g;
        bg[p + 1] = c1[1] + (c2[1] - c1[1]) * t + g;
        bg[p + 2] = c1[2] + (c2[2] - c1[2]) * t + g;
      }
    }

    // Shapes: objects[0] is the main one; the others keep their hue at least 60° away from it.
    const count = o.minObjects + rng.int(o.maxObjects - o.minObjects + 1);
    const mainHue = rng.float();
    let direction = 0;
    const objects: ShapeTrack[] = [];
    for (let j = 0; j < count; j++) {
      const shape = rng.int(SHAPE_NAMES.length);
      const hue = j === 0 ? mainHue : (mainHue + rng.uniform(1 / 6, 5 / 6)) % 1;
      const color = hsv(hue, rng.uniform(0.65, 1), rng.uniform(0.75, 1));
      const radius = rng.uniform(o.radius[0], o.radius[1]) * S;
      const rotation = shape === 0 ? 0 : rng.uniform(0, 2 * Math.PI);
      const speed = rng.uniform(o.speed[0], o.speed[1]) * S;
      const h = heading(rng, j === 0);
      if (h.direction !== null) direction = h.direction;
      const vx0 = speed * Math.cos(h.angle), vy0 = -speed * Math.sin(h.angle);
      const ext = EXTENT[shape] * radius;
      const { x, y } = bounce(rng, T, ext, S - ext, vx0, vy0);
      objects.push({ shape, color, radius, rotation, velocity: [vx0, vy0], x, y });
    }

    // Frames: background + per-frame noise, then the shapes, distractors first and the main object last.
    const frameBytes = S * S * 3;
    const clamped = new Uint8ClampedArray(out.buffer, out.byteOffset + offset, T * frameBytes);
    const tn = o.temporalNoise;
    for (let f = 0; f < T; f++) {
      const base = f * frameBytes;
      if (tn > 0) {
        for (let p = 0; p < frameBytes; p += 3) {
          const r = rng.nextU32();
          const scale = tn / 127.5;
          clamped[base + p] = bg[p] + ((r & 255) - 127.5) * scale;
          clamped[base + p + 1] = bg[p + 1] + (((r >>> 8) & 255) - 127.5) * scale;
          clamped[base + p + 2] = bg[p + 2] + (((r >>> 16) & 255) - 127.5) * scale;
        }
      } else {
        clamped.set(bg, base);
      }
      for (let j = count - 1; j >= 0; j--) {
        const ob = objects[j];
        const cx = ob.x[f], cy = ob.y[f], r = ob.radius, e = EXTENT[ob.shape] * r;
        const c = Math.cos(ob.rotation), s = Math.sin(ob.rotation);
        const [R, G, B] = ob.color;
        const x0 = Math.max(0, Math.floor(cx - e)), x1 = Math.min(S - 1, Math.ceil(cx + e));
        const y0 = Math.max(0, Math.floor(cy - e)), y1 = Math.min(S - 1, Math.ceil(cy + e));
        for (let y = y0; y <= y1; y++) {
          const dy = y + 0.5 - cy;
          for (let x = x0; x <= x1; x++) {
            const dx = x + 0.5 - cx;
            if (inside(ob.shape, dx * c + dy * s, -dx * s + dy * c, r)) {
              const q = base + (y * S + x) * 3;
              clamped[q] = R;
              clamped[q + 1] = G;
              clamped[q + 2] = B;
            }
          }
        }
      }
    }
    return { shape: objects[0].shape, direction, background, objects };
  }
}
