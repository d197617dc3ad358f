/**
 * The one place that turns the shim's failure values into a {@link TorchError}: a 0 handle or a negative
 * status means failure, and the message comes from `ll_last_error` on this thread.
 * @module
 */
import { lib, readString } from "./lib.ts";
import { TorchError } from "../src/errors.ts";

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
