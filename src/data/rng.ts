/**
 * A small seedable pseudo-random generator (mulberry32) whose whole state is one 32-bit integer, so it can be
 * saved and restored exactly, and `hash32`, which derives independent seeds from integer keys such as
 * (dataset seed, clip index). Pure TypeScript: no tensors, usable in workers.
 * @module
 */

/** Mixes one 32-bit value into a hash state (murmur3-style round). */
function mix(h: number, k: number): number {
  k = Math.imul(k | 0, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/**
 * A well-mixed unsigned 32-bit hash of a list of integers (each taken modulo 2^32, with its high bits folded
 * in for values above 2^32). Used to seed per-item generators: `new Rng(hash32(seed, index))`.
 */
export function hash32(...keys: number[]): number {
  let h = 0x9747b28c ^ keys.length;
  for (const key of keys) {
    h = mix(h, key >>> 0);
    const hi = Math.floor(key / 4294967296);
    if (hi !== 0) h = mix(h, hi >>> 0);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** mulberry32: a fast 32-bit generator with a 2^32 period; its state is one integer (`state`/`setState`). */
export class Rng {
  #s: number;

  /** A generator seeded with `seed` (any number; taken modulo 2^32). */
  constructor(seed = 0) {
    this.#s = seed >>> 0;
  }

  /** The full generator state, to be passed to `setState` to resume the exact sequence. */
  state(): number {
    return this.#s >>> 0;
  }

  /** Restores a state returned by `state()`. */
  setState(s: number): void {
    this.#s = s >>> 0;
  }

  /** The next unsigned 32-bit integer. */
  nextU32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float uniform in [0, 1). */
  float(): number {
    return this.nextU32() / 4294967296;
  }

  /** A float uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** An integer uniform in [0, n) (n ≤ 2^32). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** A standard normal sample (Box–Muller; uses two draws). */
  normal(): number {
    const u = 1 - this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float());
  }
}
