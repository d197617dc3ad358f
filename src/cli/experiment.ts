/**
 * `deno task experiment [flags]`: the small-scale reproduction of LayerLock's claims on Moving Fashion-MNIST
 * (see src/eval/experiment.ts). Flags override the defaults, which fit in under an hour on 2 CPU cores:
 *   --name NAME  --modes mae,mae-freeze,layerlock,latent-unfrozen  --steps N  --batch-size N  --lr X  --preset P
 *   --frames N  --size N  --patch N  --seed N  --probe-seeds 0,1,2  --train-clips N  --test-clips N
 *   --linear-epochs N  --linear-lr X  --attentive-epochs N  --attentive-lr X  --attentive-batch N
 *   --eval-every N  --device auto|cpu|cuda
 *   --no-baseline     skip probing the untrained encoder
 *   --report-only     re-render runs/NAME/report.html from its results.json
 * @module
 */
import { parseArgs } from "node:util";
import * as torch from "../../mod.ts";
import {
  DEFAULT_EXPERIMENT,
  type ExperimentConfig,
  rerenderReport,
  runExperiment,
} from "../eval/experiment.ts";
import { type Mode, MODES } from "../layerlock/schedule.ts";

const ints = (s: string, flag: string) =>
  s.split(",").map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${flag}: '${v}' is not a non-negative integer`);
    return n;
  });

async function main(): Promise<number> {
  const flags = [
    "name",
    "modes",
    "steps",
    "batch-size",
    "lr",
    "preset",
    "frames",
    "size",
    "patch",
    "seed",
    "probe-seeds",
    "train-clips",
    "test-clips",
    "linear-epochs",
    "linear-lr",
    "attentive-epochs",
    "attentive-lr",
    "attentive-batch",
    "eval-every",
    "device",
  ];
  let v: Record<string, string | undefined>;
  let reportOnly = false, noBaseline = false;
  try {
    const parsed = parseArgs({
      args: Deno.args,
      options: {
        ...Object.fromEntries(flags.map((f) => [f, { type: "string" as const }])),
        "report-only": { type: "boolean" as const },
        "no-baseline": { type: "boolean" as const },
      },
    }).values as Record<string, string | boolean | undefined>;
    reportOnly = parsed["report-only"] === true;
    noBaseline = parsed["no-baseline"] === true;
    delete parsed["report-only"];
    delete parsed["no-baseline"];
    v = parsed as Record<string, string | undefined>;
  } catch (e) {
    console.error(`experiment: ${(e as Error).message}`);
    return 2;
  }
  const e: ExperimentConfig = { ...DEFAULT_EXPERIMENT };
  try {
    if (v.name) e.name = v.name;
    if (v.modes) {
      const ms = v.modes.split(",");
      for (const m of ms) {
        if (!MODES.includes(m as Mode)) {
          throw new Error(`--modes: unknown mode '${m}' (${MODES.join(", ")})`);
        }
      }
      e.modes = ms as Mode[];
    }
    const num = (flag: string, key: keyof ExperimentConfig) => {
      if (v[flag] !== undefined) (e as unknown as Record<string, number>)[key] = ints(v[flag]!, flag)[0];
    };
    num("steps", "steps");
    num("batch-size", "batchSize");
    num("frames", "frames");
    num("size", "size");
    num("patch", "patch");
    num("seed", "seed");
    num("train-clips", "trainClips");
    num("test-clips", "testClips");
    num("linear-epochs", "linearEpochs");
    num("attentive-epochs", "attentiveEpochs");
    num("attentive-batch", "attentiveBatch");
    for (
      const [flag, key] of [["lr", "lr"], ["linear-lr", "linearLr"], ["attentive-lr", "attentiveLr"]] as const
    ) {
      if (v[flag] === undefined) continue;
      const x = Number(v[flag]);
      if (!(Number.isFinite(x) && x > 0)) throw new Error(`--${flag}: '${v[flag]}' is not a number > 0`);
      e[key] = x;
    }
    if (noBaseline) e.baseline = false;
    num("eval-every", "evalEvery");
    if (v["probe-seeds"]) e.probeSeeds = ints(v["probe-seeds"], "probe-seeds");
    if (v.preset) e.preset = v.preset as ExperimentConfig["preset"];
    if (v.device) e.device = v.device as ExperimentConfig["device"];
  } catch (err) {
    console.error(`experiment: ${(err as Error).message}`);
    return 2;
  }
  if (reportOnly) {
    await rerenderReport(e.name);
    console.log(`re-rendered runs/${e.name}/report.html from its results.json`);
    return 0;
  }
  console.log(`layerlock experiment: torch ${torch.torchVersion()}; ${JSON.stringify(e)}`);
  await runExperiment(e);
  return 0;
}

try {
  Deno.exit(await main());
} catch (err) {
  if (err instanceof torch.TorchError) {
    console.error(`experiment: ${err.message}`);
    Deno.exit(1);
  }
  throw err;
}
