/**
 * How a run trains one step, chosen once when the run starts (`stepRunnerFor`): eagerly on one process, from a
 * CUDA graph per schedule stage, data parallel with an all-reduce of the gradients, or data parallel with ZeRO-1's
 * sharded AdamW. Each runner does the same step — the loss of the batch (LayerLock's objective at this step),
 * backward, gradient clipping, the optimiser, gradients dropped — and writes the step's loss and gradient norm
 * into the logging window's device buffer; none reads anything back to the host.
 * @module
 */
import { ConfigError } from "../errors.ts";
import type { TrainConfig } from "../config.ts";
import { normalizeClips } from "../data/clip_tensor.ts";
import type { LayerLockStep } from "../layerlock/step.ts";
import type { AdamW } from "../optim/adamw.ts";
import { ZeroAdamW } from "../optim/zero.ts";
import { zeros } from "../torch/creation.ts";
import type { Device } from "../torch/dtype.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { DataParallel } from "./data_parallel.ts";
import type { LogWindow, StepDone } from "./log_window.ts";
import { cudaBackend, emulatedBackend, GraphCaptureError, StepGraphs } from "./step_graph.ts";

/** The batch of a step, on the device: uint8 pixels and their normalisation (see `StaticInput`). */
export interface StepInput {
  u8: Tensor;
  affine: { scale: Tensor; shift: Tensor };
  /** Changes when the buffers change (a new shape or normalisation). */
  key: string;
}

/** One step to train. */
export interface StepArgs {
  /** The batch. */
  input: StepInput;
  /** The step (0-based). */
  step: number;
  /** Its learning rate. */
  lr: number;
  /** What stays fixed while the schedule stage does (a graph is captured per stage). */
  stage: string;
  /** Make the loss NaN (`debug.nanAtSteps`, for tests of the non-finite policy). */
  injectNaN: boolean;
}

/** Trains one step at a time. */
export interface StepRunner {
  /** What the runner does, in a few words (for logs). */
  readonly kind: string;
  /** Trains one step. */
  run(a: StepArgs): StepDone;
  /** CUDA graphs captured so far (null: the runner does not use graphs, or no longer, after a failed capture). */
  readonly graphCaptures: number | null;
  /** Frees what the runner made (the optimiser is the caller's). */
  dispose(): void;
}

/** The loss of the batch and its backward; the loss into the window's step output. Device work only. */
function lossBackward(
  llStep: LayerLockStep,
  window: LogWindow,
  a: Omit<StepArgs, "lr" | "stage">,
): boolean[] {
  return scope(() => {
    const l = llStep.loss(normalizeClips(a.input.u8, a.input.affine), a.step);
    if (a.injectNaN) l.total = l.total.mul(NaN);
    l.total.backward();
    window.stepOut.select(0, 0).copy_(l.total.detach());
    return window.meter.add(l);
  });
}

/** Clips the gradients (the norm into the window's step output) and steps AdamW at the device learning rate. */
function clipAndStep(opt: AdamW, clipGrad: number, window: LogWindow, lr: Tensor): void {
  if (clipGrad > 0) {
    using norm = opt.clipGradNorm(clipGrad);
    scope(() => {
      window.stepOut.select(0, 1).copy_(norm);
    });
  }
  opt.step(lr);
  opt.zeroGrad();
}

/** One process, eager: the learning rate is a device tensor, filled before the step. */
export class EagerStep implements StepRunner {
  readonly kind = "eager";
  readonly graphCaptures = null;
  /** The learning rate on the device (read by the fused AdamW there). */
  readonly lr: Tensor;
  constructor(
    readonly llStep: LayerLockStep,
    readonly opt: AdamW,
    readonly window: LogWindow,
    readonly clipGrad: number,
    device: Device,
  ) {
    this.lr = zeros([], { device });
  }
  run(a: StepArgs): StepDone {
    this.lr.fill_(a.lr);
    return { present: this.deviceStep(a), graphed: false, commBytes: 0, commWaitMs: 0 };
  }
  /** The step's device work, capturable: it reads the learning rate from `lr`, set beforehand. */
  deviceStep(a: Omit<StepArgs, "lr" | "stage">): boolean[] {
    const present = lossBackward(this.llStep, this.window, a);
    clipAndStep(this.opt, this.clipGrad, this.window, this.lr);
    return present;
  }
  dispose(): void {
    this.lr.dispose();
  }
}

/**
 * One process, a CUDA graph per schedule stage (`StepGraphs`): a stage's first steps eagerly, then one capture,
 * then replays; a failed capture warns once and the run goes on eagerly.
 */
export class GraphedStep implements StepRunner {
  readonly kind = "graphed";
  #graphs: StepGraphs | null;
  #present: boolean[] = [];
  constructor(readonly eager: EagerStep, graphs: StepGraphs, readonly warn: (message: string) => void) {
    this.#graphs = graphs;
  }
  get graphCaptures(): number | null {
    return this.#graphs?.stats.captures ?? null;
  }
  run(a: StepArgs): StepDone {
    const graphs = this.#graphs;
    if (!graphs || a.injectNaN) return this.eager.run(a);
    this.eager.lr.fill_(a.lr);
    const at = { input: a.input, step: a.step, injectNaN: false }; // fixed at the capture: the stage's values
    try {
      const how = graphs.run(`${a.stage}|${a.input.key}`, () => {
        this.#present = this.eager.deviceStep(at);
      });
      return { present: this.#present, graphed: how !== "warmup", commBytes: 0, commWaitMs: 0 };
    } catch (e) {
      if (!(e instanceof GraphCaptureError)) throw e;
      this.warn(`${e.message}; training goes on without CUDA graphs (graphs.mode=off turns them off)`);
      graphs.dispose();
      this.#graphs = null;
      this.eager.opt.zeroGrad(); // gradients a failed capture may have left
      return this.eager.run(a);
    }
  }
  dispose(): void {
    this.#graphs?.dispose();
    this.eager.dispose();
  }
}

/** Data parallel: the gradients of the parameters that train now are averaged over the ranks in buckets. */
export class DataParallelStep implements StepRunner {
  readonly kind = "data parallel";
  readonly graphCaptures = null;
  readonly #eager: EagerStep;
  constructor(eager: EagerStep, readonly dp: DataParallel, readonly params: readonly Tensor[]) {
    this.#eager = eager;
  }
  run(a: StepArgs): StepDone {
    const e = this.#eager;
    e.lr.fill_(a.lr);
    this.dp.prepare(this.params.filter((p) => p.requiresGrad)); // what trains now (rebuilt after a freeze)
    const present = lossBackward(e.llStep, e.window, a); // buckets all-reduced as their gradients are ready
    const r = this.dp.finish(); // every gradient is now the mean over the ranks
    clipAndStep(e.opt, e.clipGrad, e.window, e.lr);
    return { present, graphed: false, commBytes: r.bytes, commWaitMs: r.waitMs };
  }
  dispose(): void {
    this.#eager.dispose();
  }
}

/** Data parallel with ZeRO-1: AdamW's moments sharded; it reduce-scatters, clips, steps and all-gathers itself. */
export class ZeroStep implements StepRunner {
  readonly kind = "ZeRO-1";
  readonly graphCaptures = null;
  constructor(
    readonly llStep: LayerLockStep,
    readonly opt: ZeroAdamW,
    readonly window: LogWindow,
    readonly clipGrad: number,
  ) {}
  run(a: StepArgs): StepDone {
    const present = lossBackward(this.llStep, this.window, a);
    this.opt.step(a.lr, this.clipGrad);
    this.opt.zeroGrad();
    return { present, graphed: false, commBytes: this.opt.lastBytes, commWaitMs: 0 };
  }
  dispose(): void {}
}

/**
 * The runner of a run: ZeRO-1 or the all-reduce when data parallel, else CUDA graphs as `cfg.graphs.mode` asks
 * (`auto`: on a CUDA device when nothing rules them out, warning why when something does; `on` and `emulate`
 * refuse to run otherwise, with a ConfigError naming why), else eager.
 */
export function stepRunnerFor(
  cfg: TrainConfig,
  device: Device,
  llStep: LayerLockStep,
  opt: AdamW | ZeroAdamW,
  params: readonly Tensor[],
  window: LogWindow,
  dp: DataParallel | null,
  warn: (message: string) => void,
): StepRunner {
  const clip = cfg.optim.clipGrad;
  if (opt instanceof ZeroAdamW) return new ZeroStep(llStep, opt, window, clip);
  const eager = new EagerStep(llStep, opt, window, clip, device);
  const plain = () => dp ? new DataParallelStep(eager, dp, params) : eager;
  const mode = cfg.graphs.mode;
  if (mode === "off" || (mode === "auto" && device === "cpu")) return plain();
  const against: string[] = [];
  if (mode === "on" && device === "cpu") {
    against.push("the device is the CPU (graphs.mode=emulate runs the graph path there)");
  }
  if (dp) against.push("data-parallel steps run eagerly (their all-reduce is not captured)");
  if (opt.impl === "foreach") against.push('the "foreach" AdamW reads its step count on the host');
  if (llStep.hostScalarsVary) {
    against.push(
      "a loss weight changes at every step (latent-unfrozen's cosine weight, layerlock.pixelFade)",
    );
  }
  if (against.length > 0) {
    const why = `CUDA graphs cannot be used: ${against.join("; ")}`;
    if (mode !== "auto") {
      eager.dispose();
      throw new ConfigError("graphs.mode", `graphs.mode=${mode}: ${why}`);
    }
    warn(`${why}; training eagerly`);
    return plain();
  }
  const backend = mode === "emulate" ? emulatedBackend(cfg.debug.failCapture) : cudaBackend(device);
  return new GraphedStep(eager, new StepGraphs(backend, cfg.graphs.warmup), warn);
}
