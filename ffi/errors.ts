/**
 * The one error type of the binding, and the checks that turn the shim's failure codes into it.
 * @module
 */
import { lib, readString } from "./lib.ts";

/** An error from libtorch or from the binding, naming the operation that failed. */
export class TorchError extends Error {
  /** The operation that failed, e.g. `matmul`. */
  readonly op: string;
  /** Builds an error for `op` with the given message. */
  constructor(op: string, message: string) {
    super(message.startsWith(`${op}:`) ? message : `${op}: ${message}`);
    this.name = "TorchError";
    this.op = op;
  }
}

/** Reads the message of the shim's last failure on this thread. */
export function lastError(): string {
  return readString(lib.ll_last_error);
}

/** Throws the shim's last error as a TorchError for `op`, stripping the shim's own op prefix. */
export function fail(op: string): never {
  const msg = lastError();
  const m = msg.match(/^([a-z_0-9]+): ([\s\S]*)$/);
  throw new TorchError(op, m ? m[2] : msg || "failed");
}

/** Returns a handle, or throws the shim's error when it is 0 (failure). */
export function checkHandle(h: number, op: string): number {
  if (h === 0) fail(op);
  return h;
}

/** Returns a status code, or throws the shim's error when it is negative (failure). */
export function checkStatus(rc: number, op: string): number {
  if (rc < 0) fail(op);
  return rc;
}
