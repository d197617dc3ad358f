/**
 * `Module`: the base of every layer and model, in the manner of torch.nn.Module. A module owns its parameters,
 * buffers and child modules, names them hierarchically (`blocks.0.attn.qkv.weight`), and frees them in
 * `dispose()`. Parameters are never owned by a scope.
 * @module
 */
import { TorchError } from "../errors.ts";
import { noGrad } from "../torch/autograd.ts";
import type { Device, DType } from "../torch/dtype.ts";
import { isFloating } from "../torch/dtype.ts";
import { keep } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";

/** What `loadStateDict` found wrong, when not strict. */
export interface LoadReport {
  /** Keys the module has but the state dict lacks. */
  missing: string[];
  /** Keys the state dict has but the module lacks. */
  unexpected: string[];
  /** Keys whose shapes differ, with both shapes. */
  misShaped: string[];
}

interface BufferEntry {
  tensor: Tensor;
  persistent: boolean;
}

/** The base class of layers and models. */
export class Module {
  #params = new Map<string, Tensor>();
  #buffers = new Map<string, BufferEntry>();
  #children = new Map<string, Module>();
  #training = true;

  /** Registers (and takes ownership of) a parameter: it requires grad and leaves any scope. */
  protected param(name: string, t: Tensor): Tensor {
    this.#checkName(name);
    keep(t);
    if (!t.requiresGrad) t.requiresGrad_(true);
    this.#params.set(name, t);
    return t;
  }

  /** Registers (and takes ownership of) a buffer; non-persistent buffers are left out of `stateDict`. */
  protected buffer(name: string, t: Tensor, persistent = true): Tensor {
    this.#checkName(name);
    keep(t);
    this.#buffers.set(name, { tensor: t, persistent });
    return t;
  }

  /** Registers a child module under `name`. */
  protected child<M extends Module>(name: string, m: M): M {
    this.#checkName(name);
    this.#children.set(name, m);
    return m;
  }

  #checkName(name: string): void {
    if (name === "" || name.includes(".")) throw new TorchError("Module", `invalid member name '${name}'`);
    if (this.#params.has(name) || this.#buffers.has(name) || this.#children.has(name)) {
      throw new TorchError("Module", `'${name}' is already registered`);
    }
  }

  /** The direct children, by name. */
  children(): [string, Module][] {
    return [...this.#children];
  }

  /** Every parameter of this module and its descendants, with its hierarchical name, in registration order. */
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.#params) out.push([prefix + n, t]);
    for (const [n, c] of this.#children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** Every parameter (owned by the module: do not dispose). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Every buffer with its hierarchical name. */
  namedBuffers(prefix = "", persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, b] of this.#buffers) if (!persistentOnly || b.persistent) out.push([prefix + n, b.tensor]);
    for (const [n, c] of this.#children) out.push(...c.namedBuffers(`${prefix}${n}.`, persistentOnly));
    return out;
  }

  /** The number of parameter elements (optionally only trainable ones). */
  numParameters(trainableOnly = false): number {
    let n = 0;
    for (const p of this.parameters()) if (!trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  /** Parameters and persistent buffers by name. The tensors are the module's own: do not dispose them. */
  stateDict(): Record<string, Tensor> {
    const sd: Record<string, Tensor> = {};
    for (const [n, t] of this.namedParameters()) sd[n] = t;
    for (const [n, t] of this.namedBuffers("", true)) sd[n] = t;
    return sd;
  }

  /**
   * Copies values from `sd` into the module's tensors (converting dtype/device as needed). Strict by default:
   * any missing, unexpected or mis-shaped key is an error that lists them all; nothing is copied then.
   */
  loadStateDict(sd: Record<string, Tensor>, { strict = true } = {}): LoadReport {
    const own = this.stateDict();
    const report: LoadReport = { missing: [], unexpected: [], misShaped: [] };
    for (const k of Object.keys(own)) if (!(k in sd)) report.missing.push(k);
    for (const k of Object.keys(sd)) if (!(k in own)) report.unexpected.push(k);
    for (const [k, t] of Object.entries(own)) {
      if (!(k in sd)) continue;
      const a = t.shape, b = sd[k].shape;
      if (a.length !== b.length || a.some((v, i) => v !== b[i])) {
        report.misShaped.push(`${k}: expected [${a.join(", ")}], got [${b.join(", ")}]`);
      }
    }
    const bad = report.missing.length + report.unexpected.length + report.misShaped.length;
    if (strict && bad > 0) {
      const parts = [];
      if (report.missing.length) parts.push(`missing keys: ${report.missing.join(", ")}`);
      if (report.unexpected.length) parts.push(`unexpected keys: ${report.unexpected.join(", ")}`);
      if (report.misShaped.length) parts.push(`mis-shaped: ${report.misShaped.join("; ")}`);
      throw new TorchError("loadStateDict", parts.join("; "));
    }
    const mis = new Set(report.misShaped.map((s) => s.slice(0, s.indexOf(":"))));
    noGrad(() => {
      for (const [k, t] of Object.entries(own)) if (k in sd && !mis.has(k)) t.copy_(sd[k]);
    });
    return report;
  }

  /** Whether the module is in training mode. */
  get training(): boolean {
    return this.#training;
  }

  /** Sets training mode (dropout active) on this module and its descendants. */
  train(mode = true): this {
    this.#training = mode;
    for (const c of this.#children.values()) c.train(mode);
    return this;
  }

  /** Sets evaluation mode on this module and its descendants. */
  eval(): this {
    return this.train(false);
  }

  /** Sets requiresGrad on every parameter of this module and its descendants. */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad_(flag);
    return this;
  }

  /**
   * Moves parameters and buffers to a device and/or converts floating ones to a dtype, replacing the tensors
   * (an optimizer built before this holds the old ones: move first, then build the optimizer). Layers reach
   * their tensors through `own(name)`, so they always see the current ones.
   */
  to(opts: { device?: Device; dtype?: DType }): this {
    noGrad(() => {
      for (const [n, t] of this.#params) {
        const dtype = opts.dtype && isFloating(t.dtype) ? opts.dtype : undefined;
        const moved = keep(t.to({ device: opts.device, dtype }));
        if (t.requiresGrad && !moved.requiresGrad) moved.requiresGrad_(true);
        t.dispose(); // `moved` holds its own reference (the same tensor when nothing changed)
        this.#params.set(n, moved);
      }
      for (const [n, b] of this.#buffers) {
        const dtype = opts.dtype && isFloating(b.tensor.dtype) ? opts.dtype : undefined;
        const moved = keep(b.tensor.to({ device: opts.device, dtype }));
        b.tensor.dispose();
        this.#buffers.set(n, { tensor: moved, persistent: b.persistent });
      }
    });
    for (const c of this.#children.values()) c.to(opts);
    return this;
  }

  /** The tensor registered under a direct parameter or buffer name (after `to`, the new one). */
  protected own(name: string): Tensor {
    const t = this.#params.get(name) ?? this.#buffers.get(name)?.tensor;
    if (!t) throw new TorchError("Module", `no parameter or buffer '${name}'`);
    return t;
  }

  /** Frees every parameter and buffer of this module and its descendants. Idempotent. */
  dispose(): void {
    for (const t of this.#params.values()) t.dispose();
    for (const b of this.#buffers.values()) b.tensor.dispose();
    for (const c of this.#children.values()) c.dispose();
  }

  /** Frees everything at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** An indexed list of child modules, named "0", "1", ... in the state dict (torch.nn.ModuleList). */
export class ModuleList<M extends Module> extends Module {
  /** The modules, in order. */
  readonly items: readonly M[];
  /** Registers the given modules as children "0", "1", .... */
  constructor(items: M[]) {
    super();
    items.forEach((m, i) => this.child(String(i), m));
    this.items = items;
  }
  /** The number of modules. */
  get length(): number {
    return this.items.length;
  }
}
