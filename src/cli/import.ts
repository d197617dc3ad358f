/**
 * `./layerlock import SOURCE --name NAME [flags]` (`deno task import`): makes the run `runs/NAME` (config.json and
 * one checkpoint) from weights made elsewhere, for every command that takes a run (`probe --run NAME`,
 * `embed --run NAME`, `export --run NAME`; `train --init SOURCE` starts a run from these weights).
 *
 * SOURCE is one of:
 *   a Hugging Face folder        config.json + model.safetensors (or shards, or pytorch_model.bin) of
 *                                transformers' VideoMAEModel / VideoMAEForPreTraining / VideoMAEForVideoClassification
 *   a VideoMAE .pth              torch.save of VideoMAE's or VideoMAEv2's code: pretraining (encoder + decoder) or
 *                                fine-tuning (encoder; its head is dropped, the decoder initialised fresh), the
 *                                state dict under `model` or `module` or bare, any module./_orig_mod./encoder./
 *                                backbone. prefixes
 *   a run or checkpoint of ours  runs/OTHER or a step_*.safetensors (its model weights are copied)
 *
 *   --name NAME               the run to make (runs/NAME must not exist)
 *   --frames N  --size S      another clip than the source's: a fixed position table is rebuilt for it (exact),
 *                             a learned one interpolated (trilinear over T×H×W)
 *   --set key.path=value      a configuration key (repeatable), e.g. --set model.encoderHeads=12 for a .pth of a
 *                             width VideoMAE has no model of; keys the source records cannot be changed
 *   --layer-norm-eps X        run a Hugging Face model at this LayerNorm eps instead of its config.json's (the Hub's
 *                             VideoMAE conversions record transformers' default 1e-12 for weights trained at 1e-6)
 *   --source-frames F         a .pth with a learned position table: the clip length it was trained for (16)
 *
 * What was read, dropped, initialised fresh or rebuilt is printed, one line each. A source that is not what it
 * should be (a missing or unmappable key, a shape or config.json that disagrees, another model_type, a cut
 * file) is one line naming the file and key, and exit code 2. The workflow is `src/interop/import.ts`.
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError } from "../errors.ts";
import { importWeights } from "../interop/import.ts";
import { parseValue } from "./flags.ts";
import { runMain } from "./run.ts";

const USAGE = "usage: ./layerlock import SOURCE --name NAME [--frames N] [--size S] [--set key=value ...] " +
  "[--layer-norm-eps X] [--source-frames F] (all flags: --help)";

function int(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(v) || v < 1) {
    throw new ConfigError(`--${flag}`, `--${flag}: expected a positive integer, got '${text}'`);
  }
  return v;
}

function main(): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        name: { type: "string" },
        frames: { type: "string" },
        size: { type: "string" },
        set: { type: "string", multiple: true },
        "layer-norm-eps": { type: "string" },
        "source-frames": { type: "string" },
      },
    });
  } catch (e) {
    throw new ConfigError("import", `${(e as Error).message}; ${USAGE}`);
  }
  const { values: v, positionals } = parsed;
  if (positionals.length !== 1) throw new ConfigError("import", `name one SOURCE; ${USAGE}`);
  if (!v.name) throw new ConfigError("import", `pass --name NAME, the run to make; ${USAGE}`);
  const set: [string, unknown][] = (v.set ?? []).map((kv) => {
    const i = kv.indexOf("=");
    if (i <= 0) throw new ConfigError("--set", `--set expects key.path=value, got '${kv}'`);
    return [kv.slice(0, i), parseValue(kv.slice(i + 1))];
  });
  let eps: number | undefined;
  if (v["layer-norm-eps"] !== undefined) {
    eps = Number(v["layer-norm-eps"]);
    if (!(eps > 0 && Number.isFinite(eps))) {
      throw new ConfigError(
        "--layer-norm-eps",
        `--layer-norm-eps must be a positive number, got '${v["layer-norm-eps"]}'`,
      );
    }
  }
  const r = importWeights(positionals[0], {
    name: v.name,
    frames: int("frames", v.frames),
    size: int("size", v.size),
    set,
    layerNormEps: eps,
    sourceFrames: int("source-frames", v["source-frames"]),
  });
  for (const line of r.lines) console.log(`import: ${line}`);
  const m = r.cfg.model;
  console.log(
    `import: ${r.runDir}: encoder ${m.encoderDim}×${m.encoderDepth} (${m.encoderHeads} heads), decoder ` +
      `${m.decoderDim}×${m.decoderDepth}, ${r.cfg.data.frames} frames of ${r.cfg.data.size}², position table ` +
      `${m.posEmbed} -> ${r.checkpoint}`,
  );
  console.log(
    `import: next: ./layerlock probe --run ${v.name} ...  ./layerlock embed --run ${v.name}  ` +
      `./layerlock train --init ${r.runDir}`,
  );
  return 0;
}

await runMain("import", () => Promise.resolve(main()), new URL(import.meta.url));
