/**
 * Element types and devices, and their codes in the shim (c10::ScalarType, c10::DeviceType: `enum ll_dtype` and
 * `enum ll_device_type` of native/ll.h, generated into ffi/symbols.ts).
 * @module
 */
import { DEVICE_TYPE, DTYPE } from "../../ffi/symbols.ts";
import { TorchError } from "../errors.ts";

/** The element types the binding supports. */
export type DType = "u8" | "i32" | "i64" | "f16" | "f32" | "f64" | "bool" | "bf16";

/** A device: `"cpu"`, `"cuda"` (the current CUDA device) or `"cuda:N"`. */
export type Device = "cpu" | "cuda" | `cuda:${number}`;

const CODES: Record<DType, number> = DTYPE;
const BY_CODE = new Map<number, DType>(Object.entries(CODES).map(([k, v]) => [v, k as DType]));

/** Bytes per element of each dtype. */
export const ELEMENT_SIZE: Record<DType, number> = {
  u8: 1,
  i32: 4,
  i64: 8,
  f16: 2,
  f32: 4,
  f64: 8,
  bool: 1,
  bf16: 2,
};

/** Whether a dtype is a floating-point type. */
export function isFloating(d: DType): boolean {
  return d === "f16" || d === "f32" || d === "f64" || d === "bf16";
}

/** The shim's code for a dtype; throws a TorchError (op `dtype`) naming the bad value. */
export function dtypeCode(d: DType): number {
  const c = Object.hasOwn(CODES, d) ? CODES[d] : undefined;
  if (c === undefined) {
    throw new TorchError(
      "dtype",
      `unknown dtype '${String(d)}'; expected one of ${Object.keys(CODES).join(", ")}`,
    );
  }
  return c;
}

/** The dtype of a shim code. */
export function dtypeOf(code: number): DType {
  const d = BY_CODE.get(code);
  if (d === undefined) throw new TorchError("dtype", `the shim returned an unsupported dtype code ${code}`);
  return d;
}

/** Splits a device string into the shim's (type, index) pair; throws a TorchError naming the bad value. */
export function deviceCodes(d: Device): [number, number] {
  if (d === "cpu") return [DEVICE_TYPE.cpu, -1];
  if (d === "cuda") return [DEVICE_TYPE.cuda, -1];
  const m = typeof d === "string" ? d.match(/^cuda:(\d+)$/) : null;
  if (m) return [DEVICE_TYPE.cuda, Number(m[1])];
  throw new TorchError("device", `unknown device '${String(d)}'; expected "cpu", "cuda" or "cuda:N"`);
}

/** The device string of a shim (type, index) pair. */
export function deviceOf(type: number, index: number): Device {
  if (type === DEVICE_TYPE.cpu) return "cpu";
  if (type === DEVICE_TYPE.cuda) return index < 0 ? "cuda" : `cuda:${index}`;
  throw new TorchError("device", `the shim returned an unsupported device type ${type}`);
}

/** The typed array that holds a dtype's elements when copied to the host (f16/bf16 are widened to f32). */
export type HostArray<D extends DType = DType> = D extends "f64" ? Float64Array
  : D extends "i32" ? Int32Array
  : D extends "i64" ? BigInt64Array
  : D extends "u8" | "bool" ? Uint8Array
  : Float32Array;

/** The dtype a typed array's elements have. */
export function dtypeOfArray(a: ArrayBufferView): DType {
  if (a instanceof Float32Array) return "f32";
  if (a instanceof Float64Array) return "f64";
  if (a instanceof Int32Array) return "i32";
  if (a instanceof BigInt64Array) return "i64";
  if (a instanceof Uint8Array) return "u8";
  throw new TorchError(
    "tensor",
    `unsupported typed array ${a.constructor.name}; use Float32Array, Float64Array, ` +
      "Int32Array, BigInt64Array or Uint8Array",
  );
}
