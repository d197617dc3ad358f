/**
 * The logging window: what the training loop accumulates between two logging steps and reads once at the end
 * of each — the loss terms and their floors summed on the device, each step's loss and gradient norm kept on the
 * device for the non-finite check, the time spent waiting for data and for communication, the steps replayed
 * from a CUDA graph. Reading it is the window's only host synchronisation.
 * @module
 */
import { TorchError } from "../errors.ts";
import { noGrad } from "../torch/autograd.ts";
import { zeros } from "../torch/creation.ts";
import type { Device } from "../torch/dtype.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { Losses } from "../layerlock/objective.ts";
import { liveTensors } from "../torch/runtime.ts";
import { StageTracker } from "../layerlock/learning.ts";
import type { LayerLockStep } from "../layerlock/step.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import type { StepRecord, TrainEvent } from "./events.ts";
import type { DataParallel } from "./data_parallel.ts";
import type { MetricsLog } from "./run_folder.ts";
import type { TensorBoardWriter } from "./tensorboard.ts";

/** A non-finite loss or gradient norm found at `step` (the step being trained); caught by `train`. */
export class NonFiniteStep extends TorchError {
  constructor(readonly step: number, readonly what: string) {
    super("train", `${what} at step ${step}`);
  }
}

/** Running sums of the loss terms and their floors on the device, read once per logging window. */
export class LossMeter {
  readonly #sums: Tensor[];
  #n = [0, 0, 0, 0, 0];
  constructor(device: Device) {
    this.#sums = this.#n.map(() => zeros([], { device }));
  }
  /**
   * Adds one step's losses (detached) to the sums on the device, and returns which terms it had, for `count`: the
   * device work and the host bookkeeping are apart, so a step replayed from a CUDA graph repeats the first alone.
   */
  add(l: Losses): boolean[] {
    return noGrad(() =>
      [l.total, l.pixel, l.latent, l.pixelFloor, l.latentFloor].map((t, i) => {
        if (t) this.#sums[i].add_(t.detach());
        return t !== null;
      })
    );
  }
  /** Counts one step that had the terms `present` (what `add` returned). */
  count(present: readonly boolean[]): void {
    present.forEach((p, i) => {
      if (p) this.#n[i]++;
    });
  }
  /**
   * The window's means (null for a term that was not computed), over every rank when data parallel, and a
   * reset; a non-finite loss at `step` throws (on every rank alike).
   */
  read(
    step: number,
    dp: DataParallel | null,
  ): Pick<StepRecord, "step" | "loss" | "pixelLoss" | "latentLoss" | "pixelFloor" | "latentFloor"> {
    let sums = this.#sums.map((t, i) => this.#n[i] ? t.item() : 0), n = this.#n;
    if (dp) {
      const all = dp.sum([...sums, ...n]);
      sums = all.slice(0, sums.length);
      n = all.slice(sums.length);
    }
    const [loss, pixelLoss, latentLoss, pixelFloor, latentFloor] = sums.map((v, i) => n[i] ? v / n[i] : null);
    for (const t of this.#sums) t.zero_();
    this.#n = this.#n.map(() => 0);
    if (loss === null || !Number.isFinite(loss)) {
      throw new TorchError("train", `loss became ${loss ?? NaN} at step ${step}`);
    }
    return { step, loss, pixelLoss, latentLoss, pixelFloor, latentFloor };
  }
  /** Frees the sums. */
  dispose(): void {
    for (const t of this.#sums) t.dispose();
  }
}

/** What one training step reports to the window (see `StepRunner`). */
export interface StepDone {
  /** Which loss terms the step had (`LossMeter.add`). */
  present: boolean[];
  /** Whether it was replayed from a CUDA graph. */
  graphed: boolean;
  /** Data parallel: gradient bytes this rank communicated, and ms spent waiting for them after backward. */
  commBytes: number;
  commWaitMs: number;
}

/** The part of a log record the window measured. */
export type WindowRecord =
  & Pick<
    StepRecord,
    "step" | "loss" | "pixelLoss" | "latentLoss" | "pixelFloor" | "latentFloor" | "stepsPerSec" | "dataWaitMs"
  >
  & { graphSteps: number; commBytes: number; commWaitMs: number; steps: number; waitShare: number };

/** The steps since the last logging step. */
export class LogWindow {
  /** The loss sums, added to by each step on the device. */
  readonly meter: LossMeter;
  /** The step's outputs, written by each step on the device: its loss and (with clipping) gradient norm. */
  readonly stepOut: Tensor;
  readonly #perStep: Tensor; // [every, 2]: stepOut of each step of the window
  #steps = 0;
  #dataWaitMs = 0;
  #commBytes = 0;
  #commWaitMs = 0;
  #graphSteps = 0;
  #start = performance.now();

  constructor(device: Device, every: number) {
    this.meter = new LossMeter(device);
    this.stepOut = zeros([2], { device });
    this.#perStep = zeros([every, 2], { device });
  }

  /** Steps in the window so far. */
  get steps(): number {
    return this.#steps;
  }

  /** Waits for `next` (the next batch), counting the time as data wait. */
  async timeData<T>(next: () => Promise<T>): Promise<T> {
    const t = performance.now();
    const v = await next();
    this.#dataWaitMs += performance.now() - t;
    return v;
  }

  /** Adds a step that has just run: its outputs, kept on the device, and what it reported. */
  add(done: StepDone): void {
    scope(() => {
      this.#perStep.select(0, this.#steps).copy_(this.stepOut);
    });
    this.meter.count(done.present);
    this.#steps++;
    this.#commBytes += done.commBytes;
    this.#commWaitMs += done.commWaitMs;
    if (done.graphed) this.#graphSteps++;
  }

  /**
   * Throws NonFiniteStep for the first step of the window (ending at `step`, steps completed) whose loss or
   * gradient norm is not finite, alike on every rank (data parallel: a NaN anywhere makes the sum NaN).
   */
  checkFinite(step: number, dp: DataParallel | null): void {
    const n = this.#steps;
    if (n === 0) return;
    let v = Array.from(scope(() => this.#perStep.narrow(0, 0, n).toArray() as Float32Array));
    if (dp) v = dp.sum(v);
    for (let k = 0; k < n; k++) {
      if (!Number.isFinite(v[2 * k])) throw new NonFiniteStep(step - n + k, `the loss became ${v[2 * k]}`);
      if (!Number.isFinite(v[2 * k + 1])) {
        throw new NonFiniteStep(step - n + k, `the gradient norm became ${v[2 * k + 1]}`);
      }
    }
  }

  /** The window's measurements at `step` (after the non-finite check), and a new, empty window. */
  close(step: number, dp: DataParallel | null): WindowRecord {
    this.checkFinite(step, dp);
    const now = performance.now(), ms = Math.max(1e-9, now - this.#start), n = this.#steps;
    const r: WindowRecord = {
      ...this.meter.read(step, dp),
      stepsPerSec: n / (ms / 1000),
      dataWaitMs: this.#dataWaitMs / n,
      waitShare: this.#dataWaitMs / ms,
      graphSteps: this.#graphSteps,
      commBytes: this.#commBytes / n,
      commWaitMs: this.#commWaitMs / n,
      steps: n,
    };
    this.#steps =
      this.#graphSteps =
      this.#commBytes =
      this.#commWaitMs =
      this.#dataWaitMs =
        0;
    return r;
  }

  /** Starts the window's clock (after measurements that must not count as training time). */
  restartClock(): void {
    this.#start = performance.now();
  }

  /** Frees the device buffers. */
  dispose(): void {
    this.meter.dispose();
    this.stepOut.dispose();
    this.#perStep.dispose();
  }
}

/** What a `Reporter` reads besides the window. */
export interface ReporterContext {
  llStep: LayerLockStep;
  /** CUDA graphs captured so far (null: none used). */
  graphCaptures: () => number | null;
  dp: DataParallel | null;
  /** metrics.jsonl (null: not this rank's to write). */
  metrics: MetricsLog | null;
  /** The TensorBoard events file that gets each record's numbers too (`log.tensorboard`; absent or null: none). */
  tensorboard?: TensorBoardWriter | null;
  emit: (e: TrainEvent) => void;
  /** The run's length and its data-wait warning threshold (`log.dataWaitWarn`), and clips per step and rank. */
  totalSteps: number;
  dataWaitWarn: number;
  batchSize: number;
  /** Measurements of the model due at a step (`TrainOptions.evaluate`), or null when none is due. */
  evaluate: (step: number) => Record<string, number> | null;
}

/**
 * Turns each closed logging window into the step's record: written to metrics.jsonl (its numbers to TensorBoard
 * too, with `log.tensorboard`), kept in `losses`, sent as a `log` event (the progress line); a latent stage that
 * ended is reported with its verdict (`stageEnd`), and a run that mostly waits on data is warned about, at most
 * once per 10 windows.
 */
export class Reporter {
  /** The loss logged at each logging step of this invocation, with its terms and the frozen depth. */
  readonly losses: {
    step: number;
    loss: number;
    pixel: number | null;
    latent: number | null;
    frozenDepth: number;
  }[] = [];
  /** Files the data source found unreadable (their clips were replaced). */
  readonly skippedFiles: string[] = [];
  readonly #stages = new StageTracker();
  readonly #t0 = performance.now();
  #sinceWarning = Infinity;

  constructor(readonly ctx: ReporterContext, readonly startStep: number) {}

  /** Logs the window `w` that ended at `step`, trained at learning rate `lr` in its last step. */
  log(w: WindowRecord, lr: number): StepRecord {
    const c = this.ctx, dp = c.dp, step = w.step, now = performance.now();
    const captures = c.graphCaptures();
    const record: StepRecord = {
      step,
      loss: w.loss,
      pixelLoss: w.pixelLoss,
      latentLoss: w.latentLoss,
      pixelFloor: w.pixelFloor,
      latentFloor: w.latentFloor,
      lr,
      time: (now - this.#t0) / 1000,
      stepsPerSec: w.stepsPerSec,
      frozenDepth: c.llStep.frozenDepth,
      target: c.llStep.targetName(step - 1),
      ...(c.llStep.trigger ? { convergenceCka: c.llStep.lastCka } : {}),
      liveTensors: liveTensors(),
      dataWaitMs: w.dataWaitMs,
      ...(this.skippedFiles.length ? { skippedFiles: this.skippedFiles.length } : {}),
      ...(captures !== null ? { graphSteps: w.graphSteps, graphCaptures: captures } : {}),
      ...(dp
        ? {
          worldSize: dp.size,
          globalBatch: dp.size * c.batchSize,
          commBytes: w.commBytes,
          commWaitMs: w.commWaitMs,
        }
        : {}),
    };
    const ev = c.evaluate(step);
    if (ev) record.eval = ev;
    this.#stageEnded(this.#stages.add(record));
    const { loss, pixelLoss: pixel, latentLoss: latent, frozenDepth } = record;
    this.losses.push({ step, loss, pixel, latent, frozenDepth });
    c.metrics?.write(record);
    c.tensorboard?.scalars(step, record);
    const rate = (step - this.startStep) / ((now - this.#t0) / 1000);
    c.emit({ kind: "log", record, totalSteps: c.totalSteps, eta: (c.totalSteps - step) / rate });
    this.#sinceWarning++;
    if (w.waitShare > c.dataWaitWarn && this.#sinceWarning >= 10) {
      c.emit({ kind: "slowData", step, share: w.waitShare, waitMs: w.dataWaitMs! });
      this.#sinceWarning = 0;
    }
    return record;
  }

  /** At the end of the run: the verdict of the latent stage in progress. */
  finish(): void {
    this.#stageEnded(this.#stages.finish());
  }

  #stageEnded(verdict: ReturnType<StageTracker["finish"]>): void {
    if (verdict) this.ctx.emit({ kind: "stageEnd", verdict });
  }
}

/** Runs `fn` with the model in eval mode and under no-grad, restoring training mode (frozen blocks stay in eval). */
export function evaluateIn<T>(model: VideoMAE, fn: () => T): T {
  const modes = model.encoder.blocks.items.map((b) => b.training);
  model.eval();
  try {
    return noGrad(() => scope(fn));
  } finally {
    model.train();
    model.encoder.blocks.items.forEach((b, i) => b.train(modes[i]));
  }
}
