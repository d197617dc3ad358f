/**
 * Where a clip comes from in its video — which source frames, which rectangle of them, mirrored or not — decided
 * as VideoMAE decides it, from a seeded generator so that a clip is a pure function of (seed, clip index, epoch).
 * Pure arithmetic: no decoding, no tensors.
 *
 * Temporal sampling (`frameIndices`):
 * - dense (VideoMAE's Kinetics recipe, `num_segments = 1`): `frames` frames every `stride` source frames from an
 *   offset drawn uniformly in [0, n − frames·stride] (training) or centred / spread evenly over `views` clips
 *   (evaluation); a video shorter than the span starts at 0 and repeats the last frame its stride reaches, as
 *   VideoMAE's loader does;
 * - segments (TSN, VideoMAE's Something-Something recipe): the video is cut into `frames` equal segments and one
 *   frame taken from each, at a random position (training) or the middle (evaluation);
 * - a fixed output rate (`fps`): the stride is the source rate over `fps` (fractional strides are rounded per
 *   frame), so videos of different rates give clips of the same duration.
 *
 * Spatial sampling (`cropBox`):
 * - training: VideoMAE's `GroupMultiScaleCrop(size, [1, .875, .75, .66])` — a crop whose sides are scales of the
 *   short side (each side chosen separately, at most one scale step apart), placed at one of 13 fixed positions
 *   (corners, centre, edge midpoints, quarter points), then resized to the output size; and a horizontal flip
 *   with probability ½ (turn it off for direction-sensitive labels such as Something-Something's);
 * - evaluation: resize the short side to cover the output, centre crop, no flip.
 * @module
 */
import { hash32, Rng } from "./rng.ts";
import { ConfigError, DataError } from "../errors.ts";

/** VideoMAE's crop scales, as fractions of the short side. */
export const VIDEOMAE_SCALES: readonly number[] = [1, 0.875, 0.75, 0.66];

/** How frames are chosen in time. */
export interface TemporalOptions {
  /** Frames per clip. */
  frames: number;
  /** Take every stride-th source frame (dense sampling). */
  stride: number;
  /** Dense clips (false, default) or one frame per equal segment (true, TSN). */
  segments?: boolean;
  /** A fixed output frame rate instead of `stride` (dense sampling only). */
  fps?: number | null;
}

/** A clip's source rectangle and mirroring. */
export interface CropBox {
  /** Left edge, in source pixels. */
  x: number;
  /** Top edge, in source pixels. */
  y: number;
  /** Width, in source pixels. */
  w: number;
  /** Height, in source pixels. */
  h: number;
  /** Mirror left-right. */
  flip: boolean;
}

/** The generator of clip `index` in epoch `epoch` of a dataset seeded `seed`. */
export function clipRng(seed: number, index: number, epoch: number): Rng {
  return new Rng(hash32(seed, index, epoch, 0x5eed));
}

/**
 * The source frame indices of a clip of a video with `n` frames at `srcFps`: non-decreasing, in [0, n). With
 * `rng`, training sampling (random offset or random frame per segment); without, evaluation sampling of view
 * `view` of `views` (offsets spread evenly; one view is the centred clip).
 */
export function frameIndices(
  n: number,
  srcFps: number,
  o: TemporalOptions,
  rng: Rng | null,
  view = 0,
  views = 1,
): number[] {
  if (!Number.isInteger(n) || n < 1) {
    throw new DataError("frameIndices", `frameIndices: frame count must be ≥ 1, got ${n}`);
  }
  if (!Number.isInteger(o.frames) || o.frames < 1) {
    throw new ConfigError("frameIndices", "frameIndices: frames must be ≥ 1");
  }
  if (!Number.isInteger(views) || views < 1 || !Number.isInteger(view) || view < 0 || view >= views) {
    throw new ConfigError("frameIndices", `frameIndices: view ${view} of ${views}`);
  }
  const T = o.frames;
  if (o.segments) {
    const seg = n / T;
    return Array.from({ length: T }, (_, i) => {
      const within = rng ? rng.float() * seg : seg / 2;
      return Math.min(n - 1, Math.floor(i * seg + within));
    });
  }
  const step = o.fps ? srcFps / o.fps : o.stride;
  if (!(step > 0)) throw new ConfigError("frameIndices", `frameIndices: step must be > 0, got ${step}`);
  // As VideoMAE: the clip covers T·step source frames from its offset, so the offset has n − T·step + 1
  // choices; a video shorter than that starts at 0 and repeats the last frame its stride reaches.
  const room = Math.max(0, n - Math.round(T * step));
  const offset = rng
    ? rng.int(room + 1)
    : views === 1
    ? Math.floor(room / 2)
    : Math.round(view * room / (views - 1));
  const last = offset + Math.round(Math.floor((n - 1 - offset) / step) * step);
  return Array.from({ length: T }, (_, i) => {
    const f = offset + Math.round(i * step);
    return f <= n - 1 ? f : Math.min(n - 1, last);
  });
}

/** Options of `cropBox`. */
export interface CropOptions {
  /** Output width and height in pixels (the crop is resized to them). */
  width: number;
  /** Output height in pixels. */
  height: number;
  /** Crop sides as fractions of the source's short side (default VideoMAE's [1, .875, .75, .66]). */
  scales?: readonly number[];
  /** How many scale steps apart the two sides may be (default 1, as VideoMAE). */
  maxDistort?: number;
  /** Mirror with probability ½ in training (default true). */
  flip?: boolean;
}

/**
 * The crop of a W×H source frame: with `rng`, VideoMAE's multi-scale crop at a fixed-grid position and a random
 * flip; without, the centred crop of the output's aspect ratio that a short-side resize and centre crop take.
 * Left and top edges are even (chroma planes of 4:2:0 video are then cut on their own pixel grid).
 */
export function cropBox(W: number, H: number, o: CropOptions, rng: Rng | null): CropBox {
  if (!(W >= 2 && H >= 2)) {
    throw new DataError("cropBox", `cropBox: source must be at least 2×2, got ${W}×${H}`);
  }
  if (!rng) {
    const scale = Math.max(o.width / W, o.height / H);
    const w = Math.min(W, Math.round(o.width / scale)), h = Math.min(H, Math.round(o.height / scale));
    return { x: even((W - w) / 2), y: even((H - h) / 2), w, h, flip: false };
  }
  const scales = o.scales ?? VIDEOMAE_SCALES, maxDistort = o.maxDistort ?? 1;
  if (scales.length === 0 || scales.some((s) => !(s > 0 && s <= 1))) {
    throw new ConfigError("cropBox", `cropBox: scales must be in (0, 1], got [${scales.join(", ")}]`);
  }
  const base = Math.min(W, H);
  const sizes = scales.map((s) => Math.max(1, Math.floor(base * s)));
  // As VideoMAE: a side within 3 pixels of the output's is snapped to it.
  const ch = sizes.map((x) => (Math.abs(x - o.height) < 3 ? o.height : x));
  const cw = sizes.map((x) => (Math.abs(x - o.width) < 3 ? o.width : x));
  const pairs: [number, number][] = [];
  for (let i = 0; i < ch.length; i++) {
    for (let j = 0; j < cw.length; j++) {
      if (Math.abs(i - j) <= maxDistort) pairs.push([Math.min(W, cw[j]), Math.min(H, ch[i])]);
    }
  }
  const [w, h] = pairs[rng.int(pairs.length)];
  const grid = fixedOffsets(W, H, w, h);
  const [x, y] = grid[rng.int(grid.length)];
  const flip = (o.flip ?? true) && rng.float() < 0.5;
  return { x: even(x), y: even(y), w, h, flip };
}

/** VideoMAE's 13 crop positions (`more_fix_crop`): corners, centre, edge midpoints and quarter points. */
export function fixedOffsets(W: number, H: number, w: number, h: number): [number, number][] {
  const ws = Math.floor((W - w) / 4), hs = Math.floor((H - h) / 4);
  return [
    [0, 0],
    [4 * ws, 0],
    [0, 4 * hs],
    [4 * ws, 4 * hs],
    [2 * ws, 2 * hs],
    [0, 2 * hs],
    [4 * ws, 2 * hs],
    [2 * ws, 4 * hs],
    [2 * ws, 0],
    [ws, hs],
    [3 * ws, hs],
    [ws, 3 * hs],
    [3 * ws, 3 * hs],
  ];
}

function even(v: number): number {
  return 2 * Math.floor(Math.max(0, v) / 2);
}
