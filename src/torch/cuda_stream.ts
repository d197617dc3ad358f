/**
 * `CudaStream`: a second CUDA stream for work that does not depend on what the current stream is doing (the
 * LayerLock target pass beside the encoder's forward). Owned explicitly (`dispose`). `run(fn)` queues `fn`'s work
 * on the stream after everything queued so far on the current one and returns at once; `wait()` makes the current
 * stream wait for it before its results are read. Inside a CUDA-graph capture the two record a fork and a join.
 * Only a CUDA build of the shim can make one.
 * @module
 */
import { lib } from "../../ffi/lib.ts";
import { checkStatus } from "../../ffi/check.ts";
import { TorchError } from "../errors.ts";
import { type Device, deviceCodes } from "./dtype.ts";
import { refuseAsync } from "./scope.ts";

const ID = new Int32Array(1);

/** A CUDA stream from the device's pool, entered for the duration of `run`. */
export class CudaStream {
  #id: number;

  private constructor(id: number) {
    this.#id = id;
  }

  /** A stream on `device` (a CUDA device). */
  static create(device: Device): CudaStream {
    const [type, index] = deviceCodes(device);
    if (type !== deviceCodes("cuda")[0]) {
      throw new TorchError("CudaStream", `CUDA streams need a CUDA device, got ${device}`);
    }
    checkStatus(lib.ll_stream_new(Math.max(0, index), ID), "CudaStream");
    return new CudaStream(ID[0]);
  }

  /** Queues `fn`'s work on this stream (after the current stream's work so far); returns without waiting. */
  run<T>(fn: () => T): T {
    refuseAsync("CudaStream.run", fn);
    checkStatus(lib.ll_stream_enter(this.#live("run")), "CudaStream.run");
    try {
      return fn();
    } finally {
      checkStatus(lib.ll_stream_leave(this.#id), "CudaStream.run");
    }
  }

  /** Makes the current stream wait for the work of the last `run`. */
  wait(): void {
    checkStatus(lib.ll_stream_wait(this.#live("wait")), "CudaStream.wait");
  }

  /** Frees the stream's handle (the pooled stream itself is libtorch's). Safe to call more than once. */
  dispose(): void {
    if (this.#id === 0) return;
    const id = this.#id;
    this.#id = 0;
    checkStatus(lib.ll_stream_free(id), "CudaStream.dispose");
  }

  #live(op: string): number {
    if (this.#id === 0) throw new TorchError(`CudaStream.${op}`, "the stream was disposed");
    return this.#id;
  }
}
