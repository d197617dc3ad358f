/**
 * `CudaGraph`: a captured sequence of CUDA work, replayed with one launch (torch.cuda.CUDAGraph). Owned
 * explicitly: `dispose` frees the graph and its private memory pool. Only a CUDA build of the shim can make
 * one; elsewhere `CudaGraph.create` throws a TorchError that says so.
 *
 * What a capture needs of its callback (as in PyTorch): no host synchronisation (no `item`, no `toArray`), the
 * same shapes on every replay, inputs read from tensors that outlive the graph and are refilled in place before
 * each replay, and every tensor that must survive (outputs, optimiser state) made before the capture.
 * @module
 */
import { lib } from "../../ffi/lib.ts";
import { checkStatus } from "../../ffi/check.ts";
import { TorchError } from "../errors.ts";
import { type Device, deviceCodes } from "./dtype.ts";
import { refuseAsync } from "./scope.ts";

const ID = new Int32Array(1);
const LIVE = new Float64Array(1);

/** The number of CUDA graphs not yet disposed. */
export function liveGraphs(): number {
  checkStatus(lib.ll_graph_live(LIVE), "liveGraphs");
  return LIVE[0];
}

/** A CUDA graph on one device: warm up, capture once, replay many times, dispose. */
export class CudaGraph {
  #id: number;
  #captured = false;

  private constructor(id: number) {
    this.#id = id;
  }

  /** A new, empty graph on `device` (a CUDA device). */
  static create(device: Device): CudaGraph {
    const [type, index] = deviceCodes(device);
    if (type !== deviceCodes("cuda")[0]) {
      throw new TorchError("CudaGraph", `CUDA graphs need a CUDA device, got ${device}`);
    }
    checkStatus(lib.ll_graph_new(Math.max(0, index), ID), "CudaGraph");
    return new CudaGraph(ID[0]);
  }

  /** Whether `capture` has succeeded. */
  get captured(): boolean {
    return this.#captured;
  }

  /** Runs `fn` eagerly on the graph's side stream (the warm-up PyTorch asks for before a capture). */
  warmup<T>(fn: () => T): T {
    refuseAsync("CudaGraph.warmup", fn);
    checkStatus(lib.ll_graph_warmup_begin(this.#live("warmup")), "CudaGraph.warmup");
    try {
      return fn();
    } finally {
      checkStatus(lib.ll_graph_warmup_end(this.#id), "CudaGraph.warmup");
    }
  }

  /**
   * Records the CUDA work `fn` queues (nothing runs until `replay`). Host work in `fn` runs once, now. A failed
   * capture (an error in `fn`, or CUDA refusing the capture) ends it and throws; the graph cannot be used.
   */
  capture<T>(fn: () => T): T {
    refuseAsync("CudaGraph.capture", fn);
    const id = this.#live("capture");
    if (this.#captured) throw new TorchError("CudaGraph.capture", "the graph has already been captured");
    checkStatus(lib.ll_graph_capture_begin(id), "CudaGraph.capture");
    let r: T;
    try {
      r = fn();
    } catch (e) {
      lib.ll_graph_capture_end(id); // end the capture mode; its own error is the consequence of this one
      throw e;
    }
    checkStatus(lib.ll_graph_capture_end(id), "CudaGraph.capture");
    this.#captured = true;
    return r;
  }

  /** Launches the captured work on the current stream. */
  replay(): void {
    const id = this.#live("replay");
    if (!this.#captured) throw new TorchError("CudaGraph.replay", "the graph has not been captured");
    checkStatus(lib.ll_graph_replay(id), "CudaGraph.replay");
  }

  /** Frees the graph and its memory pool. Safe to call more than once. */
  dispose(): void {
    if (this.#id === 0) return;
    const id = this.#id;
    this.#id = 0;
    checkStatus(lib.ll_graph_free(id), "CudaGraph.dispose");
  }

  /** Frees the graph at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #live(op: string): number {
    if (this.#id === 0) throw new TorchError(`CudaGraph.${op}`, "the graph was disposed");
    return this.#id;
  }
}
