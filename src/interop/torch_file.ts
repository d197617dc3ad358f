/**
 * torch.save files (`.pth`, `.pt`, `pytorch_model.bin`) through the binding's reader and writer
 * (`src/torch/pickle.ts`: `loadTorchFile` reads a file with libtorch's unpickler, nested dictionaries flattened
 * to dotted names, non-tensors such as an `argparse.Namespace` skipped; `saveTorchFile` writes torch.save's zip
 * format). Errors become DataErrors (reading: a truncated or foreign file is bad input, named) and IoErrors
 * (writing), naming the file.
 * @module
 */
import { DataError, IoError, LayerlockError } from "../errors.ts";
import type { Device } from "../torch/dtype.ts";
import { loadTorchFile, saveTorchFile } from "../torch/pickle.ts";
import type { Tensor } from "../torch/tensor.ts";

/**
 * The tensors of a torch.save file by flattened name (`model.encoder.blocks.0.attn.qkv.weight`), owned by the
 * caller (or the current scope). A missing file is an IoError; one that is not torch.save's, or is cut, a
 * DataError naming it.
 */
export function readTorchFile(path: string, device: Device = "cpu"): Record<string, Tensor> {
  try {
    Deno.statSync(path);
  } catch (e) {
    throw new IoError(path, `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return loadTorchFile(path, { device });
  } catch (e) {
    if (!(e instanceof LayerlockError)) throw e;
    const why = e.message.replace(/^loadTorchFile: /, "").replace(`${path}: `, "");
    throw new DataError(path, `${path} does not read as a torch.save checkpoint: ${why}`, { cause: e });
  }
}

/** Writes `{ model: stateDict }` as torch.save does (zip format); an IoError naming the file when it fails. */
export function writeTorchFile(path: string, stateDict: Record<string, Tensor>): void {
  try {
    saveTorchFile(path, { model: stateDict });
  } catch (e) {
    if (!(e instanceof LayerlockError)) throw e;
    throw new IoError(path, `cannot write ${path}: ${e.message.replace(/^saveTorchFile: /, "")}`, {
      cause: e,
    });
  }
}
