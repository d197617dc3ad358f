/**
 * Tensor factories mirroring PyTorch's: from host data, constants, ranges, random.
 * @module
 */
import { lib } from "../../ffi/lib.ts";
import { checkHandle } from "../../ffi/check.ts";
import { TorchError } from "../errors.ts";
import { type Device, deviceCodes, type DType, dtypeCode, dtypeOfArray, ELEMENT_SIZE } from "./dtype.ts";
import { dimsArg, Tensor } from "./tensor.ts";

/** Options shared by the factories. */
export interface FactoryOptions {
  /** Element type (default f32, or the typed array's type in `tensor`). */
  dtype?: DType;
  /** Device (default cpu). */
  device?: Device;
  /** Make the result a leaf that requires grad. */
  requiresGrad?: boolean;
}

/** Nested arrays of numbers or booleans, as accepted by `tensor`. */
export type NestedArray = number | boolean | readonly NestedArray[];

function finish(h: number, op: string, o: FactoryOptions): Tensor {
  const t = new Tensor(checkHandle(h, op));
  if (o.requiresGrad) t.requiresGrad_(true);
  return t;
}

function dev(o: FactoryOptions): [number, number] {
  return deviceCodes(o.device ?? "cpu");
}

function flattenNested(data: NestedArray, op: string): { flat: (number | boolean)[]; shape: number[] } {
  const shape: number[] = [];
  let probe: NestedArray = data;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0] as NestedArray;
    if (probe === undefined) break;
  }
  const flat: (number | boolean)[] = [];
  const walk = (x: NestedArray, d: number) => {
    if (d === shape.length) {
      if (Array.isArray(x)) throw new TorchError(op, "ragged nested array (inconsistent depth)");
      if (typeof x !== "number" && typeof x !== "boolean") {
        throw new TorchError(op, `unsupported element ${String(x)}; expected numbers or booleans`);
      }
      flat.push(x as number | boolean);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[d]) {
      throw new TorchError(op, `ragged nested array: expected length ${shape[d]} at depth ${d}`);
    }
    for (const v of x) walk(v, d + 1);
  };
  walk(data, 0);
  return { flat, shape };
}

function hostArray(flat: (number | boolean)[], dtype: DType): ArrayBufferView {
  switch (dtype) {
    case "f64":
      return Float64Array.from(flat, Number);
    case "i32":
      return Int32Array.from(flat, Number);
    case "i64":
      return BigInt64Array.from(flat, (v) => BigInt(Math.trunc(Number(v))));
    case "u8":
    case "bool":
      return Uint8Array.from(flat, (v) => dtype === "bool" ? (v ? 1 : 0) : Number(v));
    case "f32":
      return Float32Array.from(flat, Number);
    default:
      return Float32Array.from(flat, Number);
  }
}

/**
 * A tensor holding a copy of `data`: a typed array (with `shape`, default 1-d) or nested arrays of numbers
 * (default dtype f32) or booleans (default bool). f16/bf16 are built from f32 data.
 */
export function tensor(
  data: ArrayBufferView | NestedArray,
  opts: FactoryOptions & { shape?: readonly number[] } = {},
): Tensor {
  let host: ArrayBufferView;
  let shape: readonly number[];
  let dtype: DType;
  if (ArrayBuffer.isView(data)) {
    host = data;
    const hostType = dtypeOfArray(data);
    const n = data.byteLength / ELEMENT_SIZE[hostType];
    shape = opts.shape ?? [n];
    const want = shape.reduce((a, b) => a * b, 1);
    if (want !== n) {
      throw new TorchError(
        "tensor",
        `shape [${shape.join(", ")}] holds ${want} elements but the data has ${n}`,
      );
    }
    dtype = opts.dtype === "bool" && hostType === "u8" ? "bool" : hostType;
    // Bytes become bool storage as they are: anything but 0/1 must be normalised (nonzero is true).
    if (dtype === "bool" && (data as Uint8Array).some((v) => v > 1)) {
      host = Uint8Array.from(data as Uint8Array, (v) => (v ? 1 : 0));
    }
  } else {
    const { flat, shape: s } = flattenNested(data, "tensor");
    shape = opts.shape ?? s;
    if (shape.reduce((a, b) => a * b, 1) !== flat.length) {
      throw new TorchError("tensor", `shape [${shape.join(", ")}] does not match ${flat.length} elements`);
    }
    dtype = opts.dtype ?? (typeof flat[0] === "boolean" ? "bool" : "f32");
    const hostType: DType = dtype === "f16" || dtype === "bf16" ? "f32" : dtype;
    host = hostArray(flat, hostType);
    dtype = hostType;
  }
  const u8 = new Uint8Array(host.buffer, host.byteOffset, host.byteLength);
  const [dt, di] = dev(opts);
  const h = lib.ll_from_data(u8, dimsArg(shape, "tensor"), shape.length, dtypeCode(dtype), dt, di);
  let t = finish(h, "tensor", {});
  if (opts.dtype !== undefined && opts.dtype !== dtype) {
    const converted = t.to({ dtype: opts.dtype });
    t.dispose();
    t = converted;
  }
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

/**
 * A tensor holding a copy of raw element bytes in row-major order, in the host's (little-endian) layout:
 * f16/bf16 as their 16-bit patterns, bool as one byte each (nonzero is true). `bytes` must hold exactly
 * numel × element size bytes. The inverse of `Tensor.toBytes`.
 */
export function tensorFromBytes(
  bytes: Uint8Array,
  shape: readonly number[],
  dtype: DType,
  opts: { device?: Device } = {},
): Tensor {
  const op = "tensorFromBytes";
  if (!(bytes instanceof Uint8Array)) throw new TorchError(op, "bytes must be a Uint8Array");
  const code = dtypeCode(dtype);
  let numel = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new TorchError(op, `shape must be non-negative integers, got [${shape.join(", ")}]`);
    }
    numel *= d;
  }
  const need = numel * ELEMENT_SIZE[dtype];
  if (need !== bytes.byteLength) {
    throw new TorchError(
      op,
      `shape [${shape.join(", ")}] of ${dtype} needs ${need} bytes (${numel} elements × ${
        ELEMENT_SIZE[dtype]
      }) ` +
        `but got ${bytes.byteLength}`,
    );
  }
  // bool storage must hold 0/1 only: normalise other bytes (nonzero is true).
  const data = dtype === "bool" && bytes.some((v) => v > 1)
    ? Uint8Array.from(bytes, (v) => (v ? 1 : 0))
    : bytes;
  const [dt, di] = deviceCodes(opts.device ?? "cpu");
  return finish(lib.ll_from_data(data, dimsArg(shape, op), shape.length, code, dt, di), op, {});
}

/** A tensor of zeros. */
export function zeros(shape: readonly number[], opts: FactoryOptions = {}): Tensor {
  const [dt, di] = dev(opts);
  return finish(
    lib.ll_zeros(dimsArg(shape, "zeros"), shape.length, dtypeCode(opts.dtype ?? "f32"), dt, di),
    "zeros",
    opts,
  );
}
/** A tensor of ones. */
export function ones(shape: readonly number[], opts: FactoryOptions = {}): Tensor {
  const [dt, di] = dev(opts);
  return finish(
    lib.ll_ones(dimsArg(shape, "ones"), shape.length, dtypeCode(opts.dtype ?? "f32"), dt, di),
    "ones",
    opts,
  );
}
/** An uninitialised tensor. */
export function empty(shape: readonly number[], opts: FactoryOptions = {}): Tensor {
  const [dt, di] = dev(opts);
  return finish(
    lib.ll_empty(dimsArg(shape, "empty"), shape.length, dtypeCode(opts.dtype ?? "f32"), dt, di),
    "empty",
    opts,
  );
}
/** A tensor filled with `value`. */
export function full(shape: readonly number[], value: number, opts: FactoryOptions = {}): Tensor {
  const [dt, di] = dev(opts);
  return finish(
    lib.ll_full(dimsArg(shape, "full"), shape.length, value, dtypeCode(opts.dtype ?? "f32"), dt, di),
    "full",
    opts,
  );
}
/** Values start, start+step, ... below end (default dtype i64, as PyTorch for integer arguments). */
export function arange(start: number, end?: number, step = 1, opts: FactoryOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  const ints = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  const [dt, di] = dev(opts);
  return finish(
    lib.ll_arange(start, end, step, dtypeCode(opts.dtype ?? (ints ? "i64" : "f32")), dt, di),
    "arange",
    opts,
  );
}
/** An n × m identity matrix (m defaults to n). */
export function eye(n: number, m = n, opts: FactoryOptions = {}): Tensor {
  const [dt, di] = dev(opts);
  return finish(lib.ll_eye(n, m, dtypeCode(opts.dtype ?? "f32"), dt, di), "eye", opts);
}
/** Samples of U(0, 1). */
export function rand(shape: readonly number[], opts: FactoryOptions = {}): Tensor {
  const [dt, di] = dev(opts);
  return finish(
    lib.ll_rand(dimsArg(shape, "rand"), shape.length, dtypeCode(opts.dtype ?? "f32"), dt, di),
    "rand",
    opts,
  );
}
/** Samples of N(0, 1). */
export function randn(shape: readonly number[], opts: FactoryOptions = {}): Tensor {
  const [dt, di] = dev(opts);
  return finish(
    lib.ll_randn(dimsArg(shape, "randn"), shape.length, dtypeCode(opts.dtype ?? "f32"), dt, di),
    "randn",
    opts,
  );
}
/** Integers uniform in [low, high) (default dtype i64). */
export function randint(
  low: number,
  high: number,
  shape: readonly number[],
  opts: FactoryOptions = {},
): Tensor {
  const [dt, di] = dev(opts);
  return finish(
    lib.ll_randint(
      low,
      high,
      dimsArg(shape, "randint"),
      shape.length,
      dtypeCode(opts.dtype ?? "i64"),
      dt,
      di,
    ),
    "randint",
    opts,
  );
}
/** A random permutation of 0..n-1 (default dtype i64). */
export function randperm(n: number, opts: FactoryOptions = {}): Tensor {
  const [dt, di] = dev(opts);
  return finish(lib.ll_randperm(n, dtypeCode(opts.dtype ?? "i64"), dt, di), "randperm", opts);
}
/** Zeros with the shape, dtype and device of `t`. */
export function zerosLike(t: Tensor): Tensor {
  return new Tensor(checkHandle(lib.ll_zeros_like(t.handle), "zerosLike"));
}
/** Ones with the shape, dtype and device of `t`. */
export function onesLike(t: Tensor): Tensor {
  return new Tensor(checkHandle(lib.ll_ones_like(t.handle), "onesLike"));
}
