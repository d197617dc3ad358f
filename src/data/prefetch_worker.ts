/**
 * The prefetch worker: rebuilds the dataset from its description, runs the sampler, and produces batches ahead
 * of the training step, posting each with its buffers transferred (no copy). It produces a batch only against a
 * credit from the main thread (`ahead` at start, one more per batch consumed), so at most `ahead` batches are
 * ever in flight. Pure TypeScript: it must never load the FFI shim (only `import type` from tensor modules).
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
let busy = false;
let failed = false;

async function pump(): Promise<void> {
  if (busy || failed || dataset === null || sampler === null) return;
  busy = true;
  try {
    while (credit > 0) {
      credit--;
      const indices = sampler.next();
      const batch = await dataset.batch(indices);
      const transfer: Transferable[] = [batch.data.buffer as ArrayBuffer];
      if (batch.labels !== null) {
        transfer.push(batch.labels.shape.buffer as ArrayBuffer, batch.labels.direction.buffer as ArrayBuffer);
      }
      port.postMessage({ type: "batch", batch, indices, stateAfter: sampler.state() }, transfer);
    }
  } catch (e) {
    failed = true;
    port.postMessage({ type: "error", message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  } finally {
    busy = false;
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
    failed = true;
    port.postMessage({
      type: "error",
      message: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
    return;
  }
  void pump();
};
