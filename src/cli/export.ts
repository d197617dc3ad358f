/**
 * `./layerlock export --run NAME --format hf|videomae [flags]` (`deno task export`): a run's newest checkpoint
 * written for PyTorch code.
 *
 *   --run NAME | --checkpoint FILE   the run (its newest checkpoint) or a checkpoint file
 *   --format hf                      a Hugging Face folder, config.json + model.safetensors, that
 *                                    transformers' VideoMAEForPreTraining.from_pretrained loads with no missing
 *                                    or unexpected key; last_hidden_state is the encoder's output tokens that
 *                                    `embed` writes, and their mean its pooled features
 *   --encoder-only                   (hf) the encoder alone, for VideoMAEModel.from_pretrained
 *   --format videomae                {"model": state_dict} in VideoMAE's pretraining layout (torch.save format,
 *                                    checkpoint.pth), which VideoMAE's fine-tuning code reads with --finetune
 *   --out DIR                        a folder under runs/ (default runs/NAME/export/hf, hf-encoder or videomae)
 *
 * transformers and VideoMAE's code build VideoMAE's 1-d sinusoid position table themselves: a run trained with
 * another (the default model.posEmbed=sincos) is refused, naming the option to train with
 * (--set model.posEmbed=videomae). Mistakes are one line and exit code 2. The workflow is
 * `src/interop/export.ts`.
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError } from "../errors.ts";
import { EXPORT_FORMATS, type ExportFormat, exportRun } from "../interop/export.ts";
import { runMain } from "./run.ts";

const USAGE =
  "usage: ./layerlock export (--run NAME | --checkpoint FILE) --format hf|videomae [--encoder-only] " +
  "[--out DIR] (all flags: --help)";

function main(): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        run: { type: "string" },
        checkpoint: { type: "string" },
        format: { type: "string" },
        "encoder-only": { type: "boolean" },
        out: { type: "string" },
      },
    });
  } catch (e) {
    throw new ConfigError("export", `${(e as Error).message}; ${USAGE}`);
  }
  const v = parsed.values;
  if (!EXPORT_FORMATS.includes(v.format as ExportFormat)) {
    throw new ConfigError(
      "--format",
      `--format: expected ${EXPORT_FORMATS.join(" or ")}, got ${
        v.format === undefined ? "nothing" : `'${v.format}'`
      }; ${USAGE}`,
    );
  }
  const r = exportRun({
    run: v.run,
    checkpoint: v.checkpoint,
    format: v.format as ExportFormat,
    out: v.out,
    encoderOnly: v["encoder-only"],
  });
  console.log(`export: ${r.checkpoint} -> ${r.files.join(", ")}`);
  for (const line of r.lines) console.log(`export: ${line}`);
  return 0;
}

await runMain("export", () => Promise.resolve(main()), new URL(import.meta.url));
