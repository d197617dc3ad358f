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
 *   --set key.path=value    any other key, e.g. --set optim.clipGrad=1 --set log.every=5
 *   --print-config          print the resolved configuration and exit
 *
 * Data parallel: under torchrun (WORLD_SIZE set) each process is one rank (README, "Distributed training");
 * `./layerlock train --nproc N` starts torchrun on this host.
 * @module
 */
import { parseArgs } from "node:util";
import * as torch from "../../mod.ts";
import { parseConfig, type TrainConfig } from "../config.ts";
import { parseValue, setPath, TRAIN_FLAG_PATHS } from "./flags.ts";
import { train, type TrainOptions } from "../train/trainer.ts";
import { modelConfig } from "../config.ts";
import { resolveDevice } from "../train/device.ts";
import { floorClips, makeBatchSource } from "../data/source.ts";
import { makeDataset } from "../data/registry.ts";
import { batchToTensor } from "../data/clip.ts";
import { collapseMetrics } from "../eval/collapse.ts";
import { extractFeatures } from "../eval/features.ts";
import { runMain } from "./run.ts";
import { IoError } from "../errors.ts";
import { launchEnv } from "../train/launch.ts";
import { listCheckpoints } from "../train/checkpoint.ts";
import { DataParallel, distOptions } from "../train/data_parallel.ts";

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

function existsDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

async function main(): Promise<number> {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    config: { type: "string" },
    resume: { type: "boolean" },
    set: { type: "string", multiple: true },
    "print-config": { type: "boolean" },
    help: { type: "boolean" },
    nproc: { type: "string" },
  };
  for (const f of Object.keys(TRAIN_FLAG_PATHS)) options[f] = { type: "string" };
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: Deno.args, options, allowPositionals: false }).values;
  } catch (e) {
    console.error(`train: ${(e as Error).message}\n${usage()}`);
    return 2;
  }
  if (values.help) {
    console.log(help());
    return 0;
  }
  if (values.nproc !== undefined) {
    console.error(
      "train: --nproc is handled by ./layerlock train, which starts torchrun; under deno task, run " +
        `torchrun --standalone --nproc-per-node=${values.nproc} --no-python deno task train-worker [flags]`,
    );
    return 2;
  }

  // The configuration the command line describes: --config, then the flags, then --set.
  let raw: Record<string, unknown> = {};
  let source = "configuration";
  if (values.config) {
    try {
      raw = JSON.parse(await Deno.readTextFile(values.config as string));
      source = `config file ${values.config}`;
    } catch (e) {
      console.error(`train: cannot read --config ${values.config}: ${(e as Error).message}`);
      return 2;
    }
  }
  for (const [flag, path] of Object.entries(TRAIN_FLAG_PATHS)) {
    if (values[flag] !== undefined) {
      setPath(
        raw,
        path,
        flag === "name" || flag === "data-path" ? values[flag] : parseValue(values[flag] as string),
      );
    }
  }
  for (const kv of (values.set as string[] | undefined) ?? []) {
    const i = kv.indexOf("=");
    if (i <= 0) {
      console.error(`train: --set expects key.path=value, got '${kv}'`);
      return 2;
    }
    setPath(raw, kv.slice(0, i), parseValue(kv.slice(i + 1)));
  }
  const named = typeof raw.name === "string";
  let name = named ? raw.name as string : "default";
  parseConfig({ ...raw, name }, source); // refuse a bad name or value before touching runs/

  // A run folder that holds checkpoints continues when it is named again (with --resume, or by re-running the
  // same command: what a requeued cluster job does); keys given again must equal the saved ones, but for those
  // that are safe to change (RESUME_CHANGEABLE).
  let resume = !!values.resume;
  if (
    !resume && named && existsDir(`runs/${name}/checkpoints`) && hasCheckpoint(`runs/${name}/checkpoints`)
  ) {
    resume = true;
  }
  if (resume) {
    const runDir = `runs/${name}`;
    let saved: Record<string, unknown>;
    try {
      saved = JSON.parse(await Deno.readTextFile(`${runDir}/config.json`));
    } catch {
      console.error(`train: cannot resume: ${runDir}/config.json is missing or unreadable`);
      return 2;
    }
    const { changed, refused } = compareToSaved(raw, saved);
    if (refused.length) {
      console.error(
        `train: ${runDir} was trained with another configuration, which a resumed run keeps: ${
          refused.map((d) => `${d.key} (saved ${JSON.stringify(d.saved)}, given ${JSON.stringify(d.given)})`)
            .join(
              "; ",
            )
        }. Drop these flags to continue it, or pass another --name to start a new run` +
          ` (safe to change on resume: ${RESUME_CHANGEABLE.join(", ")})`,
      );
      return 2;
    }
    raw = saved;
    for (const d of changed) {
      setPath(raw, d.key, d.given);
      console.log(
        `train: resuming with ${d.key} = ${JSON.stringify(d.given)} (was ${JSON.stringify(d.saved)})`,
      );
    }
    raw.name = name; // the folder named on the command line, whatever name a copied config.json holds
    if (!values.resume) {
      console.log(`train: runs/${name} holds a run; continuing it (another --name starts a new one)`);
    }
    source = `${runDir}/config.json`;
    values.resume = true;
  } else if (!named) {
    // Named neither by --name nor by the config file: never collide with an earlier run (default, default-2, ...).
    for (let i = 2; existsDir(`runs/${name}/checkpoints`); i++) name = `default-${i}`;
    raw.name = name;
  }

  const cfg: TrainConfig = parseConfig(raw, source); // a ConfigError exits with 2 (runMain)
  if (values.resume && existsDir(`runs/${cfg.name}/checkpoints`)) {
    const ckpts = listCheckpoints(`runs/${cfg.name}/checkpoints`);
    const done = ckpts.length ? Number(ckpts[ckpts.length - 1].match(/step_(\d+)/)![1]) : 0;
    if (done >= cfg.optim.steps) {
      console.log(
        `train: runs/${cfg.name} is complete (step ${done} of ${cfg.optim.steps}); nothing to do (--steps N continues it ` +
          "to N steps)",
      );
      return 0;
    }
  }
  // Launched by torchrun (WORLD_SIZE > 1): join the job; rank 0 alone prints, writes and names the run.
  const env = launchEnv();
  const dp = env && env.worldSize > 1 ? DataParallel.init(env, resolveDevice(cfg), distOptions(cfg)) : null;
  try {
    if (dp) {
      if (dp.rank === 0) dp.store.set("run/name", cfg.name);
      else cfg.name = dp.store.get("run/name");
    }
    return await trainRun(cfg, values, dp);
  } finally {
    dp?.dispose();
  }
}

/** Trains `cfg` (a resolved configuration) as this process's part of the job `dp` (null: alone). */
async function trainRun(
  cfg: TrainConfig,
  values: Record<string, unknown>,
  dp: DataParallel | null,
): Promise<number> {
  const name = cfg.name, runDir = `runs/${name}`, rank0 = !dp || dp.rank === 0;
  const console = rank0 ? globalThis.console : { ...globalThis.console, log: () => {} };
  const device = resolveDevice(cfg, dp?.localRank);
  const m = modelConfig(cfg);
  console.log(
    `layerlock train: torch ${torch.torchVersion()}, device ${device}${
      device !== "cpu" && cfg.amp === "bf16" ? " (bf16 autocast)" : ""
    }`,
  );
  console.log(
    `model: ${cfg.model.preset} (encoder ${m.encoderDim}x${m.encoderDepth}, ${m.encoderHeads} heads; decoder ${m.decoderDim}x${m.decoderDepth}), ` +
      `clips ${cfg.data.frames}x${cfg.data.size}x${cfg.data.size} from ${cfg.data.source}, ${cfg.mask.kind} mask ${cfg.mask.ratio}`,
  );
  console.log(JSON.stringify(cfg));
  if (dp) {
    console.log(
      `data parallel: ${dp.size} processes (${dp.group.backend}), ${cfg.optim.batchSize} clips each per step, ` +
        `global batch ${dp.size * cfg.optim.batchSize}`,
    );
  }
  if (values["print-config"]) return 0;

  if (!values.resume && existsDir(`${runDir}/checkpoints`) && hasCheckpoint(`${runDir}/checkpoints`)) {
    console.error(
      `train: ${runDir} already holds a run; continue it with --resume --name ${name}, or pick another --name`,
    );
    return 2;
  }
  try {
    await Deno.mkdir(runDir, { recursive: true });
    if (!values.resume && rank0) {
      // a hold (debug.holdAt) is for the invocation that asks for it: a resumed run does not inherit it
      const { holdAt: _h, holdRank: _r, ...debug } = cfg.debug;
      await Deno.writeTextFile(`${runDir}/config.json`, JSON.stringify({ ...cfg, debug }, null, 2) + "\n");
    }
  } catch (e) {
    throw new IoError(runDir, `cannot write the run folder ${runDir}: ${(e as Error).message}`, { cause: e });
  }
  console.log(`outputs: ${runDir}/config.json, ${runDir}/metrics.jsonl, ${runDir}/checkpoints/`);
  let evaluate: TrainOptions["evaluate"];
  let evalClips: torch.Tensor | null = null;
  if (cfg.log.collapseEvery > 0) {
    // 64 fixed clips (indices past any the sampler is likely to reach first) for the collapse metrics.
    const ds = await makeDataset(cfg);
    const b = await ds.batch(Array.from({ length: 64 }, (_, i) => ds.length - 1 - i));
    evalClips = torch.keep(batchToTensor(b, resolveDevice(cfg)));
    const x = evalClips;
    evaluate = {
      every: cfg.log.collapseEvery,
      fn: (model) => ({ ...collapseMetrics(extractFeatures(model.encoder, x).pooled) }),
    };
  }
  const r = await train(cfg, {
    runDir,
    resume: !!values.resume,
    // a labelled folder's class ids are saved beside the run (reuse them for validation and test lists)
    data: (c, state, shard) =>
      makeBatchSource(c, state, shard, (ds) => {
        const folder = ds as {
          classes?: Record<string, number> | null;
          decoderKind?: string;
          videos?: unknown[];
        };
        if (folder.decoderKind) {
          const workers = cfg.data.workers || navigator.hardwareConcurrency;
          const how = folder.decoderKind === "libav" ? "in process (libav)" : "by the ffmpeg program";
          console.log(
            `videos: ${
              folder.videos!.length
            } files, ${ds.length} clips per epoch, decoded ${how} by ${workers} workers`,
          );
        }
        const classes = folder.classes;
        if (classes && rank0) {
          Deno.writeTextFileSync(`${runDir}/labels.json`, JSON.stringify(classes, null, 2) + "\n");
        }
      }),
    dist: dp,
    evaluate,
    floorClips: (n) => floorClips(cfg, n),
  });
  evalClips?.dispose();
  if (r.skippedFiles.length) {
    console.log(`skipped ${r.skippedFiles.length} unreadable file(s): ${r.skippedFiles.join(", ")}`);
  }
  if (r.losses.length >= 2) {
    const first = r.losses[0].loss, last = r.losses[r.losses.length - 1].loss;
    console.log(
      `loss ${first.toFixed(4)} (step ${r.losses[0].step}) -> ${
        last.toFixed(4)
      } (step ${r.step}); live tensors ${torch.liveTensors()}`,
    );
  }
  return r.signal === "SIGTERM" ? 143 : r.interrupted ? 130 : 0;
}

/** Keys a resumed run may change (printed when it does): logging, the total length, how data is read. */
const RESUME_CHANGEABLE = [
  "log.*",
  "optim.steps",
  "threads",
  "device",
  "data.path",
  "data.workers",
  "data.prefetch",
  "data.decoder",
  "data.index",
  "dist.timeoutS",
  "dist.bucketMb",
  "dist.overlap",
  "graphs.*",
  "layerlock.targetStream",
  "nonFinite.*",
  "debug.*",
];

function changeable(key: string): boolean {
  return RESUME_CHANGEABLE.some((k) => k.endsWith(".*") ? key.startsWith(k.slice(0, -1)) : key === k);
}

/** The leaves of `given` that differ from `saved`: those a resume may change, and those it refuses. */
export function compareToSaved(
  given: Record<string, unknown>,
  saved: Record<string, unknown>,
): { changed: Diff[]; refused: Diff[] } {
  const changed: Diff[] = [], refused: Diff[] = [];
  const walk = (g: unknown, s: unknown, key: string) => {
    if (typeof g === "object" && g !== null && !Array.isArray(g)) {
      for (const [k, v] of Object.entries(g)) {
        walk(
          v,
          typeof s === "object" && s !== null ? (s as Record<string, unknown>)[k] : undefined,
          key ? `${key}.${k}` : k,
        );
      }
      return;
    }
    if (key === "name" || JSON.stringify(g) === JSON.stringify(s)) return;
    (changeable(key) ? changed : refused).push({ key, saved: s, given: g });
  };
  walk(given, saved, "");
  return { changed, refused };
}

interface Diff {
  key: string;
  saved: unknown;
  given: unknown;
}

function hasCheckpoint(dir: string): boolean {
  return [...Deno.readDirSync(dir)].some((e) => /^step_\d+\.safetensors$/.test(e.name));
}

await runMain("train", main);
