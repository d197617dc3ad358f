/**
 * The prefetch worker: rebuilds the dataset from its description, runs the sampler, and produces batches ahead
 * of the training step, posting each with its buffers transferred (no copy). It starts a batch only against a
 * credit from the main thread (`ahead` at start, one more per batch consumed), so at most `ahead` batches are
 * ever in flight (the memory bound: `ahead` batches of pixels); batches in flight are made concurrently and
 * posted in order. Pure TypeScript: it must never load the FFI shim (only `import type` from tensor modules).
 * @module
 */
import type { ClipBatch } from "./clip.ts";
import type { ClipDataset, DatasetSpec } from "./dataset.ts";
import { datasetFromSpec } from "./registry.ts";
import type { BatchSampler, Shard } from "./sampler.ts";

/** Main thread → worker: start producing. */
export interface InitMessage {
  /** Message tag. */
  type: "init";
  /** The dataset to rebuild. */
  dataset: DatasetSpec;
  /** Clips per batch. */
  batchSize: number;
  /** Sampler seed. */
  seed: number;
  /** Sampler state to resume from (undefined: the start). */
  state?: number[];
  /** This rank's share of each global batch (undefined: the whole batch). */
  shard?: Shard;
  /** Batches to produce before waiting for credit. */
  ahead: number;
}

/** Main thread → worker: `n` more batches may be produced. */
export interface MoreMessage {
  /** Message tag. */
  type: "more";
  /** Additional credit. */
  n: number;
}

/** Worker → main thread: a produced batch. */
export interface BatchMessage {
  /** Message tag. */
  type: "batch";
  /** The batch (its buffers were transferred). */
  batch: ClipBatch;
  /** The indices the batch holds. */
  indices: number[];
  /** The sampler state after this batch: the state to save once it is consumed. */
  stateAfter: number[];
}

/** Worker → main thread: production failed; the loader reports it from `next()`. */
export interface ErrorMessage {
  /** Message tag. */
  type: "error";
  /** The error's message (with its stack when there is one). */
  message: string;
}

interface WorkerScope {
  onmessage: ((e: MessageEvent<InitMessage | MoreMessage>) => void) | null;
  postMessage(m: BatchMessage | ErrorMessage, transfer?: Transferable[]): void;
}
const port = self as unknown as WorkerScope;

let dataset: ClipDataset | null = null;
let sampler: BatchSampler | null = null;
let credit = 0;
let failed = false;
/** Batches started and not yet posted, in sampler order: several decode at once, they are posted in order. */
let tail: Promise<void> = Promise.resolve();

function fail(e: unknown): void {
  if (failed) return;
  failed = true;
  port.postMessage({ type: "error", message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
}

// Starts one batch per unit of credit at once (a dataset that decodes, e.g. a video folder, overlaps them up to
// its own limit of clips at a time); each is posted, with its buffers transferred, after the one before it.
function pump(): void {
  if (failed || dataset === null || sampler === null) return;
  while (credit > 0) {
    credit--;
    const { indices, epochs } = sampler.nextWithEpochs();
    const stateAfter = sampler.state();
    let made: Promise<ClipBatch>;
    try {
      made = Promise.resolve(dataset.batch(indices, epochs));
    } catch (e) {
      made = Promise.reject(e);
    }
    made.catch(() => {}); // reported in order, below
    tail = tail.then(async () => {
      if (failed) return;
      try {
        const batch = await made;
        const transfer = new Set<Transferable>([batch.data.buffer as ArrayBuffer]);
        for (const ids of Object.values(batch.labels ?? {})) transfer.add(ids.buffer as ArrayBuffer);
        port.postMessage({ type: "batch", batch, indices, stateAfter }, [...transfer]);
      } catch (e) {
        fail(e);
      }
    });
  }
}

port.onmessage = (e) => {
  const m = e.data;
  try {
    if (m.type === "init") {
      dataset = datasetFromSpec(m.dataset);
      sampler = dataset.sampler(m.batchSize, m.seed, m.state, m.shard);
      credit += m.ahead;
    } else {
      credit += m.n;
    }
  } catch (err) {
    fail(err);
    return;
  }
  pump();
};
