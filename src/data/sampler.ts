/**
 * `BatchSampler`: an infinite, deterministic sequence of index batches over a dataset of `length` items, whose
 * position can be saved and restored exactly. Each epoch visits every index once, in an order given by a keyed
 * bijection of [0, length) (a 4-round Feistel network with cycle-walking), so the sampler holds no permutation
 * table and its state is just a position: any length up to 2^32 costs O(1) memory. Pure TypeScript.
 * @module
 */
import { hash32 } from "./rng.ts";
import { ConfigError, DataError } from "../errors.ts";

/** Largest dataset length a sampler accepts (the Feistel domain is at most 32 bits). */
export const MAX_SAMPLER_LENGTH = 2 ** 32;

/**
 * The image of `i` under a keyed pseudo-random permutation of [0, n) (n ≤ 2^32): the same (n, key) always gives
 * the same permutation, and distinct `i` give distinct results.
 */
export function permuteIndex(i: number, n: number, key: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_SAMPLER_LENGTH) {
    throw new ConfigError("permuteIndex", `permuteIndex: n must be an integer in [1, 2^32], got ${n}`);
  }
  if (!Number.isInteger(i) || i < 0 || i >= n) {
    throw new ConfigError("permuteIndex", `permuteIndex: index ${i} not in [0, ${n})`);
  }
  if (n === 1) return 0;
  const bits = n === MAX_SAMPLER_LENGTH ? 32 : 32 - Math.clz32(n - 1);
  const half = Math.max(1, Math.ceil(bits / 2)); // a balanced network over 2^(2·half) ≥ n, at most 4n
  const mask = half === 16 ? 0xffff : (1 << half) - 1;
  const scale = 2 ** half;
  let x = i;
  do {
    let l = Math.floor(x / scale), r = x % scale;
    for (let round = 0; round < 4; round++) {
      const f = (l ^ hash32(r, key, round)) & mask;
      l = r;
      r = f;
    }
    x = l * scale + r;
  } while (x >= n); // cycle-walking: stays a bijection of [0, n)
  return x;
}

/** One rank's share of a data-parallel job: `rank` of `size` processes. */
export interface Shard {
  /** This process's rank, 0 ≤ rank < size. */
  rank: number;
  /** The number of processes. */
  size: number;
}

/**
 * An infinite sequence of batches of indices in [0, length). Epoch e (samples e·length … (e+1)·length − 1)
 * is a permutation of [0, length) keyed by (seed, e). `state()` is `[position, seed, length]`, where position
 * counts the samples already drawn; `setState` restores it (and refuses a state from another seed or length).
 *
 * Sharded (data parallel): every rank runs the same sequence and a global batch is `batchSize × size`
 * consecutive samples, of which rank r takes the r-th `batchSize`; so the ranks' batches are disjoint, together
 * they are exactly what one process with the global batch would draw, and the position (global) resumes on any
 * number of ranks.
 */
export class BatchSampler {
  #pos = 0;
  readonly #shard: Shard;

  /** A sampler over [0, length) yielding `batchSize` indices per `next()`, optionally resumed from `state`. */
  constructor(
    readonly length: number,
    readonly batchSize: number,
    readonly seed = 0,
    state?: readonly number[],
    shard: Shard = { rank: 0, size: 1 },
  ) {
    const { rank, size } = shard;
    if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size) {
      throw new ConfigError("BatchSampler", `BatchSampler: rank ${rank} is not in a world of size ${size}`);
    }
    this.#shard = { rank, size };
    if (!Number.isInteger(length) || length < 1 || length > MAX_SAMPLER_LENGTH) {
      throw new ConfigError(
        "BatchSampler",
        `BatchSampler: length must be an integer in [1, 2^32], got ${length}`,
      );
    }
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new ConfigError(
        "BatchSampler",
        `BatchSampler: batchSize must be a positive integer, got ${batchSize}`,
      );
    }
    if (state !== undefined) this.setState(state);
  }

  /** Samples drawn so far (the global position in the infinite sequence). */
  get position(): number {
    return this.#pos;
  }

  /** The index at global position p (does not move the sampler). */
  indexAt(p: number): number {
    const epoch = Math.floor(p / this.length);
    return permuteIndex(p - epoch * this.length, this.length, hash32(this.seed, epoch));
  }

  /** The next batch of indices (this rank's share of the next global batch). */
  next(): number[] {
    return this.nextWithEpochs().indices;
  }

  /**
   * The next batch of indices and the epoch each was drawn in (datasets that augment key a clip's randomness by
   * its epoch, so every epoch sees new crops of the same clip).
   */
  nextWithEpochs(): { indices: number[]; epochs: number[] } {
    const indices = new Array<number>(this.batchSize), epochs = new Array<number>(this.batchSize);
    const start = this.#pos + this.#shard.rank * this.batchSize;
    for (let k = 0; k < this.batchSize; k++) {
      indices[k] = this.indexAt(start + k);
      epochs[k] = Math.floor((start + k) / this.length);
    }
    this.#pos += this.batchSize * this.#shard.size;
    return { indices, epochs };
  }

  /** The state to resume from: `[position, seed, length]`. */
  state(): number[] {
    return [this.#pos, this.seed, this.length];
  }

  /** Restores a state from `state()`; throws if it belongs to a sampler with another seed or length. */
  setState(s: readonly number[]): void {
    const [pos, seed, length] = s;
    if (!Number.isInteger(pos) || pos < 0) {
      throw new DataError("BatchSampler", `BatchSampler: bad state [${s.join(", ")}]`);
    }
    if (seed !== undefined && seed !== this.seed) {
      throw new ConfigError(
        "BatchSampler",
        `BatchSampler: the state is for seed ${seed}, this sampler has seed ${this.seed}`,
      );
    }
    if (length !== undefined && length !== this.length) {
      throw new ConfigError(
        "BatchSampler",
        `BatchSampler: the state is for a dataset of length ${length}, this one has ${this.length}`,
      );
    }
    this.#pos = pos;
  }
}
