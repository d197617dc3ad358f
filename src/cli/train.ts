/**
 * `deno task train`: the training command. The set-up (Deno, libtorch, the shim) has already run when this
 * starts; the Video MAE / LayerLock training loop is the subject of the next issues, so for now this reports the
 * environment it would train in and says plainly that training is not implemented yet.
 * @module
 */
import * as torch from "../../mod.ts";

const device = torch.cuda.isAvailable() ? "cuda" : "cpu";
console.log(
  `layerlock: torch ${torch.torchVersion()}, device ${device}, ${torch.getNumThreads()} CPU threads`,
);
// A one-step sanity check of the binding on the chosen device, so a broken set-up shows here.
const ok = torch.scope(() => {
  const x = torch.randn([4, 8], { device });
  const w = torch.randn([8, 2], { device, requiresGrad: true });
  const loss = x.matmul(w).square().mean();
  loss.backward();
  const g = w.grad;
  return g !== null && g.shape.join("x") === "8x2";
});
console.log(`layerlock: binding check ${ok ? "passed" : "FAILED"} (live tensors: ${torch.liveTensors()})`);
console.log(
  "layerlock: training is not implemented yet — the Video MAE model, data and `train` loop come with the " +
    "next issue (LayerLock after it). The set-up above is done; `./layerlock test` runs the tests.",
);
if (!ok) Deno.exit(1);
