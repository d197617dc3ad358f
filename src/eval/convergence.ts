/**
 * Layer convergence (the paper's claim 1), measured cheaply: the linear CKA between a layer's output at an
 * intermediate checkpoint and the same layer's output at the end of training, on a fixed batch of clips. A layer
 * whose CKA to its final self reaches ~1 early has converged early. (The paper's own measure — freeze layers
 * 1..L at step T, train on, compare the final loss — costs a training run per point.)
 * @module
 */
import { TorchError } from "../../ffi/errors.ts";
import { noGrad } from "../autograd.ts";
import { scope } from "../scope.ts";
import type { Tensor } from "../tensor.ts";
import type { VideoMAEEncoder } from "../models/video_mae.ts";

/** Linear centred kernel alignment of two feature matrices [M, D1] and [M, D2] with rows in correspondence. */
export function linearCka(x: Tensor, y: Tensor): number {
  if (x.shape[0] !== y.shape[0]) {
    throw new TorchError("linearCka", `row counts differ: ${x.shape[0]} vs ${y.shape[0]}`);
  }
  return noGrad(() =>
    scope(() => {
      const xc = x.double().sub(x.double().mean(0, true)), yc = y.double().sub(y.double().mean(0, true));
      const cross = yc.transpose(0, 1).matmul(xc).square().sum().item();
      const xx = xc.transpose(0, 1).matmul(xc).square().sum().sqrt().item();
      const yy = yc.transpose(0, 1).matmul(yc).square().sum().sqrt().item();
      return xx > 0 && yy > 0 ? cross / (xx * yy) : 0;
    })
  );
}

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
