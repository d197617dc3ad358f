/**
 * `deno task train [flags]`: trains a video MAE. With no flags it trains the `tiny` preset on the embedded
 * moving-shapes videos on the CPU (a few minutes on 2 cores), writing runs/default/.
 *
 * Flags (each sets a key of the configuration; see src/config.ts for every key and default):
 *   --config FILE.json      a configuration file (flags override it)
 *   --name NAME             run name (runs/NAME/)            --resume      continue runs/NAME exactly
 *   --device auto|cpu|cuda  --preset tiny|small|base|large|huge|giant      --seed N
 *   --steps N  --batch-size N  --lr X  --warmup N  --mask tube|random  --mask-ratio X
 *   --data shapes|fashion|folder  --data-path DIR  --frames N  --size N  --patch N
 *   --init SOURCE           start from these weights (a run, a checkpoint, a VideoMAE .pth, a Hugging Face folder)
 *   --set key.path=value    any other key, e.g. --set optim.clipGrad=1 --set log.every=5
 *   --print-config          print the resolved configuration and exit
 *
 * Data parallel: under torchrun (WORLD_SIZE set) each process is one rank (docs/distributed.md);
 * `./layerlock train --nproc N` starts torchrun on this host.
 * @module
 */
import { parseArgs } from "node:util";
import * as torch from "../../mod.ts";
import { modelConfig, parseConfig, type TrainConfig } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { makeDataset } from "../data/registry.ts";
import { floorClips, makeBatchSource } from "../data/source.ts";
import { collapseEvaluation } from "../eval/collapse_monitor.ts";
import { DataParallel, distOptions } from "../train/data_parallel.ts";
import { resolveDevice } from "../train/device.ts";
import { launchEnv } from "../train/launch.ts";
import { resolveRun, RunFolder } from "../train/run_folder.ts";
import { train } from "../train/trainer.ts";
import { loadInitWeights, sourceArchitecture } from "../interop/import.ts";
import { parseValue, setPath, TRAIN_FLAG_PATHS } from "./flags.ts";
import { runMain } from "./run.ts";

function usage(): string {
  return "usage: deno task train [--config FILE] [--name NAME] [--resume] [--device auto|cpu|cuda] " +
    "[--preset P] [--steps N] [--batch-size N] [--lr X] [--set key=value ...] [--print-config]\n" +
    "       ./layerlock train --nproc N [flags]   (data parallel on this host, started by torchrun)\n" +
    "       --help lists every flag with its default";
}

/** Every flag with the key it sets and its default, then every configuration key for --set. */
function help(): string {
  const defaults = parseConfig({}) as unknown as Record<string, unknown>;
  const at = (path: string) =>
    path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], defaults);
  const show = (v: unknown) => (v === undefined ? "(none)" : typeof v === "string" ? v : JSON.stringify(v));
  const rows: [string, string][] = [
    ["--config FILE", "a JSON configuration (flags and --set override it)"],
    ["--resume", "continue runs/NAME (re-running the same command with --name does too)"],
    ["--set key.path=value", "any configuration key below (repeatable)"],
    ["--print-config", "print the resolved configuration and exit"],
    ["--nproc N", "./layerlock train only: N data-parallel processes on this host (torchrun)"],
    ["--help", "this list"],
    ...Object.entries(TRAIN_FLAG_PATHS).map(([flag, path]): [string, string] => [
      `--${flag} X`,
      `${path} (default ${
        flag === "name" ? "default, default-2, ... (never an earlier run)" : show(at(path))
      })`,
    ]),
  ];
  const keys: string[] = [];
  const walk = (o: unknown, prefix: string) => {
    if (typeof o === "object" && o !== null && !Array.isArray(o)) {
      for (const [k, v] of Object.entries(o)) walk(v, prefix ? `${prefix}.${k}` : k);
    } else keys.push(`  ${prefix} = ${show(o)}`);
  };
  walk(defaults, "");
  const w = Math.max(...rows.map(([f]) => f.length));
  return `${usage()}\n\nflags:\n${rows.map(([f, d]) => `  ${f.padEnd(w)}  ${d}`).join("\n")}\n\n` +
    `configuration keys and defaults (src/config.ts documents each; set with --set):\n${keys.join("\n")}`;
}

/** The command line's flags (a ConfigError for an unknown or malformed one). */
function parseFlags(): Record<string, unknown> {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    config: { type: "string" },
    resume: { type: "boolean" },
    set: { type: "string", multiple: true },
    "print-config": { type: "boolean" },
    help: { type: "boolean" },
    nproc: { type: "string" },
  };
  for (const f of Object.keys(TRAIN_FLAG_PATHS)) options[f] = { type: "string" };
  try {
    return parseArgs({ args: Deno.args, options, allowPositionals: false }).values;
  } catch (e) {
    throw new ConfigError("flags", `${(e as Error).message}\n${usage()}`);
  }
}

/** The configuration the command line describes: --config, then the flags, then --set. */
function rawConfig(values: Record<string, unknown>): Record<string, unknown> {
  let raw: Record<string, unknown> = {};
  if (values.config) {
    try {
      raw = JSON.parse(Deno.readTextFileSync(values.config as string));
    } catch (e) {
      throw new ConfigError("--config", `cannot read --config ${values.config}: ${(e as Error).message}`);
    }
  }
  for (const [flag, path] of Object.entries(TRAIN_FLAG_PATHS)) {
    const v = values[flag];
    const text = flag === "name" || flag === "data-path" || flag === "init"; // paths and names as written
    if (v !== undefined) setPath(raw, path, text ? v : parseValue(v as string));
  }
  for (const kv of (values.set as string[] | undefined) ?? []) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new ConfigError("--set", `--set expects key.path=value, got '${kv}'`);
    setPath(raw, kv.slice(0, i), parseValue(kv.slice(i + 1)));
  }
  return raw;
}

async function main(): Promise<number> {
  const values = parseFlags();
  if (values.help) {
    console.log(help());
    return 0;
  }
  if (values.nproc !== undefined) {
    throw new ConfigError(
      "--nproc",
      "--nproc is handled by ./layerlock train, which starts torchrun; under deno task, run " +
        `torchrun --standalone --nproc-per-node=${values.nproc} --no-python deno task train-worker [flags]`,
    );
  }
  const raw = rawConfig(values);
  // a run started from other weights takes their architecture (flags that change it are refused when it loads)
  if (typeof raw.init === "string" && !values.resume) {
    raw.model = { ...sourceArchitecture(raw.init), ...(raw.model as Record<string, unknown> ?? {}) };
  }
  const configured = typeof raw.name === "string" ? raw : { ...raw, name: "default" };
  parseConfig(configured, values.config ? `config file ${values.config}` : "configuration"); // before runs/
  const run = resolveRun(raw, !!values.resume);
  for (const note of run.notes) console.log(`train: ${note}`);
  const cfg: TrainConfig = parseConfig(run.raw, run.source);
  const done = new RunFolder(`runs/${cfg.name}`).completedSteps();
  if (run.resume && done >= cfg.optim.steps) {
    console.log(
      `train: runs/${cfg.name} is complete (step ${done} of ${cfg.optim.steps}); nothing to do ` +
        "(--steps N continues it to N steps)",
    );
    return 0;
  }
  // Launched by torchrun (WORLD_SIZE > 1): join the job; rank 0 alone prints, writes and names the run.
  const env = launchEnv();
  const dp = env && env.worldSize > 1 ? DataParallel.init(env, resolveDevice(cfg), distOptions(cfg)) : null;
  try {
    if (dp) {
      if (dp.rank === 0) dp.store.set("run/name", cfg.name);
      else cfg.name = dp.store.get("run/name");
    }
    return await trainRun(cfg, run.resume, !!values["print-config"], dp);
  } finally {
    dp?.dispose();
  }
}

/** The lines that open a run: torch, device, model, data, the configuration. */
function describe(cfg: TrainConfig, device: torch.Device, dp: DataParallel | null): string[] {
  const m = modelConfig(cfg), amp = device !== "cpu" && cfg.amp === "bf16" ? " (bf16 autocast)" : "";
  return [
    `layerlock train: torch ${torch.torchVersion()}, device ${device}${amp}`,
    `model: ${cfg.model.preset} (encoder ${m.encoderDim}x${m.encoderDepth}, ${m.encoderHeads} heads; decoder ` +
    `${m.decoderDim}x${m.decoderDepth}), clips ${cfg.data.frames}x${cfg.data.size}x${cfg.data.size} from ` +
    `${cfg.data.source}, ${cfg.mask.kind} mask ${cfg.mask.ratio}`,
    JSON.stringify(cfg),
    ...(dp
      ? [
        `data parallel: ${dp.size} processes (${dp.group.backend}), ${cfg.optim.batchSize} clips each per step, ` +
        `global batch ${dp.size * cfg.optim.batchSize}`,
      ]
      : []),
  ];
}

/** Trains `cfg` (a resolved configuration) as this process's part of the job `dp` (null: alone). */
async function trainRun(cfg: TrainConfig, resume: boolean, printOnly: boolean, dp: DataParallel | null) {
  const folder = new RunFolder(`runs/${cfg.name}`), rank0 = !dp || dp.rank === 0;
  const log = rank0 ? (s: string) => console.log(s) : () => {};
  const device = resolveDevice(cfg, dp?.localRank);
  describe(cfg, device, dp).forEach(log);
  if (printOnly) return 0;
  if (!resume && folder.checkpoints().length > 0) {
    throw new ConfigError(
      "--name",
      `${folder.dir} already holds a run; continue it with --resume --name ${cfg.name}, or pick another --name`,
    );
  }
  if (!resume && rank0) folder.writeConfig(cfg);
  log(`outputs: ${folder.dir}/config.json, ${folder.dir}/metrics.jsonl, ${folder.checkpointDir}/`);
  using collapse = cfg.log.collapseEvery > 0
    ? await collapseEvaluation(await makeDataset(cfg), device)
    : null;
  const r = await train(cfg, {
    runDir: folder.dir,
    resume,
    data: (c, state, shard) =>
      makeBatchSource(c, state, shard, (ds) => {
        const videos = ds as {
          classes?: Record<string, number> | null;
          decoderKind?: string;
          videos?: unknown[];
        };
        if (videos.decoderKind) {
          const workers = cfg.data.workers || navigator.hardwareConcurrency;
          const how = videos.decoderKind === "libav" ? "in process (libav)" : "by the ffmpeg program";
          log(
            `videos: ${
              videos.videos!.length
            } files, ${ds.length} clips per epoch, decoded ${how} by ${workers} workers`,
          );
        }
        // a labelled folder's class ids are saved beside the run (reuse them for validation and test lists)
        if (videos.classes && rank0) folder.writeLabels(videos.classes);
      }),
    dist: dp,
    evaluate: collapse ? { every: cfg.log.collapseEvery, fn: collapse.measure } : undefined,
    floorClips: (n) => floorClips(cfg, n),
    loadInit: loadInitWeights,
  });
  if (r.skippedFiles.length) {
    log(`skipped ${r.skippedFiles.length} unreadable file(s): ${r.skippedFiles.join(", ")}`);
  }
  if (r.losses.length >= 2) {
    const first = r.losses[0], last = r.losses[r.losses.length - 1];
    log(
      `loss ${first.loss.toFixed(4)} (step ${first.step}) -> ${last.loss.toFixed(4)} (step ${r.step}); ` +
        `live tensors ${torch.liveTensors()}`,
    );
  }
  return r.signal === "SIGTERM" ? 143 : r.interrupted ? 130 : 0;
}

await runMain("train", main);
