/**
 * The motion shared by the generated datasets (moving shapes, Moving Fashion-MNIST): an object's heading, its
 * bouncing trajectory, and the 8-bin direction label of a velocity; plus the HSV colours both draw with. Pure.
 * @module
 */
import type { Rng } from "./rng.ts";

/** The direction bin (0..7, counter-clockwise from east with north up) of a velocity (x right, y down). */
export function directionOf(vx: number, vy: number): number {
  const a = Math.atan2(-vy, vx);
  return ((Math.round(a / (Math.PI / 4)) % 8) + 8) % 8;
}

/**
 * The heading of an object: the main object's is one of the 8 compass directions (its label) jittered by up to
 * ±π/16, so the label is unambiguous; any other's is uniform. Returns the angle (counter-clockwise from east)
 * and, for the main object, its direction bin.
 */
export function heading(rng: Rng, main: boolean): { angle: number; direction: number | null } {
  if (!main) return { angle: rng.uniform(0, 2 * Math.PI), direction: null };
  const direction = rng.int(8);
  return { angle: direction * Math.PI / 4 + rng.uniform(-0.5, 0.5) * Math.PI / 8, direction };
}

/**
 * The positions over `frames` frames of an object that starts uniformly in [lo, hi]² (drawn from `rng`) and moves
 * by (vx, vy) per frame, reflecting off the borders of that range.
 */
export function bounce(
  rng: Rng,
  frames: number,
  lo: number,
  hi: number,
  vx: number,
  vy: number,
): { x: Float64Array; y: Float64Array } {
  const xs = new Float64Array(frames), ys = new Float64Array(frames);
  let px = rng.uniform(lo, hi), py = rng.uniform(lo, hi);
  for (let f = 0; f < frames; f++) {
    xs[f] = px;
    ys[f] = py;
    px += vx;
    py += vy;
    // Reflect off the borders (repeatedly, in case a step overshoots the whole range).
    for (let it = 0; it < 4 && (px < lo || px > hi); it++) {
      px = px < lo ? 2 * lo - px : 2 * hi - px;
      vx = -vx;
    }
    for (let it = 0; it < 4 && (py < lo || py > hi); it++) {
      py = py < lo ? 2 * lo - py : 2 * hi - py;
      vy = -vy;
    }
    px = Math.min(hi, Math.max(lo, px));
    py = Math.min(hi, Math.max(lo, py));
  }
  return { x: xs, y: ys };
}

/** An RGB colour (0..255) from hue, saturation and value in [0, 1]. */
export function hsv(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number) => {
    const k = (n + h * 6) % 6;
    return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}
