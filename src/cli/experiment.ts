/**
 * `deno task experiment [flags]`: the small-scale reproduction of LayerLock's claims on Moving Fashion-MNIST
 * (src/eval/experiment.ts): every mode from every training seed, baselines, probes, loss floors, a report.
 *
 * The training protocol is the training configuration (src/config.ts), so its keys and flags are the same
 * as `train`'s; the rest configures the experiment (src/eval/experiment_config.ts):
 *   --config FILE.json     an experiment configuration file (flags override it)
 *   --name NAME            outputs in runs/NAME/             --modes mae,mae-freeze,layerlock,latent-unfrozen
 *   --seeds 0,1            training seeds                    --probe-split val|test (val for choices, test to report)
 *   --probe-seeds 0        --train-clips N  --eval-clips N (alias --test-clips)
 *   --linear-epochs N  --linear-lr X  --attentive-epochs N  --attentive-lr X  --attentive-batch N
 *   --baselines untrained,embedding,pixels|none  (--no-baseline: none)   --eval-every N
 *   training flags, for every run: --steps N --batch-size N --lr X --warmup N --preset P --frames N --size N
 *     --patch N --mask tube|random --mask-ratio X --device auto|cpu|cuda
 *   --set key=value        a training key (model.encoderDepth=4, layerlock.pixelSteps=900, target.normalize=true)
 *                          or an experiment key (probe.linearEpochs=100, seeds=[0,1,2], evalEvery=100)
 *   --print-config         print the resolved configuration and each mode's training configuration, and exit
 *   --report-only          re-render runs/NAME/report.html from its results.json
 * @module
 */
import { parseArgs } from "node:util";
import * as torch from "../../mod.ts";
import { parseValue, setPath, TRAIN_FLAG_PATHS } from "./flags.ts";
import { rerenderReport, runExperiment } from "../experiment/run.ts";
import {
  BASELINES,
  ExperimentConfigError,
  ExperimentConfigSchema,
  parseExperimentConfig,
  runConfig,
} from "../experiment/config.ts";
import { runMain } from "./run.ts";

/** Experiment flags and the experiment keys they set (lists are comma-separated). */
const EXPERIMENT_FLAGS: Record<
  string,
  { path: string; kind: "string" | "int" | "number" | "ints" | "list" }
> = {
  name: { path: "name", kind: "string" },
  modes: { path: "modes", kind: "list" },
  seeds: { path: "seeds", kind: "ints" },
  "probe-split": { path: "probe.split", kind: "string" },
  "probe-seeds": { path: "probe.seeds", kind: "ints" },
  "train-clips": { path: "probe.trainClips", kind: "int" },
  "eval-clips": { path: "probe.evalClips", kind: "int" },
  "test-clips": { path: "probe.evalClips", kind: "int" },
  "linear-epochs": { path: "probe.linearEpochs", kind: "int" },
  "linear-lr": { path: "probe.linearLr", kind: "number" },
  "attentive-epochs": { path: "probe.attentiveEpochs", kind: "int" },
  "attentive-lr": { path: "probe.attentiveLr", kind: "number" },
  "attentive-batch": { path: "probe.attentiveBatch", kind: "int" },
  baselines: { path: "baselines", kind: "list" },
  "eval-every": { path: "evalEvery", kind: "int" },
};

/** Training flags the experiment passes to every run (name and seed are the experiment's own). */
const TRAIN_FLAGS = Object.entries(TRAIN_FLAG_PATHS).filter(([f]) => f !== "name" && f !== "seed");

/** The top-level keys of the experiment's configuration: a `--set` key starting with one is an experiment key. */
const EXPERIMENT_KEYS = new Set(Object.keys(ExperimentConfigSchema.shape));

function flagValue(flag: string, text: string, kind: string): unknown {
  const int = (v: string) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isInteger(n) || n < 0) {
      throw new ExperimentConfigError(`--${flag}`, `--${flag}: '${v}' is not a non-negative integer`);
    }
    return n;
  };
  switch (kind) {
    case "int":
      return int(text);
    case "ints":
      return text.split(",").map(int);
    case "number": {
      const x = Number(text);
      if (text.trim() === "" || !Number.isFinite(x)) {
        throw new ExperimentConfigError(`--${flag}`, `--${flag}: '${text}' is not a number`);
      }
      return x;
    }
    case "list":
      return text === "none" ? [] : text.split(",").map((s) => s.trim());
    default:
      return text;
  }
}

/** The raw experiment configuration from the command line (not yet validated). */
export async function experimentConfigFromArgs(
  args: string[],
  allowPositionals = false,
): Promise<
  { raw: Record<string, unknown>; reportOnly: boolean; printConfig: boolean; positionals: string[] }
> {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    config: { type: "string" },
    set: { type: "string", multiple: true },
    "report-only": { type: "boolean" },
    "print-config": { type: "boolean" },
    "no-baseline": { type: "boolean" },
    seed: { type: "string" },
  };
  for (const f of Object.keys(EXPERIMENT_FLAGS)) options[f] = { type: "string" };
  for (const [f] of TRAIN_FLAGS) options[f] = { type: "string" };
  let v: Record<string, unknown>, positionals: string[];
  try {
    ({ values: v, positionals } = parseArgs({ args, options, allowPositionals }));
  } catch (e) {
    throw new ExperimentConfigError("experiment", (e as Error).message, { cause: e });
  }
  if (v.seed !== undefined) {
    throw new ExperimentConfigError(
      "--seed",
      "--seed: the experiment takes training seeds as --seeds (e.g. --seeds 0,1)",
    );
  }
  let raw: Record<string, unknown> = {};
  if (v.config !== undefined) {
    try {
      raw = JSON.parse(await Deno.readTextFile(v.config as string));
    } catch (e) {
      const why = (e as Error).message;
      throw new ExperimentConfigError("--config", `cannot read --config ${v.config}: ${why}`, { cause: e });
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new ExperimentConfigError("--config", `--config ${v.config}: expected a JSON object`);
    }
  }
  for (const [flag, { path, kind }] of Object.entries(EXPERIMENT_FLAGS)) {
    if (v[flag] !== undefined) setPath(raw, path, flagValue(flag, v[flag] as string, kind));
  }
  if (v["no-baseline"]) {
    if (v.baselines !== undefined) {
      throw new ExperimentConfigError("--no-baseline", "--no-baseline and --baselines contradict");
    }
    raw.baselines = [];
  }
  for (const [flag, path] of TRAIN_FLAGS) {
    if (v[flag] !== undefined) {
      setPath(raw, `train.${path}`, flag === "data-path" ? v[flag] : parseValue(v[flag] as string));
    }
  }
  for (const kv of (v.set as string[] | undefined) ?? []) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new ExperimentConfigError("--set", `--set expects key.path=value, got '${kv}'`);
    const key = kv.slice(0, i);
    const top = key.split(".")[0];
    setPath(raw, EXPERIMENT_KEYS.has(top) ? key : `train.${key}`, parseValue(kv.slice(i + 1)));
  }
  return { raw, reportOnly: v["report-only"] === true, printConfig: v["print-config"] === true, positionals };
}

async function main(): Promise<number> {
  let e;
  let opts;
  try {
    opts = await experimentConfigFromArgs(Deno.args);
    if (opts.reportOnly) {
      const name = (opts.raw.name as string | undefined) ?? "experiment";
      await rerenderReport(name);
      console.log(`re-rendered runs/${name}/report.html from its results.json`);
      return 0;
    }
    e = parseExperimentConfig(opts.raw);
  } catch (err) {
    if (err instanceof ExperimentConfigError) {
      console.error(`experiment: ${err.message}`);
      console.error(`(baselines: ${BASELINES.join(", ")} or none; see src/cli/experiment.ts for every flag)`);
      return 2;
    }
    throw err;
  }
  console.log(`layerlock experiment: torch ${torch.torchVersion()}`);
  console.log(JSON.stringify(e));
  if (opts.printConfig) {
    for (const m of e.modes) console.log(`${m}: ${JSON.stringify(runConfig(e, m, e.seeds[0]))}`);
    return 0;
  }
  await runExperiment(e);
  return 0;
}

if (import.meta.main) await runMain("experiment", main, new URL(import.meta.url));
