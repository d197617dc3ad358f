/**
 * The named model sizes (pure data, no native code: the configuration schema validates `model.preset` against
 * these names without loading the shim).
 * @module
 */

/** Widths, depths and heads of a model size. */
export interface ModelSize {
  /** Encoder width. */
  encoderDim: number;
  /** Encoder blocks. */
  encoderDepth: number;
  /** Encoder attention heads. */
  encoderHeads: number;
  /** MLP hidden width as a multiple of the width. */
  mlpRatio: number;
  /** Decoder width. */
  decoderDim: number;
  /** Decoder blocks. */
  decoderDepth: number;
  /** Decoder attention heads. */
  decoderHeads: number;
}

/** Named sizes: `tiny` is the CPU default (ViT-Ti encoder); the rest follow ViT-S/B/L/H and VideoMAE v2's ViT-g. */
export const PRESETS: Record<"tiny" | "small" | "base" | "large" | "huge" | "giant", ModelSize> = {
  tiny: {
    encoderDim: 192,
    encoderDepth: 12,
    encoderHeads: 3,
    mlpRatio: 4,
    decoderDim: 96,
    decoderDepth: 2,
    decoderHeads: 3,
  },
  small: {
    encoderDim: 384,
    encoderDepth: 12,
    encoderHeads: 6,
    mlpRatio: 4,
    decoderDim: 192,
    decoderDepth: 4,
    decoderHeads: 3,
  },
  base: {
    encoderDim: 768,
    encoderDepth: 12,
    encoderHeads: 12,
    mlpRatio: 4,
    decoderDim: 384,
    decoderDepth: 4,
    decoderHeads: 6,
  },
  large: {
    encoderDim: 1024,
    encoderDepth: 24,
    encoderHeads: 16,
    mlpRatio: 4,
    decoderDim: 512,
    decoderDepth: 4,
    decoderHeads: 8,
  },
  huge: {
    encoderDim: 1280,
    encoderDepth: 32,
    encoderHeads: 16,
    mlpRatio: 4,
    decoderDim: 640,
    decoderDepth: 4,
    decoderHeads: 8,
  },
  giant: {
    encoderDim: 1408,
    encoderDepth: 40,
    encoderHeads: 16,
    mlpRatio: 48 / 11,
    decoderDim: 512,
    decoderDepth: 4,
    decoderHeads: 8,
  },
};
