/**
 * The layers of a video ViT, with VideoMAE's parameter names and initialisation: `Linear`, `LayerNorm`,
 * `Dropout`, multi-head self-attention with a fused qkv projection, `Mlp`, the pre-norm `Block`, and the
 * tubelet `PatchEmbed3d`.
 * @module
 */
import { TorchError } from "../errors.ts";
import type { Device } from "../torch/dtype.ts";
import { empty, ones, zeros } from "../torch/creation.ts";
import { cat, conv3d, dropout, layerNorm, linear, scaledDotProductAttention } from "../torch/functional.ts";
import { noGrad } from "../torch/autograd.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { Module } from "./module.ts";

/** Where new parameters are created. */
export interface InitOptions {
  /** Device of the parameters (default cpu). */
  device?: Device;
  /** The MLPs' GELU: exact (`none`, the default, as VideoMAE) or the tanh approximation. */
  gelu?: "none" | "tanh";
  /** The epsilon of the blocks' LayerNorms (default 1e-6, VideoMAE's). */
  layerNormEps?: number;
}

/** y = x Wᵀ + b; weight [out, in] xavier-uniform, bias zero (VideoMAE's `_init_weights`). */
export class Linear extends Module {
  /** Whether the layer has a bias. */
  readonly hasBias: boolean;
  /** Creates a linear layer. */
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true, o: InitOptions = {}) {
    super();
    this.param(
      "weight",
      noGrad(() => empty([outFeatures, inFeatures], { device: o.device }).xavierUniform_()),
    );
    this.hasBias = bias;
    if (bias) this.param("bias", zeros([outFeatures], { device: o.device }));
  }
  /** The weight [out, in]. */
  get weight(): Tensor {
    return this.own("weight");
  }
  /** The bias [out], or null. */
  get bias(): Tensor | null {
    return this.hasBias ? this.own("bias") : null;
  }
  /** Applies the layer to [..., in]. */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** Layer normalisation over the last dimension; unit weight, zero bias. */
export class LayerNorm extends Module {
  /** Creates a layer norm (VideoMAE uses eps 1e-6). */
  constructor(readonly dim: number, readonly eps = 1e-6, readonly affine = true, o: InitOptions = {}) {
    super();
    if (affine) {
      this.param("weight", ones([dim], { device: o.device }));
      this.param("bias", zeros([dim], { device: o.device }));
    }
  }
  /** Normalises [..., dim]. */
  forward(x: Tensor): Tensor {
    return this.affine
      ? layerNorm(x, [this.dim], this.own("weight"), this.own("bias"), this.eps)
      : layerNorm(x, [this.dim], null, null, this.eps);
  }
}

/** Dropout, active in training mode only. */
export class Dropout extends Module {
  /** Creates a dropout layer with drop probability p. */
  constructor(readonly p = 0) {
    super();
  }
  /** Applies dropout (identity in eval mode or when p is 0; the input tensor is then returned as an alias). */
  forward(x: Tensor): Tensor {
    return this.p > 0 && this.training ? dropout(x, this.p, true) : x.alias();
  }
}

/** Throws a TorchError unless a width splits into whole heads. */
export function checkHeads(dim: number, numHeads: number): void {
  if (!Number.isInteger(numHeads) || numHeads < 1 || dim % numHeads !== 0) {
    throw new TorchError("Attention", `width ${dim} is not divisible by ${numHeads} heads`);
  }
}

/**
 * Multi-head self-attention as VideoMAE: a fused `qkv` projection without bias plus separate `q_bias` and
 * `v_bias` (the key has no bias), scaled dot-product attention, and an output projection `proj`.
 */
export class Attention extends Module {
  /** The width of one head. */
  readonly headDim: number;
  /** The qkv projection. */
  readonly qkv: Linear;
  /** The output projection. */
  readonly proj: Linear;
  /** Creates an attention layer. */
  constructor(readonly dim: number, readonly numHeads: number, readonly qkvBias = true, o: InitOptions = {}) {
    super();
    checkHeads(dim, numHeads);
    this.headDim = dim / numHeads;
    this.qkv = this.child("qkv", new Linear(dim, dim * 3, false, o));
    if (qkvBias) {
      this.param("q_bias", zeros([dim], { device: o.device }));
      this.param("v_bias", zeros([dim], { device: o.device }));
    }
    this.proj = this.child("proj", new Linear(dim, dim, true, o));
  }
  /** Attends over the tokens of [B, N, dim]. */
  forward(x: Tensor): Tensor {
    return scope(() => {
      const [b, n] = x.shape;
      let qkv: Tensor;
      if (this.qkvBias) {
        const q = this.own("q_bias"), v = this.own("v_bias");
        const k = noGrad(() => zeros([this.dim], { device: q.device, dtype: q.dtype }));
        qkv = linear(x, this.qkv.weight, cat([q, k, v]));
      } else {
        qkv = this.qkv.forward(x);
      }
      // [B, N, 3, H, Dh] -> [3, B, H, N, Dh]
      const parts = qkv.reshape([b, n, 3, this.numHeads, this.headDim]).permute([2, 0, 3, 1, 4]);
      const y = scaledDotProductAttention(parts.select(0, 0), parts.select(0, 1), parts.select(0, 2));
      return this.proj.forward(y.transpose(1, 2).reshape([b, n, this.dim]));
    });
  }
}

/** The transformer MLP: fc1 → GELU (exact, or the tanh approximation with `o.gelu`) → fc2. */
export class Mlp extends Module {
  /** First projection. */
  readonly fc1: Linear;
  /** Second projection. */
  readonly fc2: Linear;
  /** The GELU: exact (`none`) or `tanh`. */
  readonly gelu: "none" | "tanh";
  /** Creates an MLP with the given hidden width. */
  constructor(dim: number, hidden: number, o: InitOptions = {}) {
    super();
    this.fc1 = this.child("fc1", new Linear(dim, hidden, true, o));
    this.fc2 = this.child("fc2", new Linear(hidden, dim, true, o));
    this.gelu = o.gelu ?? "none";
  }
  /** Applies the MLP to [..., dim]. */
  forward(x: Tensor): Tensor {
    return scope(() => this.fc2.forward(this.fc1.forward(x).gelu(this.gelu)));
  }
}

/** A pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)). */
export class Block extends Module {
  /** Norm before attention. */
  readonly norm1: LayerNorm;
  /** Self-attention. */
  readonly attn: Attention;
  /** Norm before the MLP. */
  readonly norm2: LayerNorm;
  /** The MLP. */
  readonly mlp: Mlp;
  /** Creates a block of width dim with numHeads heads and an MLP of mlpRatio × dim. */
  constructor(dim: number, numHeads: number, mlpRatio = 4, qkvBias = true, o: InitOptions = {}) {
    super();
    this.norm1 = this.child("norm1", new LayerNorm(dim, o.layerNormEps ?? 1e-6, true, o));
    this.attn = this.child("attn", new Attention(dim, numHeads, qkvBias, o));
    this.norm2 = this.child("norm2", new LayerNorm(dim, o.layerNormEps ?? 1e-6, true, o));
    this.mlp = this.child("mlp", new Mlp(dim, Math.round(dim * mlpRatio), o));
  }
  /** Applies the block to [B, N, dim]. */
  forward(x: Tensor): Tensor {
    // A scope per block frees its temporaries as soon as it returns (autograd keeps what backward needs), so a
    // step holds no more memory than PyTorch's reference counting would.
    return scope(() => {
      const h = x.add(this.attn.forward(this.norm1.forward(x)));
      return h.add(this.mlp.forward(this.norm2.forward(h)));
    });
  }
}

/**
 * A 3-d convolution whose kernel equals its stride (non-overlapping patches). The weight is initialised
 * xavier-uniform as the [out, in·kT·kH·kW] matrix it is (VideoMAE's initialisation of patch_embed.proj).
 */
export class PatchConv3d extends Module {
  /** Creates the convolution. */
  constructor(
    readonly inChans: number,
    readonly outChans: number,
    readonly kernel: [number, number, number],
    o: InitOptions = {},
  ) {
    super();
    const [kt, kh, kw] = kernel;
    this.param(
      "weight",
      noGrad(() => {
        const flat = empty([outChans, inChans * kt * kh * kw], { device: o.device }).xavierUniform_();
        const w = flat.reshape([outChans, inChans, kt, kh, kw]);
        flat.dispose();
        return w;
      }),
    );
    this.param("bias", zeros([outChans], { device: o.device }));
  }
  /** Applies the convolution to [B, C, T, H, W]. */
  forward(x: Tensor): Tensor {
    return conv3d(x, this.own("weight"), this.own("bias"), { stride: this.kernel });
  }
}

/**
 * The token grid (T', H', W') of T frames of H × W cut into tubelet × patch × patch tubelets; a TorchError
 * naming the sizes when they do not divide.
 */
export function tokenGrid(
  t: number,
  h: number,
  w: number,
  tubelet: number,
  patch: number,
): [number, number, number] {
  if (t % tubelet || h % patch || w % patch) {
    throw new TorchError(
      "PatchEmbed3d",
      `clip ${t}x${h}x${w} (T x H x W) is not divisible by the tubelet ${tubelet} and patch ${patch}`,
    );
  }
  return [t / tubelet, h / patch, w / patch];
}

/**
 * Tubelet patch embedding: [B, C, T, H, W] → tokens [B, (T/tubelet)(H/patch)(W/patch), dim] in (t, h, w)
 * order, through `proj`, a PatchConv3d with kernel = stride = (tubelet, patch, patch).
 */
export class PatchEmbed3d extends Module {
  /** The projection. */
  readonly proj: PatchConv3d;
  /** Creates the embedding. */
  constructor(
    readonly inChans: number,
    readonly dim: number,
    readonly tubelet: number,
    readonly patch: number,
    o: InitOptions = {},
  ) {
    super();
    this.proj = this.child("proj", new PatchConv3d(inChans, dim, [tubelet, patch, patch], o));
  }
  /** The token grid (T', H', W') of an input of T frames of H × W. */
  grid(t: number, h: number, w: number): [number, number, number] {
    return tokenGrid(t, h, w, this.tubelet, this.patch);
  }
  /** Embeds [B, C, T, H, W] into [B, N, dim]. */
  forward(x: Tensor): Tensor {
    const s = x.shape;
    if (s.length !== 5 || s[1] !== this.inChans) {
      throw new TorchError("PatchEmbed3d", `expected [B, ${this.inChans}, T, H, W], got [${s.join(", ")}]`);
    }
    this.grid(s[2], s[3], s[4]);
    return this.proj.forward(x).flatten(2).transpose(1, 2);
  }
}
