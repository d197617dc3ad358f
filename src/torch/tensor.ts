/**
 * `Tensor`: an owned handle to a libtorch tensor, with the operations a video ViT and its training need as
 * methods named after PyTorch's (`layer_norm` → `layerNorm`, `requires_grad_` → `requiresGrad_`).
 *
 * Ownership: every Tensor owns one native reference and frees it in `dispose()` (idempotent; also run by
 * `using` and by the enclosing `scope`). Any use after dispose throws a TorchError. Every method that returns
 * a Tensor returns a new one, owned by the caller (or by the current scope).
 * @module
 */
import { lib } from "../../ffi/lib.ts";
import { BINARY_OP, REDUCE_OP, UNARY_OP } from "../../ffi/symbols.ts";
import { checkHandle, checkStatus } from "../../ffi/check.ts";
import { TorchError } from "../errors.ts";
import {
  type Device,
  deviceCodes,
  deviceOf,
  type DType,
  dtypeCode,
  dtypeOf,
  ELEMENT_SIZE,
  type HostArray,
} from "./dtype.ts";
import { type Scope, type ScopeOwned, track } from "./scope.ts";

// Scratch buffers for shape/dims arguments and multi-tensor results (calls are synchronous).
const DIMS = new Float64Array(64);
const OUT = new Int32Array(1024);
const INTS = new Int32Array(2);

/** Writes a list of integers into a scratch buffer for the shim; returns that buffer. */
export function dimsArg(xs: readonly number[], op: string, into: Float64Array = DIMS): Float64Array {
  if (xs.length > into.length) throw new TorchError(op, `too many dimensions (${xs.length})`);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    if (!Number.isInteger(v)) throw new TorchError(op, `dimensions must be integers, got [${xs.join(", ")}]`);
    into[i] = v;
  }
  return into;
}

/** Writes tensor handles into an Int32Array for the shim. */
export function handlesArg(ts: readonly Tensor[], op: string): Int32Array {
  const a = new Int32Array(ts.length);
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i];
    if (!(t instanceof Tensor)) throw new TorchError(op, `element ${i} is not a Tensor`);
    a[i] = t.handle;
  }
  return a;
}

/** Reads `n` result handles from the shared output buffer into new Tensors. */
function takeOut(n: number): Tensor[] {
  const r: Tensor[] = new Array(n);
  for (let i = 0; i < n; i++) r[i] = new Tensor(OUT[i]);
  return r;
}

function dimsOrAll(dim: number | readonly number[] | undefined, op: string): [Float64Array, number] {
  if (dim === undefined) return [DIMS, 0];
  if (typeof dim === "number") {
    DIMS[0] = dim;
    if (!Number.isInteger(dim)) throw new TorchError(op, `dim must be an integer, got ${dim}`);
    return [DIMS, 1];
  }
  if (dim.length === 0) throw new TorchError(op, "an empty dim list is ambiguous; omit dim to reduce all");
  return [dimsArg(dim, op), dim.length];
}

/** A scalar out-parameter of the shim (ll_item, ll_numel). */
const SCALAR = new Float64Array(1);

/** Options of `Tensor.to`. */
export interface ToOptions {
  /** Target dtype (unchanged if omitted). */
  dtype?: DType;
  /** Target device (unchanged if omitted). */
  device?: Device;
  /** Always copy, even when nothing changes. */
  copy?: boolean;
}

/** A libtorch tensor owned by JavaScript. */
export class Tensor implements ScopeOwned {
  #h: number;
  #shape: number[] | null = null;
  /** @internal The scope that owns this tensor (null: owned by the caller or a module). */
  _owner: Scope | null = null;

  /** @internal Wraps a handle the shim returned; use the factory functions instead. */
  constructor(handle: number) {
    this.#h = handle;
    track(this);
  }

  /** The native handle; throws if the tensor was disposed. */
  get handle(): number {
    const h = this.#h;
    if (h === 0) throw new TorchError("tensor", "use of a disposed tensor");
    return h;
  }

  /** Whether `dispose()` has run. */
  get disposed(): boolean {
    return this.#h === 0;
  }

  /** Frees the native tensor now. Safe to call more than once. */
  dispose(): void {
    const h = this.#h;
    if (h !== 0) {
      this.#h = 0;
      checkStatus(lib.ll_free(h), "dispose");
    }
  }

  /** Frees the native tensor at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---------------------------------------------------------------- metadata

  /** The sizes of each dimension. */
  get shape(): number[] {
    const h = this.handle; // checked even when cached: a disposed tensor has no shape
    if (this.#shape === null) {
      const n = checkStatus(lib.ll_sizes(h, DIMS), "shape");
      this.#shape = Array.from(DIMS.subarray(0, n));
    }
    return this.#shape.slice();
  }

  /** The size of one dimension (negative counts from the end). */
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) {
      throw new TorchError("size", `dim ${dim} is out of range for a ${s.length}-d tensor`);
    }
    return s[d];
  }

  /** The number of dimensions. */
  get ndim(): number {
    return checkStatus(lib.ll_dim(this.handle), "ndim");
  }

  /** The number of elements. */
  get numel(): number {
    checkStatus(lib.ll_numel(this.handle, SCALAR), "numel");
    return SCALAR[0];
  }

  /** The strides of each dimension, in elements. */
  get strides(): number[] {
    const n = checkStatus(lib.ll_strides(this.handle, DIMS), "strides");
    return Array.from(DIMS.subarray(0, n));
  }

  /** The element type. */
  get dtype(): DType {
    return dtypeOf(checkStatus(lib.ll_dtype(this.handle), "dtype"));
  }

  /** The device the tensor lives on. */
  get device(): Device {
    checkStatus(lib.ll_device(this.handle, INTS), "device");
    return deviceOf(INTS[0], INTS[1]);
  }

  /** Whether autograd records operations on this tensor. */
  get requiresGrad(): boolean {
    return checkStatus(lib.ll_requires_grad(this.handle), "requiresGrad") === 1;
  }

  /** Sets `requiresGrad` in place, returning this (PyTorch's `requires_grad_`; only a leaf can unset it). */
  requiresGrad_(flag = true): this {
    checkStatus(lib.ll_set_requires_grad(this.handle, flag ? 1 : 0), "requiresGrad_");
    return this;
  }

  /** Whether the tensor is a leaf of the autograd graph. */
  get isLeaf(): boolean {
    return checkStatus(lib.ll_is_leaf(this.handle), "isLeaf") === 1;
  }

  /** Whether the tensor was produced by a recorded operation (has a grad_fn). */
  get hasGradFn(): boolean {
    return checkStatus(lib.ll_grad_fn_defined(this.handle), "gradFn") === 1;
  }

  /** Whether the memory layout is contiguous. */
  isContiguous(): boolean {
    return checkStatus(lib.ll_is_contiguous(this.handle), "isContiguous") === 1;
  }

  // ---------------------------------------------------------------- data out

  /** Copies the elements to a new host typed array, in row-major order (f16/bf16 are widened to f32). */
  toArray(): HostArray {
    const dt = this.dtype;
    if (dt === "f16" || dt === "bf16") {
      using f = this.to({ dtype: "f32" });
      return f.toArray();
    }
    const n = this.numel;
    const out = dt === "f64"
      ? new Float64Array(n)
      : dt === "i32"
      ? new Int32Array(n)
      : dt === "i64"
      ? new BigInt64Array(n)
      : dt === "u8" || dt === "bool"
      ? new Uint8Array(n)
      : new Float32Array(n);
    checkStatus(
      lib.ll_copy_to_buffer(this.handle, new Uint8Array(out.buffer), n * ELEMENT_SIZE[dt]),
      "toArray",
    );
    return out;
  }

  /**
   * The raw bytes of the elements in row-major order, in the host's (little-endian) layout: 2 bytes per
   * element for f16/bf16 (their bit patterns, not widened), 1 byte (0 or 1) per bool. Non-contiguous and CUDA
   * tensors are copied to a contiguous CPU layout first. The inverse of `tensorFromBytes`.
   */
  toBytes(): Uint8Array {
    const n = this.numel * ELEMENT_SIZE[this.dtype];
    const out = new Uint8Array(n);
    checkStatus(lib.ll_copy_to_buffer(this.handle, out, n), "toBytes");
    return out;
  }

  /**
   * Copies host bytes (exactly this tensor's size, row-major, the layout of `toBytes`) into this contiguous tensor,
   * in place. On CUDA the copy goes through pinned staging memory asynchronously on the current stream: the host
   * does not wait for the work already queued on the device (a `tensor(...)` upload from pageable memory would).
   */
  copyFromHost(data: ArrayBufferView): this {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    checkStatus(lib.ll_copy_from_buffer(this.handle, bytes, bytes.byteLength), "copyFromHost");
    return this;
  }

  /** The elements as a plain (nested) JavaScript array; i64 values become numbers. */
  toList(): unknown {
    const flat = Array.from(this.toArray() as ArrayLike<number | bigint>, (v) => Number(v));
    const shape = this.shape;
    if (shape.length === 0) return flat[0];
    const build = (d: number, off: number): unknown => {
      const stride = shape.slice(d + 1).reduce((a, b) => a * b, 1);
      return Array.from(
        { length: shape[d] },
        (_, i) => d === shape.length - 1 ? flat[off + i] : build(d + 1, off + i * stride),
      );
    };
    return build(0, 0);
  }

  /** The value of a one-element tensor as a number. */
  item(): number {
    checkStatus(lib.ll_item(this.handle, SCALAR), "item");
    return SCALAR[0];
  }

  /** A short description: shape, dtype, device. */
  toString(): string {
    if (this.#h === 0) return "Tensor(disposed)";
    return `Tensor(shape=[${this.shape.join(", ")}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---------------------------------------------------------------- conversion

  /** Converts dtype and/or device (a dtype or device string, or options). Returns a new tensor. */
  to(target: DType | Device | ToOptions): Tensor {
    const o: ToOptions = typeof target === "string"
      ? (target === "cpu" || target.startsWith("cuda")
        ? { device: target as Device }
        : { dtype: target as DType })
      : target;
    const dt = o.dtype === undefined ? -1 : dtypeCode(o.dtype);
    const [dv, di] = o.device === undefined ? [-1, -1] : deviceCodes(o.device);
    return new Tensor(checkHandle(lib.ll_to(this.handle, dt, dv, di, o.copy ? 1 : 0), "to"));
  }
  /** Converts to f32. */
  float(): Tensor {
    return this.to({ dtype: "f32" });
  }
  /** Converts to f64. */
  double(): Tensor {
    return this.to({ dtype: "f64" });
  }
  /** Converts to f16. */
  half(): Tensor {
    return this.to({ dtype: "f16" });
  }
  /** Converts to bf16. */
  bfloat16(): Tensor {
    return this.to({ dtype: "bf16" });
  }
  /** Converts to i64. */
  long(): Tensor {
    return this.to({ dtype: "i64" });
  }
  /** Converts to bool. */
  bool(): Tensor {
    return this.to({ dtype: "bool" });
  }
  /** Moves to the CPU. */
  cpu(): Tensor {
    return this.to({ device: "cpu" });
  }
  /** Moves to a CUDA device. */
  cuda(index?: number): Tensor {
    return this.to({ device: index === undefined ? "cuda" : `cuda:${index}` });
  }
  /** A copy with its own storage (records autograd history like PyTorch's clone). */
  clone(): Tensor {
    return new Tensor(checkHandle(lib.ll_clone(this.handle), "clone"));
  }
  /** A new handle to the same tensor (shares storage and autograd identity). */
  alias(): Tensor {
    return new Tensor(checkHandle(lib.ll_shallow_clone(this.handle), "alias"));
  }
  /** A view that shares storage but is cut from the autograd graph. */
  detach(): Tensor {
    return new Tensor(checkHandle(lib.ll_detach(this.handle), "detach"));
  }

  // ---------------------------------------------------------------- views and indexing

  /** Reshapes (a view when possible, a copy otherwise); one dimension may be -1. */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(
      checkHandle(lib.ll_reshape(this.handle, dimsArg(shape, "reshape"), shape.length), "reshape"),
    );
  }
  /** A view with a new shape; fails if the memory layout does not allow it. */
  view(shape: readonly number[]): Tensor {
    return new Tensor(checkHandle(lib.ll_view(this.handle, dimsArg(shape, "view"), shape.length), "view"));
  }
  /** Reorders dimensions. */
  permute(dims: readonly number[]): Tensor {
    return new Tensor(
      checkHandle(lib.ll_permute(this.handle, dimsArg(dims, "permute"), dims.length), "permute"),
    );
  }
  /** Swaps two dimensions. */
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(checkHandle(lib.ll_transpose(this.handle, dim0, dim1), "transpose"));
  }
  /** A contiguous tensor with the same values (this tensor's storage when already contiguous). */
  contiguous(): Tensor {
    return new Tensor(checkHandle(lib.ll_contiguous(this.handle), "contiguous"));
  }
  /** Flattens dimensions start..end (inclusive) into one. */
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(checkHandle(lib.ll_flatten(this.handle, startDim, endDim), "flatten"));
  }
  /** Inserts a dimension of size 1. */
  unsqueeze(dim: number): Tensor {
    return new Tensor(checkHandle(lib.ll_unsqueeze(this.handle, dim), "unsqueeze"));
  }
  /** Removes a dimension of size 1 (all of them when dim is omitted). */
  squeeze(dim?: number): Tensor {
    return new Tensor(
      checkHandle(lib.ll_squeeze(this.handle, dim ?? 0, dim === undefined ? 1 : 0), "squeeze"),
    );
  }
  /** Broadcasts to a larger shape without copying (-1 keeps a size). */
  expand(shape: readonly number[]): Tensor {
    return new Tensor(
      checkHandle(lib.ll_expand(this.handle, dimsArg(shape, "expand"), shape.length), "expand"),
    );
  }
  /** The slice [start, start+length) along dim (a view). */
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(checkHandle(lib.ll_narrow(this.handle, dim, start, length), "narrow"));
  }
  /** The slice at `index` along dim, with that dimension removed (a view). */
  select(dim: number, index: number): Tensor {
    return new Tensor(checkHandle(lib.ll_select(this.handle, dim, index), "select"));
  }
  /** Splits into pieces of `size` along dim (the last may be smaller). */
  split(size: number, dim = 0): Tensor[] {
    const n = checkStatus(lib.ll_split(this.handle, size, dim, OUT, OUT.length), "split");
    return takeOut(n);
  }
  /** Splits into `chunks` nearly equal pieces along dim. */
  chunk(chunks: number, dim = 0): Tensor[] {
    const n = checkStatus(lib.ll_chunk(this.handle, chunks, dim, OUT, OUT.length), "chunk");
    return takeOut(n);
  }
  /** Picks entries along dim by an i64/i32 index vector. */
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(checkHandle(lib.ll_index_select(this.handle, dim, index.handle), "indexSelect"));
  }
  /** Gathers values along dim at the positions in `index` (same number of dimensions). */
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(checkHandle(lib.ll_gather(this.handle, dim, index.handle), "gather"));
  }
  /** A copy with `src` values written along dim at the positions in `index`. */
  scatter(dim: number, index: Tensor, src: Tensor): Tensor {
    return new Tensor(checkHandle(lib.ll_scatter(this.handle, dim, index.handle, src.handle), "scatter"));
  }
  /** A copy with `value` where `mask` (bool, broadcastable) is true. */
  maskedFill(mask: Tensor, value: number): Tensor {
    return new Tensor(checkHandle(lib.ll_masked_fill(this.handle, mask.handle, value), "maskedFill"));
  }
  /** Indices that sort the values along dim. */
  argsort(dim = -1, descending = false): Tensor {
    return new Tensor(checkHandle(lib.ll_argsort(this.handle, dim, descending ? 1 : 0), "argsort"));
  }
  /** The k largest (or smallest) values along dim and their indices. */
  topk(k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
    checkStatus(lib.ll_topk(this.handle, k, dim, largest ? 1 : 0, sorted ? 1 : 0, OUT), "topk");
    const [values, indices] = takeOut(2);
    return { values, indices };
  }

  // ---------------------------------------------------------------- elementwise

  #bin(name: keyof typeof BINARY_OP, other: Tensor | number): Tensor {
    const op = BINARY_OP[name];
    const h = typeof other === "number"
      ? lib.ll_binary_scalar(op, this.handle, other)
      : lib.ll_binary(op, this.handle, other.handle);
    return new Tensor(checkHandle(h, name));
  }
  #un(name: keyof typeof UNARY_OP): Tensor {
    return new Tensor(
      checkHandle(lib.ll_unary(UNARY_OP[name], this.handle), name === "geluTanh" ? "gelu" : name),
    );
  }

  /** this + other (× alpha when given), broadcasting. */
  add(other: Tensor | number, alpha?: number): Tensor {
    if (typeof other === "number") {
      if (alpha !== undefined) other *= alpha;
      return this.#bin("add", other);
    }
    const h = alpha === undefined
      ? lib.ll_add(this.handle, other.handle)
      : lib.ll_add_scaled(this.handle, other.handle, alpha);
    return new Tensor(checkHandle(h, "add"));
  }
  /** this - other, broadcasting. */
  sub(other: Tensor | number): Tensor {
    return this.#bin("sub", other);
  }
  /** this × other, broadcasting. */
  mul(other: Tensor | number): Tensor {
    if (typeof other === "number") return this.#bin("mul", other);
    const h = lib.ll_mul(this.handle, other.handle);
    return new Tensor(checkHandle(h, "mul"));
  }
  /** this / other (true division), broadcasting. */
  div(other: Tensor | number): Tensor {
    return this.#bin("div", other);
  }
  /** this ** exponent. */
  pow(exponent: Tensor | number): Tensor {
    return this.#bin("pow", exponent);
  }
  /** s - this. */
  rsub(s: number): Tensor {
    return new Tensor(checkHandle(lib.ll_rsub_scalar(this.handle, s), "rsub"));
  }
  /** Elementwise maximum (a scalar clamps from below). */
  maximum(other: Tensor | number): Tensor {
    return this.#bin("maximum", other);
  }
  /** Elementwise minimum (a scalar clamps from above). */
  minimum(other: Tensor | number): Tensor {
    return this.#bin("minimum", other);
  }
  /** this == other (bool). */
  eq(other: Tensor | number): Tensor {
    return this.#bin("eq", other);
  }
  /** this != other (bool). */
  ne(other: Tensor | number): Tensor {
    return this.#bin("ne", other);
  }
  /** this < other (bool). */
  lt(other: Tensor | number): Tensor {
    return this.#bin("lt", other);
  }
  /** this <= other (bool). */
  le(other: Tensor | number): Tensor {
    return this.#bin("le", other);
  }
  /** this > other (bool). */
  gt(other: Tensor | number): Tensor {
    return this.#bin("gt", other);
  }
  /** this >= other (bool). */
  ge(other: Tensor | number): Tensor {
    return this.#bin("ge", other);
  }
  /** Logical and (nonzero is true). */
  logicalAnd(other: Tensor): Tensor {
    return this.#bin("logicalAnd", other);
  }
  /** Logical or. */
  logicalOr(other: Tensor): Tensor {
    return this.#bin("logicalOr", other);
  }
  /** Logical exclusive or. */
  logicalXor(other: Tensor): Tensor {
    return this.#bin("logicalXor", other);
  }
  /** Logical not. */
  logicalNot(): Tensor {
    return this.#un("logicalNot");
  }
  /** -this. */
  neg(): Tensor {
    return this.#un("neg");
  }
  /** |this|. */
  abs(): Tensor {
    return this.#un("abs");
  }
  /** Square root. */
  sqrt(): Tensor {
    return this.#un("sqrt");
  }
  /** 1 / sqrt(this). */
  rsqrt(): Tensor {
    return this.#un("rsqrt");
  }
  /** e ** this. */
  exp(): Tensor {
    return this.#un("exp");
  }
  /** Natural logarithm. */
  log(): Tensor {
    return this.#un("log");
  }
  /** Hyperbolic tangent. */
  tanh(): Tensor {
    return this.#un("tanh");
  }
  /** Logistic sigmoid. */
  sigmoid(): Tensor {
    return this.#un("sigmoid");
  }
  /** max(this, 0). */
  relu(): Tensor {
    return this.#un("relu");
  }
  /** GELU: exact (erf) by default, or the tanh approximation. */
  gelu(approximate: "none" | "tanh" = "none"): Tensor {
    return this.#un(approximate === "tanh" ? "geluTanh" : "gelu");
  }
  /** Sine. */
  sin(): Tensor {
    return this.#un("sin");
  }
  /** Cosine. */
  cos(): Tensor {
    return this.#un("cos");
  }
  /** Error function. */
  erf(): Tensor {
    return this.#un("erf");
  }
  /** this ** 2. */
  square(): Tensor {
    return this.#un("square");
  }
  /** 1 / this. */
  reciprocal(): Tensor {
    return this.#un("reciprocal");
  }
  /** Sign (-1, 0, 1). */
  sign(): Tensor {
    return this.#un("sign");
  }
  /** Floor. */
  floor(): Tensor {
    return this.#un("floor");
  }
  /** Clamps into [min, max]; either bound may be omitted (null/undefined). */
  clamp(min?: number | null, max?: number | null): Tensor {
    const hasMin = min !== undefined && min !== null, hasMax = max !== undefined && max !== null;
    return new Tensor(
      checkHandle(
        lib.ll_clamp(this.handle, hasMin ? min : 0, hasMin ? 1 : 0, hasMax ? max : 0, hasMax ? 1 : 0),
        "clamp",
      ),
    );
  }

  // ---------------------------------------------------------------- reductions

  #reduce(
    name: keyof typeof REDUCE_OP,
    dim: number | readonly number[] | undefined,
    keepdim: boolean,
  ): Tensor {
    const [d, n] = dimsOrAll(dim, name);
    return new Tensor(checkHandle(lib.ll_reduce(REDUCE_OP[name], this.handle, d, n, keepdim ? 1 : 0), name));
  }
  /** Sum over dims (all when omitted). */
  sum(dim?: number | readonly number[], keepdim = false): Tensor {
    return this.#reduce("sum", dim, keepdim);
  }
  /** Mean over dims (all when omitted). */
  mean(dim?: number | readonly number[], keepdim = false): Tensor {
    return this.#reduce("mean", dim, keepdim);
  }
  /** Maximum value over dims (all when omitted). */
  amax(dim?: number | readonly number[], keepdim = false): Tensor {
    return this.#reduce("amax", dim, keepdim);
  }
  /** Minimum value over dims (all when omitted). */
  amin(dim?: number | readonly number[], keepdim = false): Tensor {
    return this.#reduce("amin", dim, keepdim);
  }
  /** Variance over dims (all when omitted), with Bessel's correction by default. */
  var(dim?: number | readonly number[], { correction = 1, keepdim = false } = {}): Tensor {
    const [d, n] = dimsOrAll(dim, "var");
    return new Tensor(checkHandle(lib.ll_var(this.handle, d, n, correction, keepdim ? 1 : 0), "var"));
  }
  /** Standard deviation over dims (all when omitted), with Bessel's correction by default. */
  std(dim?: number | readonly number[], { correction = 1, keepdim = false } = {}): Tensor {
    const [d, n] = dimsOrAll(dim, "std");
    return new Tensor(checkHandle(lib.ll_std(this.handle, d, n, correction, keepdim ? 1 : 0), "std"));
  }
  /** Maximum over all elements, or values and indices along one dim. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return this.amax();
    checkStatus(lib.ll_max_dim(this.handle, dim, keepdim ? 1 : 0, 0, OUT), "max");
    const [values, indices] = takeOut(2);
    return { values, indices };
  }
  /** Minimum over all elements, or values and indices along one dim. */
  min(): Tensor;
  min(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return this.amin();
    checkStatus(lib.ll_max_dim(this.handle, dim, keepdim ? 1 : 0, 1, OUT), "min");
    const [values, indices] = takeOut(2);
    return { values, indices };
  }
  /** Index of the maximum (over the flattened tensor when dim is omitted). */
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(
      checkHandle(lib.ll_argmax(this.handle, dim ?? 0, dim === undefined ? 0 : 1, keepdim ? 1 : 0), "argmax"),
    );
  }
  /** Vector p-norm over dims (all when omitted). */
  norm(p = 2, dim?: number | readonly number[], keepdim = false): Tensor {
    const [d, n] = dimsOrAll(dim, "norm");
    return new Tensor(checkHandle(lib.ll_norm(this.handle, p, d, n, keepdim ? 1 : 0), "norm"));
  }

  // ---------------------------------------------------------------- linear algebra and nn

  /** Matrix product with broadcasting (torch.matmul). */
  matmul(other: Tensor): Tensor {
    return new Tensor(checkHandle(lib.ll_matmul(this.handle, other.handle), "matmul"));
  }
  /**
   * Singular values of a matrix [M, N] (or of each matrix of a batch [..., M, N]) in descending order:
   * [..., min(M, N)] (torch.linalg.svdvals; floating dtypes).
   */
  svdvals(): Tensor {
    return new Tensor(checkHandle(lib.ll_svdvals(this.handle), "svdvals"));
  }
  /** Batched matrix product of [B, n, m] and [B, m, p]. */
  bmm(other: Tensor): Tensor {
    return new Tensor(checkHandle(lib.ll_bmm(this.handle, other.handle), "bmm"));
  }
  /** Softmax along dim. */
  softmax(dim: number): Tensor {
    return new Tensor(checkHandle(lib.ll_softmax(this.handle, dim, 0), "softmax"));
  }
  /** Log-softmax along dim. */
  logSoftmax(dim: number): Tensor {
    return new Tensor(checkHandle(lib.ll_softmax(this.handle, dim, 1), "logSoftmax"));
  }

  // ---------------------------------------------------------------- in place

  /** this += other × alpha, in place. */
  add_(other: Tensor | number, alpha = 1): this {
    if (typeof other === "number") checkStatus(lib.ll_add_scalar_(this.handle, other * alpha), "add_");
    else checkStatus(lib.ll_add_(this.handle, other.handle, alpha), "add_");
    return this;
  }
  /** this ×= other, in place. */
  mul_(other: Tensor | number): this {
    if (typeof other === "number") checkStatus(lib.ll_mul_scalar_(this.handle, other), "mul_");
    else checkStatus(lib.ll_mul_(this.handle, other.handle), "mul_");
    return this;
  }
  /** Copies src's values into this tensor (broadcasting, converting dtype/device). */
  copy_(src: Tensor): this {
    checkStatus(lib.ll_copy_(this.handle, src.handle), "copy_");
    return this;
  }
  /** Sets every element to 0. */
  zero_(): this {
    checkStatus(lib.ll_zero_(this.handle), "zero_");
    return this;
  }
  /** Sets every element to value. */
  fill_(value: number): this {
    checkStatus(lib.ll_fill_(this.handle, value), "fill_");
    return this;
  }
  /** Fills with samples of N(mean, std²) (no autograd history). */
  normal_(mean = 0, std = 1): this {
    checkStatus(lib.ll_normal_(this.handle, mean, std), "normal_");
    return this;
  }
  /** Fills with samples of U(low, high) (no autograd history). */
  uniform_(low = 0, high = 1): this {
    checkStatus(lib.ll_uniform_(this.handle, low, high), "uniform_");
    return this;
  }
  /** Fills with N(mean, std²) truncated to [a, b], as torch.nn.init.trunc_normal_. */
  truncNormal_(mean = 0, std = 1, a = -2, b = 2): this {
    checkStatus(lib.ll_trunc_normal_(this.handle, mean, std, a, b), "truncNormal_");
    return this;
  }
  /** Xavier/Glorot uniform initialisation, as torch.nn.init.xavier_uniform_. */
  xavierUniform_(gain = 1): this {
    checkStatus(lib.ll_xavier_uniform_(this.handle, gain), "xavierUniform_");
    return this;
  }

  // ---------------------------------------------------------------- autograd

  /** Backpropagates from this tensor (a scalar, or any shape with an explicit gradient). */
  backward(grad?: Tensor, { retainGraph = false } = {}): void {
    checkStatus(
      lib.ll_backward(this.handle, grad === undefined ? 0 : grad.handle, retainGraph ? 1 : 0),
      "backward",
    );
  }
  /** The accumulated gradient as a new tensor owned by the caller, or null if there is none. */
  get grad(): Tensor | null {
    if (checkStatus(lib.ll_grad_defined(this.handle), "grad") === 0) return null;
    return new Tensor(checkHandle(lib.ll_grad(this.handle), "grad"));
  }
  /** Replaces the gradient (null clears it); it must have this tensor's shape, dtype and device. */
  setGrad(grad: Tensor | null): void {
    checkStatus(lib.ll_set_grad(this.handle, grad === null ? 0 : grad.handle), "setGrad");
  }
  /** Clears the gradient: drops it (default) or zeroes it in place. */
  zeroGrad(setToNone = true): void {
    checkStatus(lib.ll_zero_grad(this.handle, setToNone ? 1 : 0), "zeroGrad");
  }
}
