/**
 * Optimizer kernels over lists of tensors: one AdamW step (PyTorch's fused kernel, or the foreach
 * formulation) and global grad-norm clipping. The optimizer classes are built on these.
 * @module
 */
import { lib } from "../../ffi/lib.ts";
import { checkHandle, checkStatus } from "../../ffi/check.ts";
import { TorchError } from "../errors.ts";
import { handlesArg, Tensor } from "../torch/tensor.ts";

/** AdamW hyper-parameters of one step. */
export interface AdamWHyper {
  /** Learning rate. */
  lr: number | Tensor;
  /** First-moment decay (default 0.9). */
  beta1?: number;
  /** Second-moment decay (default 0.999). */
  beta2?: number;
  /** Decoupled weight decay (default 0.01). */
  weightDecay?: number;
  /** Denominator epsilon (default 1e-8). */
  eps?: number;
  /** "fused" (PyTorch's _fused_adamw_), "foreach", or "auto" (fused where supported; the default). */
  impl?: "fused" | "foreach" | "auto";
}

/** The tensors of one AdamW step; all lists have one entry per parameter. */
export interface AdamWTensors {
  /** Parameters, updated in place. */
  params: readonly Tensor[];
  /** Their gradients (read). */
  grads: readonly Tensor[];
  /** First-moment state, updated in place. */
  expAvg: readonly Tensor[];
  /** Second-moment state, updated in place. */
  expAvgSq: readonly Tensor[];
  /** Step counters: f32 scalar tensors on the parameters' device, incremented in place. */
  steps: readonly Tensor[];
}

/** Runs one AdamW step; returns which implementation ran. */
export function adamwStep(t: AdamWTensors, h: AdamWHyper): "fused" | "foreach" {
  const n = t.params.length;
  for (const [name, list] of Object.entries(t)) {
    if ((list as Tensor[]).length !== n) {
      throw new TorchError(
        "adamwStep",
        `${name} has ${(list as Tensor[]).length} entries but params has ${n}`,
      );
    }
  }
  const impl = h.impl ?? "auto";
  const r = checkStatus(
    lib.ll_adamw_step(
      handlesArg(t.params, "adamwStep"),
      handlesArg(t.grads, "adamwStep"),
      handlesArg(t.expAvg, "adamwStep"),
      handlesArg(t.expAvgSq, "adamwStep"),
      handlesArg(t.steps, "adamwStep"),
      n,
      typeof h.lr === "number" ? h.lr : 0,
      h.beta1 ?? 0.9,
      h.beta2 ?? 0.999,
      h.weightDecay ?? 0.01,
      h.eps ?? 1e-8,
      impl === "fused" ? 1 : impl === "foreach" ? 0 : -1,
      typeof h.lr === "number" ? 0 : h.lr.handle,
    ),
    "adamwStep",
  );
  return r === 1 ? "fused" : "foreach";
}

/**
 * The global L2 norm of the parameters' gradients (parameters without one are skipped), as a 0-d f32 tensor
 * (no host sync); when maxNorm > 0 the gradients are scaled in place so the norm is at most maxNorm.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm = 0): Tensor {
  return new Tensor(
    checkHandle(
      lib.ll_clip_grad_norm(handlesArg(params, "clipGradNorm"), params.length, maxNorm),
      "clipGradNorm",
    ),
  );
}
