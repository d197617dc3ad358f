/**
 * The experiment's configuration: a zod schema with documented defaults. The training side is not a second list
 * of knobs: `train` holds overrides of the training configuration (src/config.ts), merged over the
 * experiment's own defaults (`EXPERIMENT_TRAIN_DEFAULTS`) and validated by the training schema, so every key of
 * `train --set` (model, data, mask, target, optim, layerlock, log) is a knob of the experiment too, with the
 * same names and the same errors. Pure: no tensors.
 * @module
 */
import { z } from "zod";
import { parseConfig, type TrainConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { type Mode, MODES } from "../layerlock/schedule.ts";

/**
 * What the experiment can train: the training modes, and variants of them — `layerlock-cka`, LayerLock whose
 * blocks freeze when their representation has converged (`layerlock.trigger: "convergence"`) instead of at fixed
 * steps (beyond the paper; compare it with `layerlock` in the same experiment).
 */
export const EXPERIMENT_MODES = [...MODES, "layerlock-cka"] as const;
/** A training mode or a variant of one. */
export type ExperimentMode = (typeof EXPERIMENT_MODES)[number];
/** The training mode and the layerlock settings of each variant. */
const VARIANTS: Partial<Record<ExperimentMode, { mode: Mode; layerlock: Record<string, unknown> }>> = {
  "layerlock-cka": { mode: "layerlock", layerlock: { trigger: "convergence" } },
};

/** The encoders probed beside the trained ones, to read the trained numbers against. */
export const BASELINES = ["untrained", "embedding", "pixels"] as const;
/**
 * A baseline: `untrained`, each training seed's initial encoder (what every mode starts from); `embedding`, the
 * untrained patch embedding with its position embedding, no block (depth 0); `pixels`, the raw tubelet pixels
 * as tokens (no parameters, no position).
 */
export type Baseline = (typeof BASELINES)[number];

/**
 * The training configuration of every run, before the experiment's overrides: the protocol the search on the
 * validation split chose (docs/results/search.md). Derived from the steps when not
 * given: `log.checkpointEvery` (8 checkpoints per run, for the layer-convergence measurement) and the freezing
 * schedule, `layerlock.pixelSteps` = half the run (the pixel loss has clearly left its floor by then: about 2/3
 * of it in the search) and `layerlock.interval` = an eighth (the default 2/3 of 6 blocks, 4, freeze by 7/8).
 */
export const EXPERIMENT_TRAIN_DEFAULTS = {
  device: "auto",
  model: { preset: "tiny", encoderDepth: 6, patch: 8, tubelet: 2 },
  data: { source: "fashion", frames: 8, size: 64, prefetch: 4 },
  mask: { kind: "random", ratio: 0.75 },
  target: { normalize: false },
  optim: { steps: 3000, batchSize: 16, lr: 2e-4, warmupSteps: 200 },
  layerlock: {},
  log: { every: 20, keep: 100, floorClips: 128 },
} as const;

/** LayerLock's target switch as the validation split chose it (both LayerLock modes train with it). */
const LAYERLOCK_SWITCH = {
  optim: { schedule: "wsd" },
  layerlock: { headInit: "ridge", keepPixelLoss: true, target: "all" },
};

/**
 * Settings the validation split chose for one mode alone (docs/results/search.md §7), applied over
 * `EXPERIMENT_TRAIN_DEFAULTS` and under the experiment's own overrides: LayerLock's target switch — the head fitted
 * in closed form at each switch, the learning rate held until a final decay (warmup–stable–decay), the pixel loss
 * kept beside the latent loss on every frozen block. MAE keeps the cosine it was validated with.
 */
export const EXPERIMENT_MODE_DEFAULTS: Partial<Record<ExperimentMode, Record<string, unknown>>> = {
  layerlock: LAYERLOCK_SWITCH,
  "layerlock-cka": LAYERLOCK_SWITCH,
};

const positiveInt = z.number().int().positive();
const seedList = z.array(z.number().int().nonnegative()).min(1).refine(
  (v) => new Set(v).size === v.length,
  "seeds must be distinct",
);

/** The schema of the experiment's configuration. */
export const ExperimentConfigSchema = z.object({
  /** Output directory under runs/ (folders may nest: `sweeps/lr1e-3`). */
  name: z.string().regex(
    /^(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/,
    "use letters, digits, '.', '_' and '-', in folders separated by '/' (no '.' or '..' folders)",
  ).default("experiment"),
  /**
   * Modes compared, each trained once per training seed. The default compares LayerLock with MAE; the comparison
   * modes of claims 2 and 3 (`mae-freeze`, `latent-unfrozen`) are added with `--modes` (docs/results.md), which
   * keeps the default near 105 minutes on a 2-core machine.
   */
  modes: z.array(z.enum(EXPERIMENT_MODES)).min(1).refine(
    (v) => new Set(v).size === v.length,
    "modes must be distinct",
  )
    .default(["mae", "layerlock"]),
  /** Training seeds (model initialisation, masks and data order); tables show the spread over them. */
  seeds: seedList.default([0, 1, 2]),
  /**
   * The training seeds of a mode, where it trains fewer than `seeds` (those of `seeds` listed here): the comparison
   * modes train from two seeds when they are added (about three hours with all four on a 2-core machine).
   */
  seedsByMode: z.record(z.enum(EXPERIMENT_MODES), seedList).default({
    "mae-freeze": [0, 1],
    "latent-unfrozen": [0, 1],
  }),
  /** Overrides of the training configuration of every run (any key of `train --set`). */
  train: z.record(z.unknown()).default({}),
  /**
   * Overrides of one mode's runs, applied over `train` (e.g. `{ "layerlock": { "layerlock": { "keepPixelLoss":
   * true } } }`): where the validation split chose a setting for one mode alone.
   */
  trainByMode: z.record(z.enum(EXPERIMENT_MODES), z.record(z.unknown())).default({}),
  /** The probes. */
  probe: z.object({
    /**
     * Where probes are scored: `val` (clips of the held-out training images) for every choice of settings,
     * `test` (the official test images) for the numbers reported, once.
     */
    split: z.enum(["val", "test"]).default("test"),
    /** Clips of the training split the probes learn from (drawn from the training images less the held-out ones). */
    trainClips: positiveInt.default(4096),
    /**
     * Clips of `split` the probes are scored on: 4096, since at 1024 the noise of the mean of the four probes
     * (about 0.8 points) was as large as the differences measured (docs/results/search.md §10).
     */
    evalClips: positiveInt.default(4096),
    /** Probe seeds (initialisation and shuffling), inside each training seed. */
    seeds: seedList.default([0]),
    /** Linear-probe epochs and peak learning rate (batch 256). */
    linearEpochs: positiveInt.default(1000),
    linearLr: z.number().finite().positive().finite().default(1e-2),
    /** Attentive-probe epochs, peak learning rate and batch size. */
    attentiveEpochs: positiveInt.default(40),
    attentiveLr: z.number().finite().positive().finite().default(1e-3),
    attentiveBatch: positiveInt.default(64),
  }).strict().default({}),
  /** Baselines probed beside the trained encoders. */
  baselines: z.array(z.enum(BASELINES)).refine(
    (v) => new Set(v).size === v.length,
    "baselines must be distinct",
  ).default([...BASELINES]),
  /** Steps between collapse measurements during training. */
  evalEvery: positiveInt.default(200),
}).strict();

/** A validated experiment configuration. */
export type ExperimentConfig = z.infer<typeof ExperimentConfigSchema>;

/** A plain object (not an array or null). */
function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `over` merged into `base`, recursively for plain objects (arrays and other values are replaced). */
export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isPlain(v) && isPlain(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

/** An experiment-level error: a bad setting, named. */
export class ExperimentConfigError extends ConfigError {
  /** Builds the error; `where` names the flag or configuration (`--config`, `experiment`, …). */
  constructor(where: string, message: string, options?: ErrorOptions) {
    super(where, message, options);
    this.name = "ExperimentConfigError";
  }
}

/** Validates a raw experiment configuration; throws an ExperimentConfigError naming every bad key. */
export function parseExperimentConfig(raw: unknown): ExperimentConfig {
  const r = ExperimentConfigSchema.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.map((i) => {
      const key = i.path.length ? i.path.join(".") : "(top level)";
      const extra = i.code === "unrecognized_keys" ? ` (${i.keys.join(", ")})` : "";
      return `  ${key}: ${i.message}${extra}`;
    });
    throw new ExperimentConfigError("experiment", `invalid experiment configuration:\n${lines.join("\n")}`);
  }
  // resolve one run now, so a bad training key is reported before anything runs
  runConfig(r.data, r.data.modes[0], r.data.seeds[0]);
  return r.data;
}

/** The training seeds of `mode`: `seeds`, limited to `seedsByMode[mode]` where it is given. */
export function seedsOf(e: ExperimentConfig, mode: ExperimentMode): number[] {
  const only = e.seedsByMode[mode];
  return only ? e.seeds.filter((s) => only.includes(s)) : e.seeds;
}

/** The runs of an experiment, seed-major (a run cut short has every mode of the first seeds). */
export function plannedRuns(e: ExperimentConfig): { mode: ExperimentMode; seed: number }[] {
  return e.seeds.flatMap((seed) =>
    e.modes.filter((m) => seedsOf(e, m).includes(seed)).map((mode) => ({ mode, seed }))
  );
}

/** The name of one run (a mode trained from one seed) and its directory under runs/<experiment>/. */
export function runName(mode: ExperimentMode, seed: number): string {
  return `${mode}-s${seed}`;
}

/** The training configuration of `mode` from training seed `seed`: the defaults, the overrides, then the run. */
export function runConfig(e: ExperimentConfig, mode: ExperimentMode, seed: number): TrainConfig {
  const variant = VARIANTS[mode];
  const defaults = deepMerge(
    EXPERIMENT_TRAIN_DEFAULTS as unknown as Record<string, unknown>,
    EXPERIMENT_MODE_DEFAULTS[mode] ?? {},
  );
  const base = deepMerge(deepMerge(defaults, e.train), e.trainByMode[mode] ?? {});
  const merged = deepMerge(
    base,
    {
      name: `${e.name}-${runName(mode, seed)}`.replace(/[^A-Za-z0-9._-]/g, "_"),
      seed,
      layerlock: variant ? { ...variant.layerlock, mode: variant.mode } : { mode },
    },
  );
  const steps = (merged.optim as { steps?: unknown })?.steps;
  if (typeof steps === "number" && Number.isInteger(steps) && steps > 0) {
    const log = merged.log as Record<string, unknown>, ll = merged.layerlock as Record<string, unknown>;
    if (log.checkpointEvery === undefined) {
      merged.log = { ...log, checkpointEvery: Math.max(1, Math.round(steps / 8)) };
    }
    merged.layerlock = {
      ...ll,
      pixelSteps: ll.pixelSteps ?? Math.round(steps / 2),
      interval: ll.interval ?? Math.max(1, Math.round(steps / 8)),
    };
  }
  try {
    return parseConfig(merged, "training configuration");
  } catch (err) {
    // name the keys as the experiment's configuration spells them (train.optim.lr)
    throw new ExperimentConfigError(
      "experiment",
      (err as Error).message.replace(/^ {2}(?=\S)/gm, "  train.").replace(
        "invalid training configuration",
        "invalid experiment configuration (training keys)",
      ),
      { cause: err },
    );
  }
}
