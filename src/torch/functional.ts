/**
 * The functional namespace: PyTorch's `torch.*` and `torch.nn.functional.*` operations as free functions.
 * Each returns a new tensor owned by the caller (or the current scope).
 * @module
 */
import { lib } from "../../ffi/lib.ts";
import { checkHandle, checkStatus } from "../../ffi/check.ts";
import { REDUCTION } from "../../ffi/symbols.ts";
import { TorchError } from "../errors.ts";
import { dimsArg, handlesArg, Tensor } from "./tensor.ts";

const S3 = new Float64Array(3), P3 = new Float64Array(3), D3 = new Float64Array(3);

/** How a loss is reduced over its elements. */
export type Reduction = "none" | "mean" | "sum";
function reductionCode(r: Reduction, op: string): number {
  const c = Object.hasOwn(REDUCTION, r) ? REDUCTION[r] : undefined;
  if (c === undefined) throw new TorchError(op, `reduction must be "none", "mean" or "sum", got "${r}"`);
  return c;
}

/** Concatenates tensors along an existing dim. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(checkHandle(lib.ll_cat(handlesArg(tensors, "cat"), tensors.length, dim), "cat"));
}
/** Stacks tensors of equal shape along a new dim. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(checkHandle(lib.ll_stack(handlesArg(tensors, "stack"), tensors.length, dim), "stack"));
}
/** Elementwise choice: `a` where `cond` is true, else `b` (broadcasting). */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  return new Tensor(checkHandle(lib.ll_where(cond.handle, a.handle, b.handle), "where"));
}
/** Matrix product with broadcasting. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.matmul(b);
}
/** Singular values of a matrix [M, N] (or a batch [..., M, N]), descending: [..., min(M, N)] (linalg.svdvals). */
export function svdvals(x: Tensor): Tensor {
  return x.svdvals();
}
/** Batched matrix product. */
export function bmm(a: Tensor, b: Tensor): Tensor {
  return a.bmm(b);
}
/** y = x Wᵀ + b, for weight [out, in] and optional bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(checkHandle(lib.ll_linear(x.handle, weight.handle, bias ? bias.handle : 0), "linear"));
}

function triple(v: number | readonly number[], into: Float64Array, name: string): Float64Array {
  const a = typeof v === "number" ? [v, v, v] : v;
  if (a.length !== 3) {
    throw new TorchError("conv3d", `${name} must be a number or 3 numbers, got [${a.join(", ")}]`);
  }
  return dimsArg(a, "conv3d", into);
}

/** Options of `conv3d`. */
export interface Conv3dOptions {
  /** Stride (default 1). */
  stride?: number | readonly number[];
  /** Zero padding (default 0). */
  padding?: number | readonly number[];
  /** Dilation (default 1). */
  dilation?: number | readonly number[];
  /** Groups (default 1). */
  groups?: number;
}

/** 3-d convolution of [B, C, T, H, W] with weight [O, C/groups, kT, kH, kW]. */
export function conv3d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv3dOptions = {}): Tensor {
  return new Tensor(checkHandle(
    lib.ll_conv3d(
      x.handle,
      weight.handle,
      bias ? bias.handle : 0,
      triple(opts.stride ?? 1, S3, "stride"),
      triple(opts.padding ?? 0, P3, "padding"),
      triple(opts.dilation ?? 1, D3, "dilation"),
      opts.groups ?? 1,
    ),
    "conv3d",
  ));
}
/** Layer normalisation over the trailing `normalizedShape` dims, with optional affine weight and bias. */
export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  return new Tensor(checkHandle(
    lib.ll_layer_norm(
      x.handle,
      dimsArg(normalizedShape, "layerNorm"),
      normalizedShape.length,
      weight ? weight.handle : 0,
      bias ? bias.handle : 0,
      eps,
    ),
    "layerNorm",
  ));
}
/** Softmax along dim. */
export function softmax(x: Tensor, dim: number): Tensor {
  return x.softmax(dim);
}
/** Log-softmax along dim. */
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return x.logSoftmax(dim);
}
/** Dropout with probability p when training (identity otherwise). */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  return new Tensor(checkHandle(lib.ll_dropout(x.handle, p, training ? 1 : 0), "dropout"));
}

/** Options of `scaledDotProductAttention`. */
export interface SdpaOptions {
  /** Additive float mask or boolean mask (true = attend), broadcastable to [..., L, S]. */
  attnMask?: Tensor | null;
  /** Dropout on the attention weights (default 0). */
  dropoutP?: number;
  /** Causal masking. */
  isCausal?: boolean;
  /** Scale of the logits (default 1/sqrt(head dim)). */
  scale?: number;
}

/** softmax(q kᵀ · scale + mask) v over [..., L, E] queries and [..., S, E] keys/values. */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: SdpaOptions = {}): Tensor {
  return new Tensor(checkHandle(
    lib.ll_sdpa(
      q.handle,
      k.handle,
      v.handle,
      opts.attnMask ? opts.attnMask.handle : 0,
      opts.dropoutP ?? 0,
      opts.isCausal ? 1 : 0,
      opts.scale ?? 0,
      opts.scale === undefined ? 0 : 1,
    ),
    "scaledDotProductAttention",
  ));
}
/** The attention kernels PyTorch's `scaled_dot_product_attention` chooses between (its `SDPBackend`). */
export const SDPA_BACKENDS = ["math", "flash", "efficient", "cudnn", "overrideable"] as const;

/**
 * Which kernel `scaledDotProductAttention` would run for these inputs and options (PyTorch's
 * `_fused_sdp_choice`): `flash`, `efficient` or `cudnn` are fused kernels, `math` the unfused composition.
 */
export function sdpaBackend(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: Omit<SdpaOptions, "scale"> = {},
): (typeof SDPA_BACKENDS)[number] {
  const code = checkStatus(
    lib.ll_sdpa_backend(
      q.handle,
      k.handle,
      v.handle,
      opts.attnMask ? opts.attnMask.handle : 0,
      opts.dropoutP ?? 0,
      opts.isCausal ? 1 : 0,
    ),
    "sdpaBackend",
  );
  const name = SDPA_BACKENDS[code];
  if (name === undefined) throw new TorchError("sdpaBackend", `unknown attention backend code ${code}`);
  return name;
}

/** Mean squared error between input and target of the same shape. */
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  return new Tensor(
    checkHandle(lib.ll_mse_loss(input.handle, target.handle, reductionCode(reduction, "mseLoss")), "mseLoss"),
  );
}

/** Options of `crossEntropy`. */
export interface CrossEntropyOptions {
  /** Per-class weights. */
  weight?: Tensor | null;
  /** Reduction (default mean). */
  reduction?: Reduction;
  /** A target value that is ignored (default -100). */
  ignoreIndex?: number;
  /** Label smoothing in [0, 1] (default 0). */
  labelSmoothing?: number;
}

/** Cross-entropy between logits [N, C] and class indices [N] (or class probabilities [N, C]). */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  return new Tensor(checkHandle(
    lib.ll_cross_entropy(
      logits.handle,
      target.handle,
      opts.weight ? opts.weight.handle : 0,
      reductionCode(opts.reduction ?? "mean", "crossEntropy"),
      opts.ignoreIndex ?? -100,
      opts.labelSmoothing ?? 0,
    ),
    "crossEntropy",
  ));
}
