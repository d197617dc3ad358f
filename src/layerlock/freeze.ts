/**
 * Freezing mechanics: when the schedule's frozen depth grows, the newly frozen encoder blocks (and, per the
 * embedding policy, the patch and position embedding with the first block) stop requiring grad, go to eval
 * mode, and leave the optimizer, which releases their state. Frozen parameters then receive no gradient, so
 * AdamW never touches them again (weight decay included): they stay bit-identical. Frozen depth never shrinks.
 * @module
 */
import { TorchError } from "../errors.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import type { ParamOptimizer } from "../optim/adamw.ts";

/** Applies a growing frozen depth to a model and its optimizer. */
export class Freezer {
  #depth = 0;

  /** Manages `model`'s encoder blocks; `embedding` says whether the embedding freezes with block 1. */
  constructor(
    readonly model: VideoMAE,
    readonly opt: ParamOptimizer,
    readonly embedding: "with-first" | "never",
  ) {}

  /** The number of frozen blocks. */
  get depth(): number {
    return this.#depth;
  }

  /** Whether the embedding is frozen. */
  get embeddingFrozen(): boolean {
    return this.embedding === "with-first" && this.#depth > 0;
  }

  /** Freezes blocks up to `depth`; returns the names of the parameters frozen now. */
  freezeTo(depth: number): string[] {
    const blocks = this.model.encoder.blocks;
    if (depth < this.#depth) {
      throw new TorchError("freeze", `frozen depth cannot decrease (from ${this.#depth} to ${depth})`);
    }
    if (depth > blocks.length) {
      throw new TorchError("freeze", `cannot freeze ${depth} of ${blocks.length} blocks`);
    }
    const names: string[] = [];
    const freeze = (prefix: string, m: { requiresGrad_(f: boolean): unknown; eval(): unknown }) => {
      m.requiresGrad_(false);
      m.eval();
      for (const [n] of this.model.namedParameters()) if (n.startsWith(prefix)) names.push(n);
    };
    for (let i = this.#depth; i < depth; i++) {
      if (i === 0 && this.embedding === "with-first") {
        freeze("encoder.patch_embed.", this.model.encoder.patchEmbed);
        const pos = this.model.encoder.namedParameters().find(([n]) => n === "pos_embed");
        if (pos) {
          pos[1].requiresGrad_(false);
          names.push("encoder.pos_embed");
        }
      }
      freeze(`encoder.blocks.${i}.`, blocks.items[i]);
    }
    for (const p of this.model.parameters()) if (!p.requiresGrad) p.zeroGrad();
    this.opt.releaseState(names);
    this.#depth = depth;
    return names;
  }
}
