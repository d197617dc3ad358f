/**
 * `ZeroAdamW`: AdamW with its state sharded over the ranks of a process group (ZeRO stage 1). The trainable
 * parameters are laid end to end in one flat vector, padded to a multiple of the world size and cut into equal
 * contiguous shards; rank r keeps the moments of shard r only. A step reduce-scatters the flat gradient (each
 * rank receives the mean of its shard), runs AdamW on the shard's pieces of the parameters (in place, through
 * views), and all-gathers the updated shards so every rank holds the whole model again. The optimiser state per
 * rank falls by the world size; the bytes communicated equal one all-reduce.
 *
 * The layout follows the parameters that train: when the set changes (a LayerLock freeze) the state of those
 * still training is gathered and re-sharded. Checkpoints hold the gathered state in `AdamW`'s format, so they
 * load on any world size, with or without sharding. `gather()` (collective) must precede `stateDict()`.
 * @module
 */
import { TorchError } from "../errors.ts";
import { noGrad } from "../torch/autograd.ts";
import { tensor, zeros } from "../torch/creation.ts";
import { cat } from "../torch/functional.ts";
import { ELEMENT_SIZE } from "../torch/dtype.ts";
import type { ProcessGroup } from "../torch/dist.ts";
import { keep, scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { AdamW, type AdamWOptions, defaultNoDecay, type NamedParam } from "./adamw.ts";

/** A parameter's place in the flat vector, and the piece of it this rank owns. */
interface Slot {
  name: string;
  param: Tensor;
  /** Offset of the parameter in the flat vector. */
  offset: number;
  numel: number;
  /** The owned piece: offset within the parameter and length (length 0: none). */
  own: { start: number; length: number };
}

/** The state of one parameter, gathered: moments shaped like it, and its step count. */
interface FullState {
  expAvg: Tensor;
  expAvgSq: Tensor;
  count: number;
}

/** AdamW whose moments are sharded over a process group (see the module documentation). */
export class ZeroAdamW {
  readonly #group: ProcessGroup;
  readonly #params: readonly NamedParam[];
  readonly #opts: AdamWOptions;
  readonly #decay: Map<string, boolean>;
  #slots: Slot[] = [];
  #shardLen = 0;
  #inner: AdamW | null = null;
  #views: Tensor[] = [];
  #shardGrad: Tensor | null = null;
  #gathered: Record<string, Tensor> | null = null;
  /** Learning rate used by `step()` when none is passed. */
  lr: number;
  /** Bytes this rank put into the last step's reduce-scatter and all-gather. */
  lastBytes = 0;

  /** Shards the optimiser of `params` over `group`; AdamW's options apply unchanged. */
  constructor(group: ProcessGroup, params: readonly NamedParam[], opts: AdamWOptions) {
    this.#group = group;
    this.#params = params;
    this.#opts = opts;
    this.lr = opts.lr;
    const noDecay = opts.noDecay ?? defaultNoDecay;
    // decided on the whole parameters (a shard's pieces are all one-dimensional)
    this.#decay = new Map(params.map(({ name, param }) => [name, !noDecay(name, param)]));
  }

  /** Elements of moments this rank holds (the shard length), for memory accounting. */
  get shardElements(): number {
    return this.#shardLen;
  }

  /** The names of the parameters in the current layout. */
  get layoutNames(): string[] {
    return this.#slots.map((s) => s.name);
  }

  /** Builds the layout of the parameters that train now, carrying over `state` (full, by name). */
  #layout(state: Map<string, FullState>): void {
    this.#dropLayout();
    const trainable = this.#params.filter((p) => p.param.requiresGrad);
    const size = this.#group.size, rank = this.#group.rank;
    const total = trainable.reduce((n, p) => n + p.param.numel, 0);
    this.#shardLen = Math.ceil(total / size);
    const lo = rank * this.#shardLen, hi = lo + this.#shardLen;
    let offset = 0;
    this.#slots = trainable.map(({ name, param }) => {
      const n = param.numel;
      const a = Math.max(lo, offset), b = Math.min(hi, offset + n);
      const slot = { name, param, offset, numel: n, own: { start: a - offset, length: Math.max(0, b - a) } };
      offset += n;
      return slot;
    });
    const owned = this.#slots.filter((s) => s.own.length > 0);
    this.#views = owned.map((s) => keep(s.param.detach().reshape([-1]).narrow(0, s.own.start, s.own.length)));
    const named = owned.map((s, i) => ({ name: s.name, param: this.#views[i] }));
    this.#inner = new AdamW(named, {
      ...this.#opts,
      noDecay: (name) => !this.#decay.get(name),
      gradOf: (name) => this.#gradOf(name),
    });
    // the carried state, cut to the owned pieces
    const sd: Record<string, Tensor> = {};
    scope(() => {
      for (const s of owned) {
        const st = state.get(s.name);
        if (!st) continue;
        sd[`${s.name}.exp_avg`] = st.expAvg.reshape([-1]).narrow(0, s.own.start, s.own.length);
        sd[`${s.name}.exp_avg_sq`] = st.expAvgSq.reshape([-1]).narrow(0, s.own.start, s.own.length);
        sd[`${s.name}.step`] = zeros([], { dtype: "f32" }).add(st.count);
      }
      this.#inner!.loadStateDict(sd);
    });
  }

  #dropLayout(): void {
    this.#inner?.dispose();
    this.#inner = null;
    for (const v of this.#views) v.dispose();
    this.#views = [];
    this.#slots = [];
  }

  /** This rank's piece of a parameter's mean gradient (null when the parameter got none this step). */
  #gradOf(name: string): Tensor | null {
    const s = this.#slots.find((x) => x.name === name)!;
    if (!this.#hasGrad.has(name) || this.#shardGrad === null) return null;
    const lo = this.#group.rank * this.#shardLen;
    return this.#shardGrad.narrow(0, s.offset + s.own.start - lo, s.own.length);
  }
  #hasGrad = new Set<string>();

  /** Whether the layout covers exactly the parameters that train now. */
  #layoutCurrent(): boolean {
    const trainable = this.#params.filter((p) => p.param.requiresGrad);
    return this.#inner !== null && trainable.length === this.#slots.length &&
      trainable.every((p, i) => p.param === this.#slots[i].param);
  }

  /**
   * One step: the mean gradient over the ranks (reduce-scatter), clipped to `clipGrad` in global L2 norm when
   * > 0, AdamW on this rank's shard, and the updated parameters all-gathered. Collective: every rank calls it.
   * Returns the global gradient norm before clipping (0 when not clipping).
   */
  step(lr: number = this.lr, clipGrad = 0): number {
    if (!this.#layoutCurrent()) this.#layout(this.#inner ? this.#gatherFull() : new Map());
    const size = this.#group.size, len = this.#shardLen;
    let norm = 0;
    this.lastBytes = 0;
    noGrad(() =>
      scope(() => {
        this.#hasGrad = new Set();
        const parts: Tensor[] = [];
        for (const s of this.#slots) {
          const g = s.param.grad;
          if (g !== null) this.#hasGrad.add(s.name);
          parts.push(
            g !== null ? g.reshape([-1]) : zeros([s.numel], { dtype: s.param.dtype, device: s.param.device }),
          );
          g?.dispose();
        }
        const used = parts.reduce((n, p) => n + p.numel, 0);
        if (len * size > used) {
          parts.push(
            zeros([len * size - used], {
              dtype: this.#slots[0].param.dtype,
              device: this.#slots[0].param.device,
            }),
          );
        }
        const flat = cat(parts, 0);
        const shard = zeros([len], { dtype: flat.dtype, device: flat.device });
        this.#group.reduceScatter(shard, flat, "avg");
        this.lastBytes += flat.numel * ELEMENT_SIZE[flat.dtype];
        if (clipGrad > 0) {
          norm = Math.sqrt(this.#reduce([shard.square().sum().item()], "sum")[0]);
          if (norm > clipGrad) shard.mul_(clipGrad / (norm + 1e-6));
        }
        this.#shardGrad = shard;
        this.#inner!.step(lr);
        this.#shardGrad = null;
        // the updated shard, all-gathered into the parameters
        const mine = zeros([len], { dtype: flat.dtype, device: flat.device });
        const lo = this.#group.rank * len;
        for (const [i, s] of this.#slots.filter((x) => x.own.length > 0).entries()) {
          mine.narrow(0, s.offset + s.own.start - lo, s.own.length).copy_(this.#views[i]);
        }
        const full = zeros([len * size], { dtype: flat.dtype, device: flat.device });
        this.#group.allGather(full, mine);
        this.lastBytes += mine.numel * ELEMENT_SIZE[mine.dtype];
        for (const s of this.#slots) {
          if (this.#hasGrad.has(s.name)) {
            s.param.copy_(full.narrow(0, s.offset, s.numel).reshape(s.param.shape));
          }
        }
      })
    );
    return norm;
  }

  /** Reduces small host numbers over the ranks. */
  #reduce(values: number[], op: "sum" | "max"): number[] {
    if (values.length === 0) return [];
    return scope(() => {
      const t = tensor(values, { dtype: "f64", device: this.#slots[0].param.device });
      this.#group.allReduce([t], op);
      return Array.from(t.toArray() as Float64Array);
    });
  }

  /** The full state of every parameter in the layout that has state (collective). */
  #gatherFull(): Map<string, FullState> {
    const out = new Map<string, FullState>();
    if (!this.#inner || this.#slots.length === 0) return out;
    const size = this.#group.size, len = this.#shardLen, lo = this.#group.rank * len;
    // every owner of a piece of a parameter has the same count; ranks without a piece say 0
    const have = new Set(this.#inner.stateNames);
    const counts = this.#reduce(
      this.#slots.map((s) => have.has(s.name) ? this.#inner!.stepCount(s.name) : 0),
      "max",
    );
    scope(() => {
      const sd = this.#inner!.stateDict();
      const { dtype, device } = this.#slots[0].param;
      const [ea, eas] = ["exp_avg", "exp_avg_sq"].map((k) => {
        const mine = zeros([len], { dtype, device });
        for (const s of this.#slots) {
          const t = sd[`${s.name}.${k}`];
          if (t && s.own.length > 0) mine.narrow(0, s.offset + s.own.start - lo, s.own.length).copy_(t);
        }
        const full = zeros([len * size], { dtype, device });
        this.#group.allGather(full, mine);
        return full;
      });
      this.#slots.forEach((s, i) => {
        if (counts[i] > 0) {
          out.set(s.name, {
            expAvg: keep(ea.narrow(0, s.offset, s.numel).reshape(s.param.shape).contiguous()),
            expAvgSq: keep(eas.narrow(0, s.offset, s.numel).reshape(s.param.shape).contiguous()),
            count: counts[i],
          });
        }
      });
    });
    return out;
  }

  /** Gathers the whole state onto every rank for `stateDict()` (collective; call on every rank before saving). */
  gather(): void {
    this.#dropGathered();
    const full = this.#gatherFull();
    const sd: Record<string, Tensor> = {};
    for (const [name, st] of full) {
      sd[`${name}.exp_avg`] = st.expAvg;
      sd[`${name}.exp_avg_sq`] = st.expAvgSq;
      sd[`${name}.step`] = keep(zeros([], { dtype: "f32" }).add(st.count));
    }
    this.#gathered = sd;
  }

  #dropGathered(): void {
    for (const t of Object.values(this.#gathered ?? {})) t.dispose();
    this.#gathered = null;
  }

  /** The gathered state in `AdamW.stateDict`'s format (new handles, owned by the caller); needs `gather()`. */
  stateDict(): Record<string, Tensor> {
    if (this.#gathered === null) {
      throw new TorchError("ZeroAdamW.stateDict", "call gather() on every rank first (the state is sharded)");
    }
    return Object.fromEntries(Object.entries(this.#gathered).map(([k, t]) => [k, t.alias()]));
  }

  /** Loads a full state (`AdamW`'s format, from any world size) and keeps this rank's shard of it. */
  loadStateDict(sd: Record<string, Tensor>): void {
    const names = new Set(this.#params.map((p) => p.name));
    const full = new Map<string, FullState>();
    for (const key of Object.keys(sd)) {
      const m = key.match(/^(.*)\.(exp_avg|exp_avg_sq|step)$/);
      if (!m || !names.has(m[1])) throw new TorchError("loadStateDict", `unexpected optimizer key '${key}'`);
    }
    for (const name of names) {
      const ea = sd[`${name}.exp_avg`], eas = sd[`${name}.exp_avg_sq`], st = sd[`${name}.step`];
      if (ea && eas && st) full.set(name, { expAvg: ea, expAvgSq: eas, count: st.item() });
    }
    this.#layout(full);
  }

  /** Frees the state of the named parameters (LayerLock's freezes and head re-initialisations). */
  releaseState(names: Iterable<string>): void {
    const inner = this.#inner;
    if (!inner) return;
    const have = new Set(this.#slots.filter((s) => s.own.length > 0).map((s) => s.name));
    inner.releaseState([...names].filter((n) => have.has(n)));
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const { param } of this.#params) param.zeroGrad(true);
  }

  /** Frees the shard's state and views. */
  dispose(): void {
    this.#dropLayout();
    this.#dropGathered();
  }
}
