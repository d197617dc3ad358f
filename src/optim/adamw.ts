/**
 * `AdamW` over named parameters, in two groups (weight decay / no weight decay), stepped with the list kernel
 * of `kernels.ts` (PyTorch's `_fused_adamw_` or the foreach formulation): the arithmetic of
 * `torch.optim.AdamW` with two param groups.
 *
 * Ownership: the optimizer does not own the parameters (the model does; keep them alive while it is used). It
 * owns its state tensors and frees them in `releaseState` and `dispose`. State is created outside any
 * `scope`, so calling `step` inside one is safe.
 * @module
 */
import { TorchError } from "../errors.ts";
import { zeros, zerosLike } from "../torch/creation.ts";
import type { Device, DType } from "../torch/dtype.ts";
import { keep } from "../torch/scope.ts";
import { Tensor } from "../torch/tensor.ts";
import { adamwStep, clipGradNorm } from "./kernels.ts";

/** One named parameter of `AdamW`. */
export interface NamedParam {
  /** A unique name, e.g. `blocks.3.attn.qkv.weight` (used for grouping and state-dict keys). */
  name: string;
  /** The parameter (a leaf tensor, updated in place). */
  param: Tensor;
}

/** Options of `AdamW`. */
export interface AdamWOptions {
  /** Learning rate used when `step()` is called without one. */
  lr: number;
  /** Moment decays (default [0.9, 0.95], as MAE/VideoMAE pre-training). */
  betas?: [number, number];
  /** Decoupled weight decay of the decay group (default 0.05); the other group has none. */
  weightDecay?: number;
  /** Denominator epsilon (default 1e-8). */
  eps?: number;
  /** Which parameters get no weight decay (default `defaultNoDecay`). Decided once, in the constructor. */
  noDecay?: (name: string, p: Tensor) => boolean;
  /** Kernel: "fused" (`_fused_adamw_`), "foreach", or "auto" (fused where supported; the default). */
  impl?: "fused" | "foreach" | "auto";
  /**
   * Where a parameter's gradient comes from (default: its `.grad`); returns a handle the optimizer frees, or null
   * to skip the parameter this step. `ZeroAdamW` steps pieces of parameters on their piece of the mean gradient.
   */
  gradOf?: (name: string, param: Tensor) => Tensor | null;
}

/**
 * What the trainer, the freezer and checkpoints need of an optimiser over named parameters: `AdamW`, or
 * `ZeroAdamW` (state sharded over a process group).
 */
export interface ParamOptimizer {
  /** One step over the parameters that have gradients. */
  step(lr?: number): number;
  /** Drops every gradient. */
  zeroGrad(): void;
  /** Frees the state of the named parameters. */
  releaseState(names: Iterable<string>): void;
  /** The state by `<name>.exp_avg|exp_avg_sq|step` (new handles, owned by the caller). */
  stateDict(): Record<string, Tensor>;
  /** Replaces the state with `sd`'s. */
  loadStateDict(sd: Record<string, Tensor>): void;
  /** Frees all state. */
  dispose(): void;
}

/**
 * The default no-decay rule (timm/MAE style): tensors with at most one dimension (biases, norm scales), and
 * names that end with "bias" or contain "pos_embed", "mask_token", "cls_token" or "norm".
 */
export function defaultNoDecay(name: string, p: Tensor): boolean {
  return p.ndim <= 1 || name.endsWith("bias") || name.includes("pos_embed") ||
    name.includes("mask_token") || name.includes("cls_token") || name.includes("norm");
}

/** The suffixes of the state-dict keys of one parameter. */
const STATE_KEYS = ["exp_avg", "exp_avg_sq", "step"] as const;

interface State {
  expAvg: Tensor;
  expAvgSq: Tensor;
  /** f32 0-d tensor on the parameter's device (what `_fused_adamw_` reads). */
  step: Tensor;
  /**
   * Mirror of `step` on the host, advanced by `step()`, grouping the foreach kernel's calls (which take one step
   * count each). Steps replayed from a CUDA graph (fused kernel only) do not advance it: read `step` instead.
   */
  count: number;
  /** Device and dtype of the parameter when the state was made: the bucket key of a kernel call. */
  key: string;
}

interface Entry {
  name: string;
  param: Tensor;
  decay: boolean;
  state: State | null;
}

function disposeState(s: State): void {
  s.expAvg.dispose();
  s.expAvgSq.dispose();
  s.step.dispose();
}

/**
 * AdamW with decoupled weight decay over named parameters, split into a decay group and a no-decay group.
 *
 * `step()` skips every parameter whose gradient is undefined (frozen ones, `requiresGrad` false, or ones
 * that simply got none): no weight decay, no moment update, no step count — as `torch.optim.AdamW`. State
 * (exp_avg, exp_avg_sq: zeros like the parameter, i.e. same shape, dtype and device; step: an f32 0-d
 * tensor on the parameter's device) is created on the first step where a parameter has a gradient.
 *
 * Per step the FFI cost is: per parameter, one call to test for a gradient, and for each that has one, one
 * to borrow it and one to free that handle; then one kernel call per (group, device, dtype, step count)
 * bucket — usually one per group.
 */
export class AdamW implements ParamOptimizer {
  /** Learning rate used by `step()` when none is passed. */
  lr: number;
  /** First-moment decay. */
  readonly beta1: number;
  /** Second-moment decay. */
  readonly beta2: number;
  /** Weight decay of the decay group. */
  readonly weightDecay: number;
  /** Denominator epsilon. */
  readonly eps: number;
  /** Kernel choice passed to `adamwStep`. */
  readonly impl: "fused" | "foreach" | "auto";
  readonly #gradOf: (name: string, param: Tensor) => Tensor | null;
  #entries: Entry[];
  #byName = new Map<string, Entry>();
  #disposed = false;

  /** Groups the parameters (decay / no decay); no state is allocated until the first `step`. */
  constructor(params: readonly NamedParam[], opts: AdamWOptions) {
    const betas = opts.betas ?? [0.9, 0.95];
    this.lr = opts.lr;
    this.beta1 = betas[0];
    this.beta2 = betas[1];
    this.weightDecay = opts.weightDecay ?? 0.05;
    this.eps = opts.eps ?? 1e-8;
    this.impl = opts.impl ?? "auto";
    this.#gradOf = opts.gradOf ?? ((_, p) => p.grad);
    checkLr(this.lr, "AdamW");
    for (const [k, v] of [["beta1", this.beta1], ["beta2", this.beta2]] as const) {
      if (!(v >= 0 && v < 1)) throw new TorchError("AdamW", `${k} must be in [0, 1), got ${v}`);
    }
    if (!(this.weightDecay >= 0)) {
      throw new TorchError("AdamW", `weightDecay must be >= 0, got ${this.weightDecay}`);
    }
    if (!(this.eps >= 0)) throw new TorchError("AdamW", `eps must be >= 0, got ${this.eps}`);
    if (!["fused", "foreach", "auto"].includes(this.impl)) {
      throw new TorchError("AdamW", `impl must be "fused", "foreach" or "auto", got ${String(this.impl)}`);
    }
    const noDecay = opts.noDecay ?? defaultNoDecay;
    const seen = new Set<Tensor>();
    this.#entries = params.map(({ name, param }) => {
      if (!(param instanceof Tensor)) throw new TorchError("AdamW", `parameter '${name}' is not a Tensor`);
      if (this.#byName.has(name)) throw new TorchError("AdamW", `duplicate parameter name '${name}'`);
      if (seen.has(param)) throw new TorchError("AdamW", `parameter '${name}' is listed twice`);
      seen.add(param);
      const e: Entry = { name, param, decay: !noDecay(name, param), state: null };
      this.#byName.set(name, e);
      return e;
    });
  }

  /** Names of the parameters in the weight-decay group, in order. */
  get decayNames(): string[] {
    return this.#entries.filter((e) => e.decay).map((e) => e.name);
  }

  /** Names of the parameters in the no-decay group, in order. */
  get noDecayNames(): string[] {
    return this.#entries.filter((e) => !e.decay).map((e) => e.name);
  }

  /** Names of the parameters that currently have state. */
  get stateNames(): string[] {
    return this.#entries.filter((e) => e.state !== null).map((e) => e.name);
  }

  /**
   * The number of steps taken by a parameter (0 when it has no state), read from its device counter (a host
   * read): right also after steps replayed from a CUDA graph, which advance the counters on the device alone.
   */
  stepCount(name: string): number {
    const s = this.#entry(name, "stepCount").state;
    return s === null ? 0 : s.step.item();
  }

  /**
   * One AdamW step, with learning rate `lr` (default `this.lr`), over every parameter that has a gradient;
   * the others are not touched. Returns the number of parameters updated. `lr` may be a one-element float
   * tensor on the parameters' device: the fused kernel then reads it on the device, and with the step counters
   * (device tensors, advanced on the device) the step makes no host read — what a CUDA graph needs.
   */
  step(lr: number | Tensor = this.lr): number {
    this.#alive("step");
    if (typeof lr === "number") checkLr(lr, "AdamW.step");
    else if (!(lr instanceof Tensor) || lr.disposed || lr.numel !== 1) {
      throw new TorchError("AdamW.step", "lr must be a number or a live one-element tensor");
    }
    // Buckets: one kernel call per group × device/dtype × step count (the foreach kernel uses one step count
    // per call, and the fused kernel wants one device per call).
    const buckets = new Map<string, { decay: boolean; entries: Entry[]; grads: Tensor[] }>();
    const grads: Tensor[] = [];
    try {
      for (const e of this.#entries) {
        const g = this.#gradOf(e.name, e.param);
        if (g === null) continue;
        grads.push(g);
        if (e.state === null) e.state = newState(e.param);
        const k = `${e.decay ? "d" : "n"}|${e.state.key}|${e.state.count}`;
        let b = buckets.get(k);
        if (b === undefined) buckets.set(k, b = { decay: e.decay, entries: [], grads: [] });
        b.entries.push(e);
        b.grads.push(g);
      }
      for (const b of buckets.values()) {
        const st = b.entries.map((e) => e.state!);
        adamwStep({
          params: b.entries.map((e) => e.param),
          grads: b.grads,
          expAvg: st.map((s) => s.expAvg),
          expAvgSq: st.map((s) => s.expAvgSq),
          steps: st.map((s) => s.step),
        }, {
          lr,
          beta1: this.beta1,
          beta2: this.beta2,
          weightDecay: b.decay ? this.weightDecay : 0,
          eps: this.eps,
          impl: this.impl,
        });
        for (const s of st) s.count++;
      }
    } finally {
      for (const g of grads) g.dispose();
    }
    return grads.length;
  }

  /** Drops every parameter's gradient (sets it to none, as `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const e of this.#entries) e.param.zeroGrad(true);
  }

  /**
   * Global L2 norm of all gradients (parameters without one are skipped), clipping them in place to
   * `maxNorm` when it is > 0. Returns the norm before clipping as a 0-d f32 tensor that the caller disposes
   * (no host sync). A convenience over `clipGradNorm` of `kernels.ts`.
   */
  clipGradNorm(maxNorm: number): Tensor {
    this.#alive("clipGradNorm");
    return clipGradNorm(this.#entries.map((e) => e.param), maxNorm);
  }

  /**
   * Frees the state of the named parameters (e.g. layers LayerLock has just frozen). A parameter that gets a
   * gradient again later starts from fresh state (zero moments, step 0). Unknown names throw; names without
   * state are ignored.
   */
  releaseState(names: Iterable<string>): void {
    const es = [...names].map((n) => this.#entry(n, "releaseState"));
    for (const e of es) {
      if (e.state !== null) {
        disposeState(e.state);
        e.state = null;
      }
    }
  }

  /**
   * The optimizer state as `"<name>.exp_avg"`, `"<name>.exp_avg_sq"` and `"<name>.step"` tensors, for the
   * parameters that have state. The tensors are new handles owned by the caller (or the current scope), who
   * must dispose them. By default they are aliases: they share storage with the live state, so read or save
   * them before the next `step()`. With `copy: true` they are independent copies.
   */
  stateDict({ copy = false }: { copy?: boolean } = {}): Record<string, Tensor> {
    this.#alive("stateDict");
    const out: Record<string, Tensor> = {};
    try {
      for (const e of this.#entries) {
        const s = e.state;
        if (s === null) continue;
        out[`${e.name}.exp_avg`] = copy ? s.expAvg.clone() : s.expAvg.alias();
        out[`${e.name}.exp_avg_sq`] = copy ? s.expAvgSq.clone() : s.expAvgSq.alias();
        out[`${e.name}.step`] = copy ? s.step.clone() : s.step.alias();
      }
    } catch (err) {
      for (const t of Object.values(out)) t.dispose();
      throw err;
    }
    return out;
  }

  /**
   * Replaces the whole state with the one in `sd` (keys as made by `stateDict`); parameters absent from `sd`
   * end up with no state, as `torch.optim.Optimizer.load_state_dict`. Values are copied onto each parameter's
   * device and dtype (step as f32); `sd` stays the caller's to dispose. Everything is checked before anything
   * changes: unknown parameter names or key suffixes, a parameter with only some of its three entries,
   * moments whose shape differs from the parameter's, and a step that is not a single non-negative integer
   * all throw a TorchError.
   */
  loadStateDict(sd: Record<string, Tensor>): void {
    this.#alive("loadStateDict");
    const parts = new Map<Entry, Partial<Record<(typeof STATE_KEYS)[number], Tensor>>>();
    for (const [key, t] of Object.entries(sd)) {
      const suffix = STATE_KEYS.find((s) => key.endsWith(`.${s}`));
      if (suffix === undefined) {
        throw new TorchError(
          "loadStateDict",
          `key '${key}' does not end with .exp_avg, .exp_avg_sq or .step`,
        );
      }
      const name = key.slice(0, key.length - suffix.length - 1);
      const e = this.#byName.get(name);
      if (e === undefined) {
        throw new TorchError("loadStateDict", `key '${key}': the optimizer has no parameter named '${name}'`);
      }
      if (!(t instanceof Tensor)) throw new TorchError("loadStateDict", `key '${key}' is not a Tensor`);
      let p = parts.get(e);
      if (p === undefined) parts.set(e, p = {});
      p[suffix] = t;
    }
    const counts = new Map<Entry, number>();
    for (const [e, p] of parts) {
      for (const s of STATE_KEYS) {
        if (p[s] === undefined) {
          throw new TorchError("loadStateDict", `parameter '${e.name}' has no '${e.name}.${s}' entry`);
        }
      }
      const want = e.param.shape;
      for (const s of ["exp_avg", "exp_avg_sq"] as const) {
        const got = p[s]!.shape;
        if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
          throw new TorchError(
            "loadStateDict",
            `'${e.name}.${s}' has shape [${got.join(", ")}] but the parameter has shape [${want.join(", ")}]`,
          );
        }
      }
      const st = p.step!;
      if (st.numel !== 1) {
        throw new TorchError(
          "loadStateDict",
          `'${e.name}.step' must hold one value, got shape [${st.shape}]`,
        );
      }
      const c = st.item();
      if (!(Number.isInteger(c) && c >= 0)) {
        throw new TorchError("loadStateDict", `'${e.name}.step' must be a non-negative integer, got ${c}`);
      }
      counts.set(e, c);
    }
    // Build all new state first, so a failure (e.g. out of memory) leaves the old state in place.
    const fresh = new Map<Entry, State>();
    try {
      for (const [e, p] of parts) {
        const dtype = e.param.dtype, device = e.param.device;
        fresh.set(e, {
          expAvg: keep(p.exp_avg!.to({ dtype, device, copy: true })),
          expAvgSq: keep(p.exp_avg_sq!.to({ dtype, device, copy: true })),
          step: keep(stepTensor(p.step!, device)),
          count: counts.get(e)!,
          key: `${device}|${dtype}`,
        });
      }
    } catch (err) {
      for (const s of fresh.values()) disposeState(s);
      throw err;
    }
    for (const e of this.#entries) {
      if (e.state !== null) disposeState(e.state);
      e.state = fresh.get(e) ?? null;
    }
  }

  /** Frees all state; the optimizer cannot be used afterwards. Safe to call more than once. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const e of this.#entries) {
      if (e.state !== null) disposeState(e.state);
      e.state = null;
    }
  }

  /** Frees all state at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #alive(op: string): void {
    if (this.#disposed) throw new TorchError(`AdamW.${op}`, "the optimizer was disposed");
  }

  #entry(name: string, op: string): Entry {
    this.#alive(op);
    const e = this.#byName.get(name);
    if (e === undefined) throw new TorchError(`AdamW.${op}`, `no parameter named '${name}'`);
    return e;
  }
}

function checkLr(lr: number, op: string): void {
  if (typeof lr !== "number") throw new TorchError(op, `lr must be a number, got ${typeof lr}`);
  if (!(Number.isFinite(lr) && lr >= 0)) {
    throw new TorchError(op, `lr must be a finite number >= 0, got ${lr}`);
  }
}

/** Fresh state for a parameter: zero moments like it, step 0 (f32, 0-d, on its device). Not scope-owned. */
function newState(p: Tensor): State {
  const device: Device = p.device, dtype: DType = p.dtype;
  const expAvg = keep(zerosLike(p));
  let expAvgSq: Tensor | null = null;
  try {
    expAvgSq = keep(zerosLike(p));
    const step = keep(stepTensor(null, device));
    return { expAvg, expAvgSq, step, count: 0, key: `${device}|${dtype}` };
  } catch (err) {
    expAvg.dispose();
    expAvgSq?.dispose();
    throw err;
  }
}

/** A 0-d f32 step counter on `device`: zero, or a copy of `src`'s single value. */
function stepTensor(src: Tensor | null, device: Device): Tensor {
  if (src === null) return zeros([], { dtype: "f32", device });
  using r = src.reshape([]);
  return r.to({ dtype: "f32", device, copy: true });
}
