/**
 * Latent prediction heads: they map the decoder's features (decoder width) to the encoder's width, where the
 * latent targets live. One head for `target: "last"` (`latent_head`), one per encoder block for `"all"`
 * (`latent_heads.<block index>`, 0-based: head i predicts the output of block i+1).
 * @module
 */
import type { Device } from "../torch/dtype.ts";
import { noGrad } from "../torch/autograd.ts";
import { Module, ModuleList } from "../nn/module.ts";
import { Linear } from "../nn/layers.ts";

/** The latent heads of a LayerLock run. */
export class LatentHeads extends Module {
  readonly #single: Linear | null = null;
  readonly #perLayer: ModuleList<Linear> | null = null;

  /** Creates the heads for a decoder of width `decoderDim` and an encoder of width `encoderDim` and `depth` blocks. */
  constructor(
    readonly target: "last" | "all",
    decoderDim: number,
    encoderDim: number,
    depth: number,
    device: Device = "cpu",
  ) {
    super();
    if (target === "last") {
      this.#single = this.child("latent_head", new Linear(decoderDim, encoderDim, true, { device }));
    } else {
      this.#perLayer = this.child(
        "latent_heads",
        new ModuleList(
          Array.from({ length: depth }, () => new Linear(decoderDim, encoderDim, true, { device })),
        ),
      );
    }
  }

  /** The head that predicts the output of block `layer` (1-based). */
  head(layer: number): Linear {
    return this.#single ?? this.#perLayer!.items[layer - 1];
  }

  /** The parameter-name prefix (within this module) of the head for `layer`. */
  prefix(layer: number): string {
    return this.#single ? "latent_head." : `latent_heads.${layer - 1}.`;
  }

  /** Re-initialises the head for `layer` as a new Linear is (xavier-uniform weight, zero bias). */
  reinit(layer: number): void {
    const h = this.head(layer);
    noGrad(() => {
      h.weight.xavierUniform_();
      h.bias?.zero_();
    });
  }
}
