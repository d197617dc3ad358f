/**
 * The training loop (`deno task train`), one for every mode: data → mask → the LayerLock schedule (freeze blocks,
 * pick targets) → forward → loss → backward → AdamW, with a warmup-cosine learning rate (times the schedule's
 * mini-warmup factor), a live progress line, `metrics.jsonl`, periodic checkpoints, exact resumption, and a clean
 * stop on Ctrl-C (a checkpoint is saved first).
 * @module
 */
import { TorchError } from "../errors.ts";
import { autocast, noGrad } from "../torch/autograd.ts";
import type { Device } from "../torch/dtype.ts";
import { keep, scope } from "../torch/scope.ts";
import { cuda, liveTensors, manualSeed, setNumThreads } from "../torch/runtime.ts";
import { zeros } from "../torch/creation.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { TrainConfig } from "../config.ts";
import { batchToTensor, type ClipBatch } from "../data/clip.ts";
import { disposeMask, makeMask } from "../models/masking.ts";
import { pixelTargets } from "../models/targets.ts";
import { Freezer } from "../layerlock/freeze.ts";
import { LatentHeads } from "../layerlock/heads.ts";
import { computeLosses, type Losses } from "../layerlock/objective.ts";
import {
  fixedStageStarts,
  freezes,
  type Mode,
  type ResolvedSchedule,
  resolveSchedule,
  scheduleFrom,
  type ScheduleState,
} from "../layerlock/schedule.ts";
import { VideoMAE, type VideoMAEConfig } from "../models/video_mae.ts";
import { PRESETS } from "../models/presets.ts";
import type { Module } from "../nn/module.ts";
import { AdamW } from "../optim/adamw.ts";
import { scaledLr, warmupCosine } from "../optim/schedule.ts";
import { listCheckpoints, loadCheckpoint, readCheckpointMeta, saveCheckpoint } from "./checkpoint.ts";
import { TargetFloor } from "./floor.ts";
import { ConvergenceTrigger } from "../layerlock/trigger.ts";

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
  /** Makes the batch source, restored to `state` when resuming. */
  data: (cfg: TrainConfig, state: unknown | null) => BatchSource | Promise<BatchSource>;
  /** Progress output (default: stderr). */
  print?: (line: string, final: boolean) => void;
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
  /** Whether the run was interrupted (Ctrl-C). */
  interrupted: boolean;
  /** The last checkpoint written. */
  checkpoint: string | null;
}

/** The model configuration a training configuration describes. */
export function modelConfig(cfg: TrainConfig): VideoMAEConfig {
  const m = cfg.model;
  const size = PRESETS[m.preset];
  return {
    encoderDim: m.encoderDim ?? size.encoderDim,
    encoderDepth: m.encoderDepth ?? size.encoderDepth,
    encoderHeads: m.encoderHeads ?? size.encoderHeads,
    mlpRatio: m.mlpRatio ?? size.mlpRatio,
    decoderDim: m.decoderDim ?? size.decoderDim,
    decoderDepth: m.decoderDepth ?? size.decoderDepth,
    decoderHeads: m.decoderHeads ?? size.decoderHeads,
    inChans: 3,
    frames: cfg.data.frames,
    height: cfg.data.size,
    width: cfg.data.size,
    patch: m.patch,
    tubelet: m.tubelet,
    qkvBias: m.qkvBias,
    posEmbed: m.posEmbed,
  };
}

/** The device a configuration asks for ("auto": cuda when available). */
export function resolveDevice(cfg: TrainConfig): Device {
  if (cfg.device === "cuda" && !cuda.isAvailable()) {
    throw new TorchError(
      "train",
      'device: "cuda" was requested but CUDA is not available (is torch a CUDA build?)',
    );
  }
  return cfg.device === "auto" ? (cuda.isAvailable() ? "cuda" : "cpu") : cfg.device;
}

function defaultPrint(line: string, final: boolean): void {
  const enc = new TextEncoder();
  if (Deno.stderr.isTerminal()) Deno.stderr.writeSync(enc.encode(`\r\x1b[K${line}${final ? "\n" : ""}`));
  else Deno.stderr.writeSync(enc.encode(line + "\n"));
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return m > 0 ? `${m}m${String(r).padStart(2, "0")}s` : `${r}s`;
}

/** Running sums of the loss terms and their floors on the device, read once per logging window (its only syncs). */
class LossMeter {
  readonly #sums: Tensor[];
  #n = [0, 0, 0, 0, 0];
  constructor(device: Device) {
    this.#sums = this.#n.map(() => zeros([], { device }));
  }
  /** Adds one step's losses (detached). */
  add(l: Losses): void {
    noGrad(() => {
      [l.total, l.pixel, l.latent, l.pixelFloor, l.latentFloor].forEach((t, i) => {
        if (t) {
          this.#sums[i].add_(t.detach());
          this.#n[i]++;
        }
      });
    });
  }
  /** The window's means (null for a term that was not computed), and a reset. */
  read(): {
    loss: number;
    pixel: number | null;
    latent: number | null;
    pixelFloor: number | null;
    latentFloor: number | null;
  } {
    const [loss, pixel, latent, pixelFloor, latentFloor] = this.#sums.map((t, i) =>
      this.#n[i] ? t.item() / this.#n[i] : null
    );
    for (const t of this.#sums) t.zero_();
    this.#n = this.#n.map(() => 0);
    return { loss: loss ?? NaN, pixel, latent, pixelFloor, latentFloor };
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

/** How the progress line and metrics name the current target. */
function targetName(st: ScheduleState, mode: Mode, unfrozenLayer: number): string {
  const t = st.targetLayers;
  if (t.length === 0) return mode === "latent-unfrozen" ? `pixels+h${unfrozenLayer}` : "pixels";
  return t.length === 1 ? `h${t[0]}` : `h1..h${t[t.length - 1]}`;
}

/** The first `n` clips of a batch (all of them when it holds fewer). */
function firstClips(b: ClipBatch, n: number): ClipBatch {
  const m = Math.min(n, b.batch), per = b.frames * b.height * b.width * 3;
  return {
    ...b,
    batch: m,
    data: b.data.subarray(0, m * per),
    labels: b.labels &&
      { shape: b.labels.shape.subarray(0, m), direction: b.labels.direction.subarray(0, m) },
  };
}

/** The step a checkpoint file was saved at (from its name). */
function stepOfCheckpoint(path: string): number {
  return Number(path.match(/step_(\d+)\.safetensors$/)![1]);
}

/** Trains the video MAE described by `cfg`. */
export async function train(cfg: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const print = opts.print ?? defaultPrint;
  const device = resolveDevice(cfg);
  const amp = device !== "cpu" && cfg.amp === "bf16";
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  const ckptDir = `${opts.runDir}/checkpoints`;
  const existing = listCheckpoints(ckptDir);
  if (!opts.resume && existing.length > 0) {
    throw new TorchError(
      "train",
      `${opts.runDir} already holds checkpoints; pass --resume to continue it, or choose another --name`,
    );
  }
  if (opts.resume && existing.length === 0) throw new TorchError("train", `nothing to resume in ${ckptDir}`);

  const ll = cfg.layerlock;
  const convergence = ll.trigger === "convergence" && freezes(ll.mode);
  // Held-out clips for the loss floors and the convergence trigger, fetched before anything native is made,
  // so a failure here leaves nothing behind.
  const heldOutCount = Math.max(cfg.log.floorClips, convergence ? ll.convergenceClips : 0);
  if (convergence && !opts.floorClips) {
    throw new TorchError(
      "train",
      'layerlock.trigger "convergence" needs held-out clips (TrainOptions.floorClips)',
    );
  }
  const heldOut = opts.floorClips && heldOutCount > 0 ? await opts.floorClips(heldOutCount) : null;
  manualSeed(cfg.seed);
  const mcfg = modelConfig(cfg);
  const model = new VideoMAE(mcfg, device);
  const sched: ResolvedSchedule = resolveSchedule(ll, mcfg.encoderDepth, cfg.optim.steps);
  const latentMode = ll.mode === "layerlock" || ll.mode === "latent-unfrozen";
  const heads = latentMode
    ? new LatentHeads(ll.target, mcfg.decoderDim, mcfg.encoderDim, mcfg.encoderDepth, device)
    : null;
  const unfrozenLayer = ll.unfrozenLayer ?? Math.max(1, Math.floor(mcfg.encoderDepth / 2));
  if (unfrozenLayer > mcfg.encoderDepth) {
    throw new TorchError(
      "train",
      `layerlock.unfrozenLayer ${unfrozenLayer} exceeds the depth ${mcfg.encoderDepth}`,
    );
  }
  // The convergence trigger's state (its last block output) is checkpointed with the model.
  const trigger = convergence
    ? new ConvergenceTrigger(
      sched,
      keep(batchToTensor(firstClips(heldOut!, ll.convergenceClips), device)),
      model.encoder.grid.reduce((a, b) => a * b, 1),
      mcfg.encoderDim,
      ll.convergenceEvery,
      ll.convergenceCka,
    )
    : null;
  const modules: Record<string, Module> = { model };
  if (heads) modules.heads = heads;
  if (trigger) modules.trigger = trigger;
  const params = model.namedParameters().map(([name, param]) => ({ name, param }));
  if (heads) {
    for (const [name, param] of heads.namedParameters()) params.push({ name: `heads.${name}`, param });
  }
  const baseLr = cfg.optim.scaleLr ? scaledLr(cfg.optim.lr, cfg.optim.batchSize) : cfg.optim.lr;
  const opt = new AdamW(params, { lr: baseLr, betas: cfg.optim.betas, weightDecay: cfg.optim.weightDecay });
  const freezer = new Freezer(model, opt, ll.embedding);
  const lrAt = warmupCosine({
    baseLr,
    minLr: cfg.optim.minLr,
    warmupSteps: cfg.optim.warmupSteps,
    totalSteps: cfg.optim.steps,
  });
  let step = 0, dataState: unknown = null;
  // The steps at which the freezing stages began: fixed by the schedule, or decided by the convergence trigger.
  const stageStarts = trigger ? trigger.stageStarts : fixedStageStarts(sched);
  if (opts.resume) {
    // The frozen set is a function of the step (and, for the convergence trigger, of the stages it began):
    // restore it first, then weights and optimizer state.
    const last = existing[existing.length - 1];
    if (trigger) {
      const extra = readCheckpointMeta(last).extra as
        | { stageStarts?: number[]; trigger?: { previousBlock: number; lastCka: number | null } }
        | null;
      if (!Array.isArray(extra?.stageStarts) || !extra.trigger) {
        throw new TorchError("train", `${last} does not record the convergence trigger's state`);
      }
      stageStarts.push(...extra.stageStarts);
      trigger.restore(extra.trigger);
    }
    freezer.freezeTo(scheduleFrom(sched, stepOfCheckpoint(last), stageStarts).frozenDepth);
    const meta = loadCheckpoint(existing[existing.length - 1], modules, opt);
    step = meta.step;
    dataState = meta.data;
    print(`resumed from ${existing[existing.length - 1]} at step ${step}`, true);
  }
  const data = await opts.data(cfg, dataState);
  const floorSample = heldOut && cfg.log.floorClips > 0 ? firstClips(heldOut, cfg.log.floorClips) : null;
  const floor = floorSample
    ? new TargetFloor(floorSample, {
      tubelet: mcfg.tubelet,
      patch: mcfg.patch,
      normalize: cfg.target.normalize,
      latentNorm: ll.latentNorm,
      chunk: cfg.optim.batchSize,
      amp,
    }, device)
    : null;
  Deno.mkdirSync(opts.runDir, { recursive: true });
  const metrics = Deno.openSync(`${opts.runDir}/metrics.jsonl`, { append: true, create: true });
  const enc = new TextEncoder();

  let interrupted = false, lastCheckpoint: string | null = null;
  const onSigint = () => {
    if (interrupted) Deno.exit(130); // a second Ctrl-C: stop now (earlier checkpoints are intact)
    interrupted = true;
  };
  Deno.addSignalListener("SIGINT", onSigint);
  const save = () => {
    const extra = { mode: ll.mode, frozenDepth: freezer.depth, stageStarts, trigger: trigger?.state() };
    lastCheckpoint = saveCheckpoint(
      ckptDir,
      modules,
      opt,
      { step, config: cfg, data: data.state(), extra },
      cfg.log.keep,
    );
  };

  const losses: TrainResult["losses"] = [];
  let lastCka: number | null = null; // the convergence trigger's last measurement
  const meter = new LossMeter(device);
  let stage = scheduleFrom(sched, step, stageStarts).stage;
  let window = 0, tWindow = performance.now();
  const t0 = performance.now(), startStep = step;
  // Batches often come from already-resolved promises, so the loop would never return to the event loop,
  // which is where a Ctrl-C is delivered: yield to it every 100 ms.
  let lastYield = performance.now();
  const endStep = Math.min(cfg.optim.steps, opts.stopAfter === undefined ? Infinity : step + opts.stopAfter);
  try {
    while (step < endStep && !interrupted) {
      if (performance.now() - lastYield > 100) {
        await new Promise((r) => setTimeout(r, 0));
        lastYield = performance.now();
        if (interrupted) break;
      }
      const batch = await data.next();
      if (trigger?.due(step)) {
        trigger.check(model, step);
        if (trigger.lastCka !== null) lastCka = trigger.lastCka;
      }
      const st = scheduleFrom(sched, step, stageStarts);
      if (st.frozenDepth > freezer.depth) freezer.freezeTo(st.frozenDepth);
      if (st.stage !== stage) {
        if (ll.reinitHead && heads && st.targetLayers.length) {
          for (const l of st.targetLayers) {
            heads.reinit(l);
            opt.releaseState(
              heads.namedParameters().filter(([n]) => n.startsWith(heads.prefix(l))).map(([n]) =>
                `heads.${n}`
              ),
            );
          }
        }
        stage = st.stage;
      }
      const lr = lrAt(step) * st.lrFactor;
      // The floors' means live outside the step's scope (a latent mean is computed once, when its block is
      // first a target: a frozen block never changes). latent-unfrozen's target moves, so it has no floor.
      const floorMeans = floor
        ? {
          pixel: floor.pixelMean,
          latent: ll.mode === "layerlock" && st.targetLayers.length
            ? floor.latentMeans(model, st.targetLayers)
            : null,
        }
        : undefined;
      const unfrozen = {
        layer: unfrozenLayer,
        weight: ll.unfrozenWeight === "cosine"
          ? ll.latentWeight * (1 - Math.cos(Math.PI * step / cfg.optim.steps)) / 2
          : ll.latentWeight,
      };
      scope(() => {
        const x = batchToTensor(batch, device);
        const mask = makeMask(cfg.mask.kind, x.shape[0], model.encoder.grid, cfg.mask.ratio, device);
        const pixelTarget = noGrad(() => pixelTargets(x, mcfg.tubelet, mcfg.patch, cfg.target.normalize));
        const ctx = { cfg: ll, pixelTargets: pixelTarget, heads, state: st, unfrozen, floor: floorMeans };
        const l = amp
          ? autocast("bf16", () => computeLosses(model, x, mask, ctx))
          : computeLosses(model, x, mask, ctx);
        l.total.backward();
        meter.add(l);
        disposeMask(mask);
      });
      if (cfg.optim.clipGrad > 0) opt.clipGradNorm(cfg.optim.clipGrad).dispose();
      opt.step(lr);
      opt.zeroGrad();
      step++;
      window++;
      if (step % cfg.log.every === 0 || step === endStep || interrupted) {
        const { loss, pixel, latent, pixelFloor, latentFloor } = meter.read();
        if (!Number.isFinite(loss)) throw new TorchError("train", `loss became ${loss} at step ${step}`);
        const now = performance.now();
        const sps = window / ((now - tWindow) / 1000);
        const eta = (cfg.optim.steps - step) / ((step - startStep) / ((now - t0) / 1000));
        const target = targetName(scheduleFrom(sched, step - 1, stageStarts), ll.mode, unfrozenLayer);
        losses.push({ step, loss, pixel, latent, frozenDepth: freezer.depth });
        const rec = {
          step,
          loss,
          pixelLoss: pixel,
          latentLoss: latent,
          pixelFloor,
          latentFloor,
          lr,
          time: (now - t0) / 1000,
          stepsPerSec: sps,
          frozenDepth: freezer.depth,
          target,
          ...(trigger ? { convergenceCka: lastCka } : {}),
          liveTensors: liveTensors(),
        };
        if (opts.evaluate && (step % opts.evaluate.every === 0 || step === endStep)) {
          const ev = opts.evaluate;
          Object.assign(rec, { eval: evaluateIn(model, () => ev.fn(model, step)) });
        }
        metrics.writeSync(enc.encode(JSON.stringify(rec) + "\n"));
        const terms = [
          pixel !== null
            ? `pix ${pixel.toFixed(4)}${pixelFloor !== null ? ` floor ${pixelFloor.toFixed(4)}` : ""}`
            : "",
          latent !== null
            ? `lat ${latent.toFixed(4)}${latentFloor !== null ? ` floor ${latentFloor.toFixed(4)}` : ""}`
            : "",
        ]
          .filter(Boolean).join(" ");
        print(
          `step ${step}/${cfg.optim.steps}  loss ${
            loss.toFixed(4)
          } (${terms})  frozen ${freezer.depth}  target ${target}  ` +
            `lr ${lr.toExponential(2)}  ${sps.toFixed(2)} steps/s  ETA ${fmtTime(eta)}`,
          false,
        );
        window = 0;
        tWindow = performance.now(); // measurements above do not count as training time
      }
      if (step % cfg.log.checkpointEvery === 0 && step < endStep) save();
    }
    save();
    print(
      interrupted
        ? `\ninterrupted at step ${step}; checkpoint saved to ${lastCheckpoint} (continue with --resume)`
        : `\ndone: ${step} steps; checkpoint ${lastCheckpoint}`,
      true,
    );
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    data.close();
    metrics.close();
    meter.dispose();
    floor?.dispose();
    trigger?.clips.dispose();
    trigger?.dispose();
    opt.dispose();
    model.dispose();
    heads?.dispose();
  }
  return { step, losses, interrupted, checkpoint: lastCheckpoint };
}
