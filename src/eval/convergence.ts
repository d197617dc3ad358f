/**
 * Layer convergence (the paper's claim 1), measured cheaply: the linear CKA between a layer's output at an
 * intermediate checkpoint and the same layer's output at the end of training, on a fixed batch of clips. A layer
 * whose CKA to its final self reaches ~1 early has converged early. (The paper's own measure — freeze layers
 * 1..L at step T, train on, compare the final loss — costs a training run per point.)
 * @module
 */
import { noGrad } from "../torch/autograd.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { VideoMAEEncoder } from "../models/video_mae.ts";

/** Linear CKA (defined beside the convergence trigger, which uses it too). */
export { linearCka } from "../layerlock/trigger.ts";

/** Every layer's tokens (outputs of blocks 1..L, without the final norm) on `clips`, flattened to [B·N, D]. */
export function layerOutputs(encoder: VideoMAEEncoder, clips: Tensor): Tensor[] {
  return noGrad(() =>
    scope(() => {
      const was = encoder.training;
      encoder.eval();
      try {
        const outs: Tensor[] = [];
        let h = encoder.embed(clips);
        for (const b of encoder.blocks.items) {
          h = b.forward(h);
          outs.push(h.flatten(0, 1));
        }
        return outs;
      } finally {
        encoder.train(was);
      }
    })
  );
}
