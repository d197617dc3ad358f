/**
 * Loaders: the sequence of training batches of a dataset, `await loader.next()` at a time, with the sampler
 * state of the next batch to be consumed available for checkpoints (`state()`) and accepted back at creation
 * (`state` option) for exact resumption.
 *
 * `PrefetchLoader` prepares the next `prefetch` batches in a Deno Worker (`prefetch_worker.ts`, which rebuilds
 * the dataset from `dataset.spec()` and never loads the FFI shim) and receives them with their buffers
 * transferred, so a training step does not wait for data unless generation is slower than the step.
 * `DirectLoader` produces each batch on the calling thread when asked. Both yield exactly the same batches for
 * the same dataset, batch size, seed and state: the worker runs the same sampler over the same pure generator.
 * @module
 */
import type { ClipBatch } from "./clip.ts";
import type { ClipDataset } from "./dataset.ts";
import type { BatchMessage, ErrorMessage, InitMessage, MoreMessage } from "./prefetch_worker.ts";
import type { BatchSampler, Shard } from "./sampler.ts";
import { ConfigError } from "../errors.ts";

/** Options of `createLoader`. */
export interface LoaderOptions {
  /** Clips per batch. */
  batchSize: number;
  /** Sampler seed: the order of the clips (default 0). */
  seed?: number;
  /** Batches prepared ahead in a worker (default 4); 0 produces batches on the calling thread. */
  prefetch?: number;
  /** A loader's `state()` to resume from (default: the start of the sequence). */
  state?: readonly number[];
  /** This rank's share of each global batch, in data-parallel training (default: the whole batch). */
  shard?: Shard;
}

/** A source of training batches. */
export interface ClipLoader extends Disposable {
  /** Clips per batch. */
  readonly batchSize: number;
  /** The next batch of the sequence. */
  next(): Promise<ClipBatch>;
  /** The sampler state of the next batch to be consumed (pass it as `state` to resume there). */
  state(): number[];
  /** Stops the loader (terminates its worker, if any); pending `next()` calls are rejected. */
  close(): void;
}

/** Batches produced on the calling thread, when asked for. */
export class DirectLoader implements ClipLoader {
  readonly #dataset: ClipDataset;
  readonly #sampler: BatchSampler;
  #closed = false;

  /** A loader over `dataset`; see `LoaderOptions` (`prefetch` is ignored). */
  constructor(dataset: ClipDataset, opts: LoaderOptions) {
    this.#dataset = dataset;
    this.#sampler = dataset.sampler(opts.batchSize, opts.seed ?? 0, opts.state, opts.shard);
  }

  /** Clips per batch. */
  get batchSize(): number {
    return this.#sampler.batchSize;
  }

  /** Generates (or decodes) the next batch. */
  next(): Promise<ClipBatch> {
    if (this.#closed) return Promise.reject(new Error("loader: next() after close()"));
    try {
      const { indices, epochs } = this.#sampler.nextWithEpochs();
      return Promise.resolve(this.#dataset.batch(indices, epochs));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The sampler state of the next batch to be consumed. */
  state(): number[] {
    return this.#sampler.state();
  }

  /** Stops the loader. */
  close(): void {
    this.#closed = true;
  }

  /** Closes the loader at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }
}

interface Waiter {
  resolve(b: ClipBatch): void;
  reject(e: Error): void;
}

/** Batches prepared ahead in a worker. */
export class PrefetchLoader implements ClipLoader {
  readonly #worker: Worker;
  readonly #ready: BatchMessage[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #batchSize: number;
  #state: number[];
  #error: Error | null = null;
  #closed = false;

  /** Starts a worker that prepares up to `opts.prefetch` (default 4) batches of `dataset` ahead. */
  constructor(dataset: ClipDataset, opts: LoaderOptions) {
    const ahead = opts.prefetch ?? 4;
    if (!Number.isInteger(ahead) || ahead < 1) {
      throw new ConfigError("PrefetchLoader", `PrefetchLoader: prefetch must be ≥ 1`);
    }
    // Validates the options and state here, where a mistake is easy to trace, and gives the initial state.
    const sampler = dataset.sampler(opts.batchSize, opts.seed ?? 0, opts.state, opts.shard);
    this.#batchSize = opts.batchSize;
    this.#state = sampler.state();
    this.#worker = new Worker(new URL("./prefetch_worker.ts", import.meta.url).href, { type: "module" });
    this.#worker.onmessage = (e: MessageEvent<BatchMessage | ErrorMessage>) => this.#receive(e.data);
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#fail(new Error(`prefetch worker: ${e.message}`));
    };
    const init: InitMessage = {
      type: "init",
      dataset: dataset.spec(),
      batchSize: opts.batchSize,
      seed: opts.seed ?? 0,
      state: this.#state,
      shard: opts.shard,
      ahead,
    };
    this.#worker.postMessage(init);
  }

  /** Clips per batch. */
  get batchSize(): number {
    return this.#batchSize;
  }

  #receive(m: BatchMessage | ErrorMessage): void {
    if (this.#closed) return;
    if (m.type === "error") {
      this.#fail(new Error(`prefetch worker: ${m.message}`));
      return;
    }
    const w = this.#waiters.shift();
    if (w !== undefined) w.resolve(this.#take(m));
    else this.#ready.push(m);
  }

  #fail(e: Error): void {
    this.#error ??= e;
    for (const w of this.#waiters.splice(0)) w.reject(this.#error);
  }

  // Hands a batch over: it is now consumed, so the state moves past it and the worker may produce another.
  #take(m: BatchMessage): ClipBatch {
    this.#state = m.stateAfter;
    const more: MoreMessage = { type: "more", n: 1 };
    this.#worker.postMessage(more);
    return m.batch;
  }

  /** The next batch: at once if the worker has it ready, else as soon as it is. */
  next(): Promise<ClipBatch> {
    if (this.#closed) return Promise.reject(new Error("loader: next() after close()"));
    const m = this.#ready.shift();
    if (m !== undefined) return Promise.resolve(this.#take(m));
    if (this.#error !== null) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** The sampler state of the next batch to be consumed (batches read ahead but not consumed do not count). */
  state(): number[] {
    return [...this.#state];
  }

  /** Terminates the worker; pending `next()` calls are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate();
    this.#ready.length = 0;
    for (const w of this.#waiters.splice(0)) w.reject(new Error("loader: closed"));
  }

  /** Closes the loader at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A loader over `dataset`: a `PrefetchLoader` (default, 4 batches ahead), or a `DirectLoader` for prefetch 0. */
export function createLoader(dataset: ClipDataset, opts: LoaderOptions): ClipLoader {
  return (opts.prefetch ?? 4) === 0 ? new DirectLoader(dataset, opts) : new PrefetchLoader(dataset, opts);
}
