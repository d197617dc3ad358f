/**
 * The training loop (`deno task train`), one for every mode: data → mask → the LayerLock schedule (freeze blocks,
 * pick targets) → forward → loss → backward → AdamW, with a warmup-cosine learning rate (times the schedule's
 * mini-warmup factor), a live progress line, `metrics.jsonl`, periodic checkpoints, exact resumption, and a clean
 * stop on Ctrl-C (a checkpoint is saved first).
 * @module
 */
import { IoError, LayerlockError, TorchError } from "../errors.ts";
import { noGrad } from "../torch/autograd.ts";
import type { Device } from "../torch/dtype.ts";
import { scope } from "../torch/scope.ts";
import { liveTensors, manualSeed, setNumThreads } from "../torch/runtime.ts";
import { zeros } from "../torch/creation.ts";
import type { Tensor } from "../torch/tensor.ts";
import { modelConfig, type TrainConfig } from "../config.ts";
import { resolveDevice } from "./device.ts";
import { type ClipBatch, normalizeClips } from "../data/clip.ts";
import type { Losses } from "../layerlock/objective.ts";
import { LayerLockStep, type StepCheckpoint } from "../layerlock/step.ts";
import { VideoMAE } from "../models/video_mae.ts";
import type { Module } from "../nn/module.ts";
import { AdamW, type ParamOptimizer } from "../optim/adamw.ts";
import { ZeroAdamW } from "../optim/zero.ts";
import { lrSchedule, scaledLr } from "../optim/schedule.ts";
import {
  listCheckpoints,
  loadCheckpoint,
  readCheckpointMeta,
  saveCheckpoint,
  verifyCheckpoint,
} from "./checkpoint.ts";
import { printEvent, type StepRecord, type TrainEvent } from "./events.ts";
import { StageTracker } from "../layerlock/learning.ts";
import type { DataParallel } from "./data_parallel.ts";
import { cudaBackend, emulatedBackend, GraphCaptureError, StaticInput, StepGraphs } from "./step_graph.ts";
import type { Shard } from "../data/sampler.ts";

/** A source of training batches whose position can be saved and restored. */
export interface BatchSource {
  /** The next batch. */
  next(): Promise<ClipBatch>;
  /** The state that reproduces the batches from the next one on (JSON). */
  state(): unknown;
  /** Stops any background work. */
  close(): void;
}

/** What `train` needs besides the configuration. */
export interface TrainOptions {
  /** The run directory (runs/<name>). */
  runDir: string;
  /** Continue from the newest checkpoint in runDir. */
  resume: boolean;
  /**
   * Makes the batch source, restored to `state` when resuming; data parallel, `shard` is this rank's share of
   * each global batch.
   */
  data: (cfg: TrainConfig, state: unknown | null, shard?: Shard) => BatchSource | Promise<BatchSource>;
  /**
   * Data-parallel training: this process's part of a job (see `DataParallel`; owned by the caller). Every rank
   * trains `optim.batchSize` clips per step; rank 0 alone writes metrics and checkpoints.
   */
  dist?: DataParallel | null;
  /** Receives every event (default: `printEvent`, progress on stderr); see src/train/events.ts. */
  onEvent?: (e: TrainEvent) => void;
  /** Stop after this many steps of this invocation (for tests of resumption); the schedule is unchanged. */
  stopAfter?: number;
  /**
   * Measurements taken every `every` steps (and at the last step) on the model, in eval mode and under no-grad,
   * written into that step's metrics record as `eval` (e.g. collapse metrics of the features).
   */
  evaluate?: { every: number; fn: (model: VideoMAE, step: number) => Record<string, number> };
  /**
   * `n` clips of the training distribution drawn outside the training stream (e.g. the dataset under another
   * seed), from which the trivial floors of the losses are estimated (`log.floorClips` of them; none: no floors).
   */
  floorClips?: (n: number) => Promise<ClipBatch>;
}

/** The outcome of a run. */
export interface TrainResult {
  /** Steps completed in total (including before a resume). */
  step: number;
  /** The loss logged at each logging step of this invocation, with its terms and the frozen depth. */
  losses: { step: number; loss: number; pixel: number | null; latent: number | null; frozenDepth: number }[];
  /** Whether the run was interrupted (Ctrl-C or SIGTERM). */
  interrupted: boolean;
  /** The signal that interrupted it, if any (the command line exits 130 for SIGINT, 143 for SIGTERM). */
  signal: "SIGINT" | "SIGTERM" | null;
  /** The last checkpoint written. */
  checkpoint: string | null;
  /** Files the data source found unreadable during this invocation (their clips were replaced). */
  skippedFiles: string[];
  /** Steps whose batch was skipped because it had made the loss non-finite. */
  skippedSteps: number[];
  /** Rollbacks after non-finite steps in this invocation (nonFinite.policy "rollback"). */
  rollbacks: number;
}

/** Running sums of the loss terms and their floors on the device, read once per logging window (its only syncs). */
class LossMeter {
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

/** Runs `fn` with the model in eval mode and under no-grad, restoring training mode (frozen blocks stay in eval). */
function evaluateIn<T>(model: VideoMAE, fn: () => T): T {
  const modes = model.encoder.blocks.items.map((b) => b.training);
  model.eval();
  try {
    return noGrad(() => scope(fn));
  } finally {
    model.train();
    model.encoder.blocks.items.forEach((b, i) => b.train(modes[i]));
  }
}

/**
 * The step graphs `cfg.graphs` asks for on `device`, or null for eager steps. `auto` uses CUDA graphs on a CUDA
 * device when nothing rules them out and says why when something does; `on` and `emulate` make that an error.
 */
function stepGraphsFor(
  cfg: TrainConfig,
  device: Device,
  opt: ParamOptimizer,
  llStep: LayerLockStep,
  dp: DataParallel | null,
  emit: (e: TrainEvent) => void,
): StepGraphs | null {
  const mode = cfg.graphs.mode;
  if (mode === "off" || (mode === "auto" && device === "cpu")) return null;
  const against: string[] = [];
  if (mode === "on" && device === "cpu") {
    against.push("the device is the CPU (graphs.mode=emulate runs the graph path there)");
  }
  if (dp) against.push("data-parallel steps run eagerly (their all-reduce is not captured)");
  if (!(opt instanceof AdamW)) against.push("the optimiser is not AdamW");
  else if (opt.impl === "foreach") against.push('the "foreach" AdamW reads its step count on the host');
  if (llStep.hostScalarsVary) {
    against.push(
      "a loss weight changes at every step (latent-unfrozen's cosine weight, layerlock.pixelFade)",
    );
  }
  if (against.length > 0) {
    const why = `CUDA graphs cannot be used: ${against.join("; ")}`;
    if (mode !== "auto") throw new TorchError("train", `graphs.mode=${mode}: ${why}`);
    emit({ kind: "warning", message: `${why}; training eagerly` });
    return null;
  }
  return new StepGraphs(
    mode === "emulate" ? emulatedBackend(cfg.debug.failCapture) : cudaBackend(device),
    cfg.graphs.warmup,
  );
}

/** The step a checkpoint file was saved at (from its name). */
function stepOfCheckpoint(path: string): number {
  return Number(path.match(/step_(\d+)\.safetensors$/)![1]);
}

/**
 * The newest of `checkpoints` (oldest first) that reads back as written (`verifyCheckpoint`: its checksums, or
 * for older files its structure), passing over newer ones that do not (cut, corrupt), each named through
 * `warn`. An IoError naming every file when none does.
 */
export function newestIntact(checkpoints: readonly string[], warn: (message: string) => void): string {
  const why: string[] = [];
  for (let i = checkpoints.length - 1; i >= 0; i--) {
    const path = checkpoints[i];
    try {
      verifyCheckpoint(path); // checksums (or, for older files, structure), and no tensor made
      if (why.length) warn(`resuming from ${path}: the newer ${why.join("; ")}`);
      return path;
    } catch (e) {
      if (!(e instanceof LayerlockError)) throw e;
      why.push(`${path} is unreadable (${e.message.split("\n")[0]})`);
    }
  }
  throw new IoError(checkpoints[0] ?? "checkpoints", `no checkpoint can be read: ${why.join("; ")}`);
}

/** Removes the temporary files of checkpoint writes a kill interrupted (`*.safetensors.tmp`). */
function removeStaleTemporaries(dir: string): void {
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && e.name.endsWith(".safetensors.tmp")) Deno.removeSync(`${dir}/${e.name}`);
    }
  } catch { /* no folder yet, or not ours to clean: the checkpoints themselves are checked on resume */ }
}

/** Cuts the records of steps after `step` from a metrics.jsonl file (atomically; an absent file stays absent). */
export function cutMetrics(path: string, step: number): void {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new IoError(path, `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  const kept = text.split("\n").filter((line) => {
    if (!line.trim()) return false;
    try {
      const s = JSON.parse(line).step;
      return typeof s !== "number" || s <= step;
    } catch {
      return false; // a line cut by the kill
    }
  });
  const out = kept.length ? kept.join("\n") + "\n" : "";
  if (out === text) return;
  Deno.writeTextFileSync(`${path}.tmp`, out);
  Deno.renameSync(`${path}.tmp`, path);
}

/** A non-finite loss or gradient norm found at `step` (the step being trained); caught by `train`. */
class NonFiniteStep extends TorchError {
  constructor(readonly step: number, readonly what: string) {
    super("train", `${what} at step ${step}`);
  }
}

/** What recovery from non-finite steps carries across rollbacks (and, in checkpoints, across resumes). */
interface Recovery {
  /** Steps whose batch is drawn and discarded (it made the loss non-finite). */
  skip: Set<number>;
  /** debug.nanAtSteps already injected (each once). */
  injected: Set<number>;
  /** Product of nonFinite.lrScale over the rollbacks so far. */
  lrFactor: number;
  /** Rollbacks in this invocation. */
  rollbacks: number;
  /** metrics.jsonl records to write once the file has been cut back to the checkpoint's step. */
  pending: Record<string, unknown>[];
}

/**
 * Trains the video MAE described by `cfg`. A non-finite loss (or gradient norm, with clipping) is found at the
 * next logging or saving step from per-step values kept on the device, before any checkpoint is written; then
 * `nonFinite.policy` `stop` ends the run with an error naming the step (every checkpoint predates it), and
 * `rollback` reloads the newest checkpoint (or starts again when there is none), discards the offending batch
 * when its step comes round again, scales the learning rate by `nonFinite.lrScale`, and goes on — at most
 * `nonFinite.maxRollbacks` times — recording each rollback in metrics.jsonl (`event: "rollback"`).
 */
export async function train(cfg: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const rec: Recovery = { skip: new Set(), injected: new Set(), lrFactor: 1, rollbacks: 0, pending: [] };
  const rank0 = !opts.dist || opts.dist.rank === 0;
  const emit = rank0 ? opts.onEvent ?? printEvent : () => {};
  let resume = opts.resume;
  for (;;) {
    try {
      return { ...(await trainOnce(cfg, { ...opts, resume }, rec)), rollbacks: rec.rollbacks };
    } catch (e) {
      if (!(e instanceof NonFiniteStep)) throw e;
      const ckpts = listCheckpoints(`${opts.runDir}/checkpoints`);
      const newest = ckpts.length ? ckpts[ckpts.length - 1] : null;
      if (cfg.nonFinite.policy === "stop") {
        throw new TorchError(
          "train",
          `${e.message}; the checkpoints were written before it and are intact (newest: ${
            newest ?? "none"
          }); ` +
            "--set nonFinite.policy=rollback recovers from the newest one automatically",
        );
      }
      if (rec.rollbacks >= cfg.nonFinite.maxRollbacks) {
        throw new TorchError(
          "train",
          `${e.message}, after ${rec.rollbacks} rollback(s) (nonFinite.maxRollbacks); the checkpoints are intact ` +
            `(newest: ${newest ?? "none"})`,
        );
      }
      rec.rollbacks++;
      rec.skip.add(e.step);
      rec.lrFactor *= cfg.nonFinite.lrScale;
      const from = newest ? stepOfCheckpoint(newest) : 0;
      rec.pending.push({
        event: "rollback",
        step: from,
        badStep: e.step,
        what: e.what,
        from: newest,
        rollbacks: rec.rollbacks,
        lrFactor: rec.lrFactor,
        skip: [...rec.skip],
      });
      emit({
        kind: "warning",
        message:
          `${e.message}: rolling back to ${newest ?? "the start"} (rollback ${rec.rollbacks} of at most ` +
          `${cfg.nonFinite.maxRollbacks}); the batch of step ${e.step} will be skipped` +
          (rec.lrFactor !== 1 ? `, lr × ${rec.lrFactor}` : ""),
      });
      resume = newest !== null;
    }
  }
}

/** One attempt of `train`: from the start or the newest intact checkpoint to the end, or a NonFiniteStep. */
async function trainOnce(
  cfg: TrainConfig,
  opts: TrainOptions,
  rec: Recovery,
): Promise<Omit<TrainResult, "rollbacks">> {
  const dp = opts.dist ?? null, rank0 = !dp || dp.rank === 0;
  const shard = dp ? { rank: dp.rank, size: dp.size } : undefined;
  const emit = rank0 ? opts.onEvent ?? printEvent : () => {};
  const device = resolveDevice(cfg, dp?.localRank);
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  const ckptDir = `${opts.runDir}/checkpoints`;
  if (rank0) removeStaleTemporaries(ckptDir);
  const existing = listCheckpoints(ckptDir);
  if (!opts.resume && existing.length > 0) {
    throw new TorchError(
      "train",
      `${opts.runDir} already holds checkpoints; pass --resume to continue it, or choose another --name`,
    );
  }
  if (opts.resume && existing.length === 0) throw new TorchError("train", `nothing to resume in ${ckptDir}`);
  // Resume from the newest checkpoint that reads back whole; a cut or corrupt newer one is passed over, named.
  const resumeFrom = opts.resume
    ? newestIntact(existing, (m) => emit({ kind: "warning", message: m }))
    : null;

  // The run folder and its metrics file come first (rank 0's): a failure here leaves nothing behind. On resume,
  // records past the checkpoint's step (logged before a kill, trained again now) are cut from metrics.jsonl.
  let metrics: Deno.FsFile | null = null;
  try {
    if (rank0) {
      Deno.mkdirSync(opts.runDir, { recursive: true });
      const path = `${opts.runDir}/metrics.jsonl`;
      if (resumeFrom) cutMetrics(path, stepOfCheckpoint(resumeFrom));
      else if (rec.rollbacks > 0) cutMetrics(path, 0); // rolled back to the start: keep the rollback records
      else Deno.writeTextFileSync(path, ""); // a fresh start (no checkpoint yet): no records of an earlier try
      metrics = Deno.openSync(path, { append: true, create: true });
      for (const r of rec.pending.splice(0)) {
        metrics.writeSync(new TextEncoder().encode(JSON.stringify(r) + "\n"));
      }
    }
  } catch (e) {
    throw new IoError(
      opts.runDir,
      `cannot write the run folder ${opts.runDir}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  // Held-out clips for the loss floors and the convergence trigger, fetched before anything native is made.
  const heldOutCount = LayerLockStep.heldOutClips(cfg);
  let heldOut: ClipBatch | null = null;
  let model: VideoMAE | null = null, llStep: LayerLockStep | null = null;
  try {
    heldOut = opts.floorClips && heldOutCount > 0 ? await opts.floorClips(heldOutCount) : null;
    manualSeed(cfg.seed);
    model = new VideoMAE(modelConfig(cfg), device);
    llStep = new LayerLockStep(cfg, model, device, heldOut, shard);
  } catch (e) {
    model?.dispose();
    metrics?.close();
    throw e;
  }
  const modules: Record<string, Module> = { model, ...llStep.modules() };
  const params = [
    ...model.namedParameters().map(([name, param]) => ({ name, param })),
    ...llStep.namedParameters(),
  ];
  // scaled by the global batch (every rank's clips)
  const baseLr = cfg.optim.scaleLr
    ? scaledLr(cfg.optim.lr, cfg.optim.batchSize * (dp?.size ?? 1))
    : cfg.optim.lr;
  const optOpts = { lr: baseLr, betas: cfg.optim.betas, weightDecay: cfg.optim.weightDecay };
  // ZeRO-1: the moments sharded over the ranks (it reduces the gradients itself: no reducer then)
  const zero = dp && cfg.dist.zero ? new ZeroAdamW(dp.group, params, optOpts) : null;
  const opt: ParamOptimizer = zero ?? new AdamW(params, optOpts);
  llStep.attach(opt);
  let graphs: StepGraphs | null = null;
  const lrAt = lrSchedule({
    kind: cfg.optim.schedule,
    baseLr,
    minLr: cfg.optim.minLr,
    warmupSteps: cfg.optim.warmupSteps,
    totalSteps: cfg.optim.steps,
    decaySteps: Math.min(
      cfg.optim.steps - cfg.optim.warmupSteps,
      Math.max(1, Math.round(cfg.optim.decayFraction * cfg.optim.steps)),
    ),
  });
  let step = 0, dataState: unknown = null, data: BatchSource;
  try {
    graphs = stepGraphsFor(cfg, device, opt, llStep, dp, emit); // refuses graphs.mode=on where they cannot run
    if (opts.resume) {
      // The frozen set is a function of the step (and of the stages the trigger began): restore it first, then
      // weights and optimizer state.
      const last = resumeFrom!;
      const extra = readCheckpointMeta(last).extra as
        | (Partial<StepCheckpoint> & { recovery?: unknown })
        | null;
      llStep.restore(extra, stepOfCheckpoint(last), last);
      // a resumed process keeps skipping the batches that made earlier attempts non-finite
      const saved = extra?.recovery as { skip?: number[]; lrFactor?: number } | undefined;
      for (const s of saved?.skip ?? []) rec.skip.add(s);
      if (rec.rollbacks === 0 && typeof saved?.lrFactor === "number") rec.lrFactor = saved.lrFactor;
      const meta = loadCheckpoint(last, modules, opt);
      step = meta.step;
      dataState = meta.data;
      emit({ kind: "resume", step, checkpoint: last });
    }
    // every rank starts from rank 0's weights (and reads its own shard of each global batch)
    dp?.broadcastParameters(params.map((p) => p.param));
    data = await opts.data(cfg, dataState, shard);
  } catch (e) {
    // a bad checkpoint or data source: free what was made, keep the checkpoints as they are
    llStep.dispose();
    opt.dispose();
    model.dispose();
    metrics?.close();
    throw e;
  }
  const enc = new TextEncoder();

  // `requested` is set by a signal (between any two awaits); `interrupted` is when the loop acts on it: at once
  // alone, and data parallel only at a logging boundary, after every rank has agreed, so that the ranks stop —
  // and enter the logging and saving collectives — at the same step.
  let requested = false, interrupted = false, lastCheckpoint: string | null = null;
  let signal: TrainResult["signal"] = null;
  const onSigint = () => {
    if (requested) Deno.exit(130); // a second Ctrl-C: stop now (earlier checkpoints are intact)
    requested = true;
    signal ??= "SIGINT";
  };
  // SIGTERM (what torchrun sends its workers when it is stopped, often right after the terminal's Ctrl-C, and
  // what clusters send before a kill) stops the run like a first Ctrl-C, never like a second.
  const onSigterm = () => {
    requested = true;
    signal ??= "SIGTERM";
  };
  const atBoundary = () => step % cfg.log.every === 0;
  Deno.addSignalListener("SIGINT", onSigint);
  Deno.addSignalListener("SIGTERM", onSigterm);
  let lastSave = performance.now();
  // Each step's loss and (with clipping) gradient norm, on the device, read once per window (no sync per step).
  const perStep = zeros([cfg.log.every, 2], { device });
  const skippedNow = new Set<number>();
  /** Throws NonFiniteStep for the first non-finite step of the window so far (every rank alike). */
  const checkFinite = () => {
    if (window === 0) return;
    let v = Array.from(scope(() => perStep.narrow(0, 0, window).toArray() as Float32Array));
    if (dp) v = dp.sum(v); // a NaN anywhere makes the sum NaN on every rank
    for (let k = 0; k < window; k++) {
      if (!Number.isFinite(v[2 * k])) {
        throw new NonFiniteStep(step - window + k, `the loss became ${v[2 * k]}`);
      }
      if (!Number.isFinite(v[2 * k + 1])) {
        throw new NonFiniteStep(step - window + k, `the gradient norm became ${v[2 * k + 1]}`);
      }
    }
  };
  const save = () => {
    checkFinite(); // never checkpoint weights a non-finite step has touched
    zero?.gather(); // collective: the whole optimiser state, for rank 0 to write
    if (rank0) {
      const recovery = rec.skip.size ? { recovery: { skip: [...rec.skip], lrFactor: rec.lrFactor } } : {};
      const meta = { step, config: cfg, data: data.state(), extra: { ...llStep.checkpoint(), ...recovery } };
      lastCheckpoint = saveCheckpoint(ckptDir, modules, opt, meta, cfg.log.keep);
      lastSave = performance.now();
      emit({ kind: "checkpoint", step, path: lastCheckpoint });
    }
    dp?.barrier(); // the others wait until the checkpoint is on disk
  };
  const trainable = () => params.filter((p) => p.param.requiresGrad).map((p) => p.param);

  const losses: TrainResult["losses"] = [];
  const stages = new StageTracker(); // each latent stage's loss against its floor, reported when it ends
  const meter = new LossMeter(device);
  // The step's device-side inputs and outputs: the learning rate (a device tensor, read by the fused AdamW on
  // the device) and the step's loss and gradient norm, copied into perStep after the step.
  const lrT = zeros([], { device });
  const stepOut = zeros([2], { device });
  const staticInput = new StaticInput(device);
  let graphPresent: boolean[] = [], graphSteps = 0;
  /**
   * One training step on the clips `clips()` makes: loss, backward (data parallel: buckets all-reduced as their
   * gradients are ready), clipping, AdamW, gradients dropped. Device work only on the graph path (no dp/ZeRO
   * there); returns which loss terms the step had.
   */
  const trainStep = (clips: () => Tensor, at: number, stepLr: Tensor, injectNaN: boolean): boolean[] => {
    let present: boolean[] = [];
    scope(() => {
      const l = llStep.loss(clips(), at); // mask, targets, forward with the frozen prefix under no-grad
      if (injectNaN) l.total = l.total.mul(NaN);
      l.total.backward();
      present = meter.add(l);
      stepOut.select(0, 0).copy_(l.total.detach());
    });
    if (zero) {
      zero.step(lr, cfg.optim.clipGrad); // reduce-scatter, clip, AdamW on the shard, all-gather
      commBytes += zero.lastBytes;
    } else {
      if (dp) {
        const r = dp.finish(); // every gradient is now the mean over the ranks
        commBytes += r.bytes;
        commWaitMs += r.waitMs;
      }
      if (cfg.optim.clipGrad > 0) {
        using norm = (opt as AdamW).clipGradNorm(cfg.optim.clipGrad);
        scope(() => {
          stepOut.select(0, 1).copy_(norm);
        });
      }
      (opt as AdamW).step(stepLr);
    }
    opt.zeroGrad();
    return present;
  };
  let window = 0, tWindow = performance.now(), lr = 0, commBytes = 0, commWaitMs = 0, dataWaitMs = 0;
  const skippedFiles: string[] = [];
  let windowsSinceWarning = Infinity;
  const t0 = performance.now(), startStep = step;
  const endStep = Math.min(cfg.optim.steps, opts.stopAfter === undefined ? Infinity : step + opts.stopAfter);
  // Batches often come from already-resolved promises, so the loop would never return to the event loop,
  // which is where a Ctrl-C is delivered: yield to it every 100 ms.
  let lastYield = performance.now();
  const yieldToEventLoop = async () => {
    if (performance.now() - lastYield < 100) return;
    await new Promise((r) => setTimeout(r, 0));
    lastYield = performance.now();
  };
  /** One record of the window since the last one: to metrics.jsonl, the result, and the event sink. */
  const log = () => {
    checkFinite();
    const now = performance.now();
    const waitShare = dataWaitMs / Math.max(1e-9, now - tWindow);
    const record: StepRecord = {
      ...meter.read(step, dp),
      lr,
      time: (now - t0) / 1000,
      stepsPerSec: window / ((now - tWindow) / 1000),
      frozenDepth: llStep.frozenDepth,
      target: llStep.targetName(step - 1),
      ...(llStep.trigger ? { convergenceCka: llStep.lastCka } : {}),
      liveTensors: liveTensors(),
      dataWaitMs: dataWaitMs / window,
      ...(skippedFiles.length ? { skippedFiles: skippedFiles.length } : {}),
      ...(graphs ? { graphSteps, graphCaptures: graphs.stats.captures } : {}),
      ...(dp
        ? {
          worldSize: dp.size,
          globalBatch: dp.size * cfg.optim.batchSize,
          commBytes: commBytes / window,
          commWaitMs: commWaitMs / window,
        }
        : {}),
    };
    if (rank0 && opts.evaluate && (step % opts.evaluate.every === 0 || step === endStep)) {
      const ev = opts.evaluate;
      record.eval = evaluateIn(model, () => ev.fn(model, step));
    }
    const ended = stages.add(record);
    if (ended) emit({ kind: "stageEnd", verdict: ended });
    const { loss, pixelLoss: pixel, latentLoss: latent, frozenDepth } = record;
    losses.push({ step, loss, pixel, latent, frozenDepth });
    metrics?.writeSync(enc.encode(JSON.stringify(record) + "\n"));
    const eta = (cfg.optim.steps - step) / ((step - startStep) / ((now - t0) / 1000));
    emit({ kind: "log", record, totalSteps: cfg.optim.steps, eta });
    windowsSinceWarning++;
    if (waitShare > cfg.log.dataWaitWarn && windowsSinceWarning >= 10) {
      emit({ kind: "slowData", step, share: waitShare, waitMs: record.dataWaitMs! });
      windowsSinceWarning = 0;
    }
    window =
      graphSteps =
      commBytes =
      commWaitMs =
      dataWaitMs =
        0;
    tWindow = performance.now(); // measurements above do not count as training time
  };

  try {
    while (step < endStep) {
      await yieldToEventLoop();
      if (!dp) interrupted = requested;
      else if (atBoundary()) {
        dp.heartbeat(step); // once per logging window: the step a failure report names
        interrupted = dp.any(requested); // one tiny collective per window, not per step
      }
      if (interrupted) break;
      const tData = performance.now();
      const batch = await data.next();
      dataWaitMs += performance.now() - tData;
      if (rec.skip.has(step) && !skippedNow.has(step)) {
        skippedNow.add(step); // the batch that made this step non-finite before: drawn, not trained on
        continue;
      }
      if (batch.skipped) skippedFiles.push(...batch.skipped);
      const start = llStep.begin(step, opt); // a convergence check, freezing, a new stage's heads
      if (start.stageChanged) {
        const { stage, frozenDepth } = start.state;
        emit({ kind: "stage", step, stage, frozenDepth, target: llStep.targetName(step) });
      }
      if (!zero) dp?.prepare(trainable()); // buckets of the parameters that train now (rebuilt after a freeze)
      lr = lrAt(step) * start.state.lrFactor * rec.lrFactor;
      const injectHere = cfg.debug.nanRank === undefined || cfg.debug.nanRank === (dp?.rank ?? 0);
      const inject = cfg.debug.nanAtSteps.includes(step) && !rec.injected.has(step) && injectHere;
      if (inject) rec.injected.add(step);
      if (!zero) lrT.fill_(lr);
      let present: boolean[] | null = null;
      // the batch into the static input (on CUDA without waiting for the device); with graphs, a stage's first
      // steps run eagerly, then one capture, then replays
      const input = staticInput.fill(batch);
      if (graphs && !inject) {
        // what the step reads from the host is fixed when the closure is made (a graph replays its capture's)
        const at = { step, lr: lrT };
        try {
          const how = graphs.run(`${start.state.stage}|${llStep.frozenDepth}|${input.key}`, () => {
            graphPresent = trainStep(() => normalizeClips(input.u8, input.affine), at.step, at.lr, false);
          });
          if (how !== "warmup") graphSteps++;
          present = graphPresent;
        } catch (e) {
          if (!(e instanceof GraphCaptureError)) throw e;
          emit({
            kind: "warning",
            message: `${e.message}; training goes on without CUDA graphs (graphs.mode=off turns them off)`,
          });
          graphs.dispose();
          graphs = null;
          opt.zeroGrad(); // gradients a failed capture may have left
        }
      }
      present ??= trainStep(() => normalizeClips(input.u8, input.affine), step, lrT, inject);
      scope(() => {
        perStep.select(0, window).copy_(stepOut);
      });
      meter.count(present);
      step++;
      window++;
      if (!dp) interrupted = requested; // alone: a signal during this step logs its window now
      if (atBoundary() || step === endStep || interrupted) log();
      // every checkpointEvery steps, and (checked at logging boundaries, agreed by all ranks) every
      // checkpointMinutes of training
      let due = step % cfg.log.checkpointEvery === 0;
      if (cfg.log.checkpointMinutes > 0 && atBoundary() && !interrupted) {
        const late = performance.now() - lastSave >= cfg.log.checkpointMinutes * 60_000;
        due ||= dp ? dp.any(late) : late;
      }
      if (due && step < endStep && !interrupted) save();
      if (
        cfg.debug.holdAt === step && step < endStep &&
        (cfg.debug.holdRank ?? dp?.rank ?? 0) === (dp?.rank ?? 0)
      ) {
        // a testing aid, announced on stderr by the rank that holds (the event sink is rank 0's alone)
        console.error(
          `${dp ? `rank ${dp.rank}: ` : ""}holding after step ${step} until a signal (debug.holdAt)`,
        );
        while (!requested) await new Promise((r) => setTimeout(r, 5));
      }
    }
    save();
    const last = stages.finish();
    if (last) emit({ kind: "stageEnd", verdict: last });
    emit({ kind: "end", step, interrupted, checkpoint: lastCheckpoint });
  } catch (e) {
    // a failed collective: name the ranks that stopped, from the steps they recorded in the store
    const who = dp && e instanceof TorchError ? dp.whoStopped() : "";
    if (who) throw new TorchError("train", `${e instanceof Error ? e.message : e}; ${who}`, { cause: e });
    throw e;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    Deno.removeSignalListener("SIGTERM", onSigterm);
    data.close();
    metrics?.close();
    graphs?.dispose();
    staticInput.dispose();
    lrT.dispose();
    stepOut.dispose();
    meter.dispose();
    perStep.dispose();
    llStep.dispose();
    opt.dispose();
    model.dispose();
  }
  return {
    step,
    losses,
    interrupted,
    signal: interrupted ? signal : null,
    checkpoint: lastCheckpoint,
    skippedFiles,
    skippedSteps: [...skippedNow],
  };
}
