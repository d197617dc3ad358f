/**
 * The training loop (`deno task train`), one for every mode: data → the LayerLock schedule (freeze blocks, pick
 * targets, start their heads) → the step (mask, forward, loss, backward, AdamW) → the logging window → periodic
 * checkpoints, with exact resumption, a clean stop on Ctrl-C or SIGTERM (a checkpoint is saved first) and recovery
 * from non-finite steps. Its parts: the run folder (`run_folder.ts`), the step runner chosen once
 * (`step_runner.ts`: eager, CUDA graphs, data parallel, ZeRO-1), the logging window (`log_window.ts`), the stop
 * requests (`interrupts.ts`) and the non-finite policy (`recovery.ts`).
 * @module
 */
import { ConfigError, TorchError } from "../errors.ts";
import { manualSeed, setNumThreads } from "../torch/runtime.ts";
import { modelConfig, type TrainConfig } from "../config.ts";
import type { ClipBatch } from "../data/clip.ts";
import type { Shard } from "../data/sampler.ts";
import { LayerLockStep, type StepCheckpoint } from "../layerlock/step.ts";
import { VideoMAE } from "../models/video_mae.ts";
import type { Module } from "../nn/module.ts";
import { AdamW, type NamedParam } from "../optim/adamw.ts";
import { lrSchedule, scaledLr } from "../optim/schedule.ts";
import { ZeroAdamW } from "../optim/zero.ts";
import { loadCheckpoint, readCheckpointConfig, readCheckpointMeta } from "./checkpoint.ts";
import type { DataParallel } from "./data_parallel.ts";
import { resolveDevice } from "./device.ts";
import { printEvent, type TrainEvent } from "./events.ts";
import { Interrupts } from "./interrupts.ts";
import { evaluateIn, LogWindow, NonFiniteStep, Reporter } from "./log_window.ts";
import { Recovery, type RecoveryState } from "./recovery.ts";
import { checkResumable, type MetricsLog, RunFolder } from "./run_folder.ts";
import { TensorBoardWriter } from "./tensorboard.ts";
import { StaticInput } from "./step_graph.ts";
import { type StepRunner, stepRunnerFor } from "./step_runner.ts";

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
  /**
   * Loads `cfg.init`'s weights into the freshly built model and returns what it did, one line each (the command
   * line passes src/interop's `loadInitWeights`, which reads every format `import` reads).
   */
  loadInit?: (source: string, model: VideoMAE, cfg: TrainConfig) => string[];
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

/**
 * Trains the video MAE described by `cfg`. A non-finite loss (or gradient norm, with clipping) is found at the
 * next logging or saving step from per-step values kept on the device, before any checkpoint is written; then
 * `nonFinite.policy` `stop` ends the run with an error naming the step (every checkpoint predates it), and
 * `rollback` reloads the newest checkpoint (or starts again when there is none), discards the offending batch
 * when its step comes round again, scales the learning rate by `nonFinite.lrScale`, and goes on — at most
 * `nonFinite.maxRollbacks` times — recording each rollback in metrics.jsonl (`event: "rollback"`).
 */
export async function train(cfg: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const rec = new Recovery(cfg);
  const emit = isRank0(opts) ? opts.onEvent ?? printEvent : () => {};
  const folder = new RunFolder(opts.runDir);
  let resume = opts.resume;
  for (;;) {
    try {
      return { ...(await trainOnce(cfg, { ...opts, resume }, rec)), rollbacks: rec.rollbacks };
    } catch (e) {
      if (!(e instanceof NonFiniteStep)) throw e;
      const newest = folder.newestCheckpoint();
      emit({ kind: "warning", message: rec.rollBack(e, newest) }); // or throws (nonFinite.policy "stop")
      resume = newest !== null;
    }
  }
}

function isRank0(opts: TrainOptions): boolean {
  return !opts.dist || opts.dist.rank === 0;
}

/** Everything one attempt trains with: made by `setUp`, freed by `owned`. */
interface Session {
  folder: RunFolder;
  /** metrics.jsonl (rank 0's; null on the other ranks). */
  metrics: MetricsLog | null;
  /** runs/<name>/tb's new events file (`log.tensorboard`, rank 0's; else null). */
  tensorboard: TensorBoardWriter | null;
  model: VideoMAE;
  llStep: LayerLockStep;
  /** What a checkpoint saves: the model and the step's modules (heads, trigger). */
  modules: Record<string, Module>;
  opt: AdamW | ZeroAdamW;
  runner: StepRunner;
  window: LogWindow;
  input: StaticInput;
  data: BatchSource;
  /** The learning rate at each step, before the schedule's and the recovery's factors. */
  lrAt: (step: number) => number;
  /** Steps completed when the attempt starts (the checkpoint's step, or 0). */
  step: number;
  /** Frees all of the above, newest first. */
  owned: DisposableStack;
}

/**
 * Makes everything an attempt trains with, in order: the run folder and the checkpoint to resume from (refusing
 * a configuration the run may not change), metrics.jsonl (and, with `log.tensorboard`, a new TensorBoard events
 * file), the model and LayerLock's step, the optimiser, the step runner, then the checkpoint's state and the data
 * source. Whatever was made is freed when a later part fails, and the checkpoints are left as they are.
 */
async function setUp(cfg: TrainConfig, opts: TrainOptions, rec: Recovery, emit: (e: TrainEvent) => void) {
  const dp = opts.dist ?? null, rank0 = isRank0(opts);
  const device = resolveDevice(cfg, dp?.localRank);
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  const warn = (message: string) => emit({ kind: "warning", message });
  const folder = new RunFolder(opts.runDir);
  if (rank0) folder.removeStaleTemporaries();
  const from = folder.resumePoint(opts.resume, warn); // the newest intact checkpoint, or null
  if (from) checkResumable(opts.runDir, cfg, readCheckpointConfig(from));
  // held-out clips for the loss floors, the convergence trigger and the heads' fits, before anything native
  const heldOutCount = LayerLockStep.heldOutClips(cfg);
  const heldOut: ClipBatch | null = opts.floorClips && heldOutCount > 0
    ? await opts.floorClips(heldOutCount)
    : null;
  using owned = new DisposableStack();
  const pending = rank0 ? rec.pending.splice(0) : []; // rollback records, for metrics.jsonl (and TensorBoard)
  const metrics = rank0
    ? owned.adopt(folder.openMetrics(from, rec.rollbacks > 0, pending), (m) => m.close())
    : null;
  // each attempt starts a new events file (TensorBoard merges a folder's files)
  const tensorboard = rank0 && cfg.log.tensorboard
    ? owned.adopt(TensorBoardWriter.open(`${opts.runDir}/tb`), (w) => w.close())
    : null;
  for (const r of pending) tensorboard?.scalars(r.step as number, r);
  manualSeed(cfg.seed);
  const model = owned.use(new VideoMAE(modelConfig(cfg), device));
  if (cfg.init && !from) {
    if (!opts.loadInit) throw new ConfigError("init", "init: train() needs TrainOptions.loadInit to read it");
    emit({ kind: "init", source: cfg.init, lines: opts.loadInit(cfg.init, model, cfg) });
  }
  const shard: Shard | undefined = dp ? { rank: dp.rank, size: dp.size } : undefined;
  const llStep = owned.adopt(new LayerLockStep(cfg, model, device, heldOut, shard), (s) => s.dispose());
  const modules: Record<string, Module> = { model, ...llStep.modules() };
  const params: NamedParam[] = [
    ...model.namedParameters().map(([name, param]) => ({ name, param })),
    ...llStep.namedParameters(),
  ];
  // the learning rate, scaled by the global batch (every rank's clips)
  const o = cfg.optim;
  const baseLr = o.scaleLr ? scaledLr(o.lr, o.batchSize * (dp?.size ?? 1)) : o.lr;
  const optOpts = { lr: baseLr, betas: o.betas, weightDecay: o.weightDecay };
  // ZeRO-1 shards the moments over the ranks (it reduces the gradients itself: no reducer then)
  const opt: AdamW | ZeroAdamW = owned.adopt(
    dp && cfg.dist.zero ? new ZeroAdamW(dp.group, params, optOpts) : new AdamW(params, optOpts),
    (o) => o.dispose(),
  );
  llStep.attach(opt);
  const window = owned.adopt(new LogWindow(device, cfg.log.every), (w) => w.dispose());
  const tensors = params.map((p) => p.param);
  const runner = owned.adopt(
    stepRunnerFor(cfg, device, llStep, opt, tensors, window, dp, warn),
    (r) => r.dispose(),
  );
  const input = owned.adopt(new StaticInput(device), (i) => i.dispose());
  let step = 0, dataState: unknown = null;
  if (from) {
    // the frozen set is a function of the step (and of the stages a trigger began): restore it, then the weights
    const saved = readCheckpointMeta(from);
    const extra = saved.extra as (Partial<StepCheckpoint> & { recovery?: RecoveryState }) | null;
    llStep.restore(extra, saved.step, from);
    rec.restore(extra?.recovery);
    const meta = loadCheckpoint(from, modules, opt);
    [step, dataState] = [meta.step, meta.data];
    emit({ kind: "resume", step, checkpoint: from });
  }
  dp?.broadcastParameters(tensors); // every rank starts from rank 0's weights
  const data = owned.adopt(await opts.data(cfg, dataState, shard), (d) => d.close());
  const lrAt = lrSchedule({
    kind: o.schedule,
    baseLr,
    minLr: o.minLr,
    warmupSteps: o.warmupSteps,
    totalSteps: o.steps,
    decaySteps: Math.min(o.steps - o.warmupSteps, Math.max(1, Math.round(o.decayFraction * o.steps))),
  });
  const session: Session = {
    folder,
    metrics,
    tensorboard,
    model,
    llStep,
    modules,
    opt,
    runner,
    window,
    input,
    data,
    lrAt,
    step,
    owned: owned.move(),
  };
  return session;
}

/** Writes a run's checkpoints: every `log.checkpointEvery` steps, every `log.checkpointMinutes`, and at the end. */
class Checkpointer {
  /** The last checkpoint written (null: none yet). */
  last: string | null = null;
  #lastSave = performance.now();

  constructor(
    readonly s: Session,
    readonly cfg: TrainConfig,
    readonly rec: Recovery,
    readonly dp: DataParallel | null,
    readonly emit: (e: TrainEvent) => void,
  ) {}

  /** Whether one is due after `step` (the time limit is checked at logging boundaries, agreed by every rank). */
  due(step: number): boolean {
    const log = this.cfg.log, dp = this.dp;
    let due = step % log.checkpointEvery === 0;
    if (log.checkpointMinutes > 0 && step % log.every === 0) {
      const late = performance.now() - this.#lastSave >= log.checkpointMinutes * 60_000;
      due ||= dp ? dp.any(late) : late;
    }
    return due;
  }

  /** A checkpoint of `step` (rank 0 writes it; the others wait): never of weights a non-finite step touched. */
  save(step: number): void {
    const { s, dp } = this;
    s.window.checkFinite(step, dp);
    if (s.opt instanceof ZeroAdamW) s.opt.gather(); // collective: the whole optimiser state, for rank 0
    if (!dp || dp.rank === 0) {
      const extra = { ...s.llStep.checkpoint(), ...this.rec.checkpointState() };
      const meta = { step, config: this.cfg, data: s.data.state(), extra };
      this.last = s.folder.saveCheckpoint(s.modules, s.opt, meta, this.cfg.log.keep);
      this.emit({ kind: "checkpoint", step, path: this.last });
    }
    this.#lastSave = performance.now();
    dp?.barrier();
  }
}

/** One attempt of `train`: from the start or the newest intact checkpoint to the end, or a NonFiniteStep. */
async function trainOnce(
  cfg: TrainConfig,
  opts: TrainOptions,
  rec: Recovery,
): Promise<Omit<TrainResult, "rollbacks">> {
  const dp = opts.dist ?? null, rank = dp?.rank ?? 0;
  const emit = rank === 0 ? opts.onEvent ?? printEvent : () => {};
  const s = await setUp(cfg, opts, rec, emit);
  const { llStep, runner, window, data } = s;
  const endStep = Math.min(cfg.optim.steps, s.step + (opts.stopAfter ?? Infinity));
  const ev = opts.evaluate;
  const report = new Reporter({
    llStep,
    graphCaptures: () => runner.graphCaptures,
    dp,
    metrics: s.metrics,
    tensorboard: s.tensorboard,
    emit,
    totalSteps: cfg.optim.steps,
    dataWaitWarn: cfg.log.dataWaitWarn,
    batchSize: cfg.optim.batchSize,
    evaluate: (at) =>
      rank === 0 && ev && (at % ev.every === 0 || at === endStep)
        ? evaluateIn(s.model, () => ev.fn(s.model, at))
        : null,
  }, s.step);
  const checkpoints = new Checkpointer(s, cfg, rec, dp, emit);
  const stop = new Interrupts();
  const skippedNow = new Set<number>(); // steps whose batch was drawn and discarded in this attempt
  let step = s.step, lr = 0, interrupted = false;
  const atBoundary = () => step % cfg.log.every === 0;
  stop.install();
  try {
    while (step < endStep) {
      await stop.poll(); // signals are delivered on the event loop
      if (!dp) interrupted = stop.requested;
      else if (atBoundary()) interrupted = dp.agreeToStop(step, stop.requested);
      if (interrupted) break;
      const batch = await window.timeData(() => data.next());
      if (rec.skip.has(step) && !skippedNow.has(step)) { // the batch that made this step non-finite before
        skippedNow.add(step);
        continue;
      }
      if (batch.skipped) report.skippedFiles.push(...batch.skipped);
      const { state, stageChanged } = llStep.begin(step, s.opt); // a convergence check, freezing, new heads
      if (stageChanged) {
        const { stage, frozenDepth } = state;
        emit({ kind: "stage", step, stage, frozenDepth, target: llStep.targetName(step) });
      }
      lr = s.lrAt(step) * state.lrFactor * rec.lrFactor;
      window.add(runner.run({
        input: s.input.fill(batch), // on CUDA without waiting for the device
        step,
        lr,
        stage: `${state.stage}|${llStep.frozenDepth}`,
        injectNaN: rec.injectAt(step, rank),
      }));
      step++;
      if (!dp) interrupted = stop.requested; // alone: a signal during this step logs its window now
      if (atBoundary() || step === endStep || interrupted) {
        report.log(window.close(step, dp), lr);
        window.restartClock(); // measurements do not count as training time
      }
      if (checkpoints.due(step) && step < endStep && !interrupted) checkpoints.save(step);
      const d = cfg.debug;
      if (d.holdAt === step && step < endStep && (d.holdRank ?? rank) === rank) {
        await stop.hold(step, dp && rank);
      }
    }
    checkpoints.save(step);
    report.finish();
    emit({ kind: "end", step, interrupted, checkpoint: checkpoints.last });
  } catch (e) {
    // a failed collective: name the ranks that stopped, from the steps they recorded in the store
    if (dp && e instanceof TorchError && !(e instanceof NonFiniteStep)) {
      const who = dp.whoStopped();
      if (who) throw new TorchError("train", `${e.message}; ${who}`, { cause: e });
    }
    throw e;
  } finally {
    stop.remove();
    s.owned.dispose();
  }
  const { losses, skippedFiles } = report;
  const signal = interrupted ? stop.signal : null;
  return {
    step,
    losses,
    interrupted,
    signal,
    checkpoint: checkpoints.last,
    skippedFiles,
    skippedSteps: [...skippedNow],
  };
}
