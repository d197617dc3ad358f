/**
 * Graph-captured training steps: one CUDA graph per schedule stage. A stage's first `warmup` steps run eagerly
 * (on the graph's side stream), the next is captured and replayed, and every later step of the stage is one
 * replay; when the stage changes (a new frozen depth or target) the graph and its memory pool are freed and the
 * cycle starts again, so a LayerLock run holds one graph at a time and captures at most `maxFrozen + 1` of them.
 *
 * The step handed to `run` must be capturable: device work only, no host read, inputs read from buffers that
 * the caller refills in place before each call, outputs written into buffers made beforehand. Host values the
 * step uses are those of its capture: the caller passes a new key when one of them changes.
 *
 * Two backends: `cudaBackend` (CUDA graphs), and `emulatedBackend`, which keeps the captured step as a closure
 * and re-runs it on each replay with the host values of its capture — the graph path's bookkeeping, testable on a
 * CPU: a step that reads a host value that changes within a stage gives different results from the eager loop.
 * @module
 */
import { TorchError } from "../errors.ts";
import { batchNormalization, type ClipBatch } from "../data/clip.ts";
import { normalizationTensors } from "../data/clip_tensor.ts";
import { zeros } from "../torch/creation.ts";
import type { Device } from "../torch/dtype.ts";
import { CudaGraph } from "../torch/cuda_graph.ts";
import { hostReads, hostWrites } from "../torch/runtime.ts";
import type { Tensor } from "../torch/tensor.ts";

/** One stage's graph: warm-up runs, one capture, replays. */
export interface StageGraph {
  /** Runs `fn` eagerly (CUDA: on the graph's side stream). */
  warmup(fn: () => void): void;
  /** Captures `fn` (CUDA: records its device work, runs none of it; emulated: keeps it). */
  capture(fn: () => void): void;
  /** Runs the captured step once. */
  replay(): void;
  /** Frees the graph (and, CUDA, its memory pool). */
  dispose(): void;
}

/** Makes the graph of each stage. */
export interface GraphBackend {
  /** "cuda" or "emulated". */
  readonly kind: "cuda" | "emulated";
  /** A new, empty stage graph. */
  create(): StageGraph;
}

/** CUDA graphs on `device`. */
export function cudaBackend(device: Device): GraphBackend {
  return {
    kind: "cuda",
    create(): StageGraph {
      const g = CudaGraph.create(device);
      return {
        warmup: (fn) => g.warmup(fn),
        capture: (fn) => g.capture(fn),
        replay: () => g.replay(),
        dispose: () => g.dispose(),
      };
    },
  };
}

/**
 * The CPU stand-in: a capture keeps the step, a replay re-runs it (see the module documentation) and checks what a
 * real capture would refuse: a replay that reads tensor data on the host (`item`, `toArray`: a synchronisation) or
 * makes a tensor from host memory (a pageable upload) throws a TorchError saying how many. With `failCapture` every
 * capture throws (for tests of the fallback).
 */
export function emulatedBackend(failCapture = false): GraphBackend {
  return {
    kind: "emulated",
    create(): StageGraph {
      let captured: (() => void) | null = null;
      return {
        warmup: (fn) => fn(),
        capture: (fn) => {
          if (failCapture) throw new TorchError("CudaGraph.capture", "capture failed (debug.failCapture)");
          captured = fn;
        },
        replay: () => {
          if (!captured) throw new TorchError("StepGraphs", "replay before capture");
          const reads = hostReads(), writes = hostWrites();
          captured();
          const r = hostReads() - reads, w = hostWrites() - writes;
          if (r > 0 || w > 0) {
            throw new TorchError(
              "StepGraphs",
              `the captured step is not capturable: it read tensor data on the host ${r} time(s) and made ${w} ` +
                "tensor(s) from host memory (a CUDA graph allows neither: keep values on the device, make tensors " +
                "before the capture)",
            );
          }
        },
        dispose: () => {
          captured = null;
        },
      };
    },
  };
}

/** A capture that failed: nothing of its step ran; the caller may run the step eagerly instead. */
export class GraphCaptureError extends TorchError {
  constructor(step: string, cause: unknown) {
    super(
      "graphs",
      `capturing the CUDA graph of ${step} failed: ${cause instanceof Error ? cause.message : cause}`,
      {
        cause,
      },
    );
  }
}

/** How `StepGraphs.run` ran a step. */
export type GraphRun = "warmup" | "capture" | "replay";

/** Counts of what the step graphs did (for logs and tests). */
export interface GraphStats {
  /** Steps run eagerly as warm-ups. */
  warmups: number;
  /** Graphs captured (each also replayed once, for the step it was captured at). */
  captures: number;
  /** Steps replayed from a graph (captures included). */
  replays: number;
  /** Graphs freed. */
  released: number;
}

/** The graph of the current stage of a run, re-captured when the stage changes. */
export class StepGraphs {
  readonly backend: GraphBackend;
  /** Eager steps at the start of each stage before the capture (at least 1: lazy state is made then). */
  readonly warmup: number;
  readonly stats: GraphStats = { warmups: 0, captures: 0, replays: 0, released: 0 };
  #key: string | null = null;
  #graph: StageGraph | null = null;
  #captured = false;
  #warmed = 0;

  constructor(backend: GraphBackend, warmup: number) {
    if (!(Number.isInteger(warmup) && warmup >= 1)) {
      throw new TorchError("StepGraphs", `warmup must be an integer >= 1, got ${warmup}`);
    }
    this.backend = backend;
    this.warmup = warmup;
  }

  /** The key of the stage whose graph is held (null: none). */
  get key(): string | null {
    return this.#key;
  }

  /**
   * Runs one step of stage `key`: a warm-up, the capture (then its replay), or a replay. A new key frees the old
   * stage's graph first. `step` is called afresh for warm-ups and the capture; a replay ignores it. A failed
   * capture frees the graph and throws: nothing of that step ran, and the caller may run it eagerly.
   */
  run(key: string, step: () => void): GraphRun {
    if (key !== this.#key) {
      this.invalidate();
      this.#key = key;
    }
    if (this.#graph === null) this.#graph = this.backend.create();
    const g = this.#graph;
    if (this.#captured) {
      g.replay();
      this.stats.replays++;
      return "replay";
    }
    if (this.#warmed < this.warmup) {
      g.warmup(step);
      this.#warmed++;
      this.stats.warmups++;
      return "warmup";
    }
    try {
      g.capture(step);
    } catch (e) {
      this.invalidate();
      throw new GraphCaptureError(`stage ${key}`, e);
    }
    this.#captured = true;
    this.stats.captures++;
    g.replay();
    this.stats.replays++;
    return "capture";
  }

  /** Frees the held graph; the next `run` warms up and captures again (after a rollback, for instance). */
  invalidate(): void {
    if (this.#graph !== null) {
      const g = this.#graph;
      this.#graph = null;
      g.dispose();
      this.stats.released++;
    }
    this.#key = null;
    this.#captured = false;
    this.#warmed = 0;
  }

  /** Frees the held graph. */
  dispose(): void {
    this.invalidate();
  }
}

/**
 * The input of every training step (and the static input of a graph-captured one): the batch's uint8 pixels on the
 * device, refilled in place each step (`copyFromHost`: on CUDA the host does not wait for the device), and its
 * normalisation as tensors made once. `key` changes when a batch of another shape or normalisation arrives (new
 * buffers then, and so a new capture).
 */
export class StaticInput {
  readonly #device: Device;
  #u8: Tensor | null = null;
  #affine: { scale: Tensor; shift: Tensor } | null = null;
  #key = "";

  constructor(device: Device) {
    this.#device = device;
  }

  /** Copies `b`'s pixels into the buffer (made, or remade, to fit) and returns the buffers and their key. */
  fill(b: ClipBatch): { u8: Tensor; affine: { scale: Tensor; shift: Tensor }; key: string } {
    const norm = batchNormalization(b);
    const key = `${b.batch}x${b.frames}x${b.height}x${b.width}|${norm.mean.join(",")}|${norm.std.join(",")}`;
    if (key !== this.#key || this.#u8 === null) {
      this.dispose();
      this.#u8 = zeros([b.batch, b.frames, b.height, b.width, 3], { dtype: "u8", device: this.#device });
      this.#affine = normalizationTensors(norm, this.#device);
      this.#key = key;
    }
    this.#u8.copyFromHost(b.data); // CUDA: no wait for the replays still queued
    return { u8: this.#u8, affine: this.#affine!, key };
  }

  /** Frees the buffers. */
  dispose(): void {
    this.#u8?.dispose();
    this.#affine?.scale.dispose();
    this.#affine?.shift.dispose();
    this.#u8 = this.#affine = null;
    this.#key = "";
  }
}
