/**
 * The video masked autoencoder (VideoMAE's pretraining model), readable top to bottom:
 * a ViT encoder over the visible tubelet tokens of a [B, C, T, H, W] clip, and a light decoder that predicts
 * the masked tokens' targets. Parameter names and shapes follow VideoMAE's `PretrainVisionTransformer`
 * (`encoder.patch_embed.proj.weight`, `encoder.blocks.0.attn.qkv.weight`, `encoder_to_decoder.weight`,
 * `mask_token`, `decoder.head.weight`, ...), so checkpoints load by name in PyTorch.
 * @module
 */
import { TorchError } from "../errors.ts";
import type { Device } from "../torch/dtype.ts";
import { zeros } from "../torch/creation.ts";
import { cat } from "../torch/functional.ts";
import { noGrad } from "../torch/autograd.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { Module, ModuleList } from "../nn/module.ts";
import { Block, checkHeads, LayerNorm, Linear, PatchEmbed3d, tokenGrid } from "../nn/layers.ts";
import { positionTable, sincosSplit } from "../nn/pos_embed.ts";
import { gatherTokens } from "./masking.ts";
import type { ModelSize } from "./presets.ts";

/** The full model configuration: a size plus the clip geometry. */
export interface VideoMAEConfig extends ModelSize {
  /** Input channels (3). */
  inChans: number;
  /** Frames per clip. */
  frames: number;
  /** Frame height. */
  height: number;
  /** Frame width. */
  width: number;
  /** Spatial patch size. */
  patch: number;
  /** Temporal tubelet size. */
  tubelet: number;
  /** Bias on q and v of the attention (VideoMAE: true). */
  qkvBias: boolean;
  /** The MLPs' GELU: exact (`none`, default, as VideoMAE) or `tanh`. */
  gelu?: "none" | "tanh";
  /** The epsilon of every LayerNorm (default 1e-6, VideoMAE's; transformers' VideoMAE configs often say 1e-12). */
  layerNormEps?: number;
  /** Position embedding of the encoder: fixed 3-d sin-cos, or learned. */
  posEmbed: "sincos" | "videomae" | "learned";
  /** Width of each predicted target (pixels: tubelet·patch²·channels). */
  targetDim?: number;
}

/** The encoder: patch embedding, position embedding, blocks, final norm. */
export class VideoMAEEncoder extends Module {
  /** Tubelet patch embedding. */
  readonly patchEmbed: PatchEmbed3d;
  /** The transformer blocks. */
  readonly blocks: ModuleList<Block>;
  /** The final norm. */
  readonly norm: LayerNorm;
  /** The token grid (T', H', W'). */
  readonly grid: [number, number, number];
  /** Creates the encoder. */
  constructor(readonly cfg: VideoMAEConfig, device: Device = "cpu") {
    super();
    // Configuration errors are thrown before anything is allocated (nothing built so far would be freed).
    tokenGrid(cfg.frames, cfg.height, cfg.width, cfg.tubelet, cfg.patch);
    checkHeads(cfg.encoderDim, cfg.encoderHeads);
    if (cfg.posEmbed === "sincos") sincosSplit(cfg.encoderDim);
    const o = { device, gelu: cfg.gelu, layerNormEps: cfg.layerNormEps };
    this.patchEmbed = this.child(
      "patch_embed",
      new PatchEmbed3d(cfg.inChans, cfg.encoderDim, cfg.tubelet, cfg.patch, o),
    );
    this.grid = this.patchEmbed.grid(cfg.frames, cfg.height, cfg.width);
    const n = this.grid[0] * this.grid[1] * this.grid[2];
    if (cfg.posEmbed === "learned") {
      this.param(
        "pos_embed",
        noGrad(() => zeros([1, n, cfg.encoderDim], o).truncNormal_(0, 0.02, -0.04, 0.04)),
      );
    } else {
      // Fixed: not in the state dict, as VideoMAE's sinusoid table.
      const kind = cfg.posEmbed;
      this.buffer(
        "pos_embed",
        scope(() => positionTable(kind, this.grid, cfg.encoderDim, device).unsqueeze(0)),
        false,
      );
    }
    this.blocks = this.child(
      "blocks",
      new ModuleList(
        Array.from(
          { length: cfg.encoderDepth },
          () => new Block(cfg.encoderDim, cfg.encoderHeads, cfg.mlpRatio, cfg.qkvBias, o),
        ),
      ),
    );
    this.norm = this.child("norm", new LayerNorm(cfg.encoderDim, cfg.layerNormEps ?? 1e-6, true, o));
  }

  /** The number of tokens of a clip. */
  get numTokens(): number {
    return this.grid[0] * this.grid[1] * this.grid[2];
  }

  /** Patch embedding plus position embedding: [B, C, T, H, W] → [B, N, D]. */
  embed(x: Tensor): Tensor {
    return this.patchEmbed.forward(x).add(this.own("pos_embed"));
  }

  /** Applies blocks [start, end) to tokens [B, n, D]. */
  runBlocks(h: Tensor, start = 0, end = this.blocks.length): Tensor {
    if (start < 0 || end > this.blocks.length || start > end) {
      throw new TorchError(
        "VideoMAEEncoder",
        `block range [${start}, ${end}) is outside 0..${this.blocks.length}`,
      );
    }
    for (let i = start; i < end; i++) h = this.blocks.items[i].forward(h);
    return h;
  }

  /** Encodes the visible tokens (`keep`: [B, Nv] indices), or all tokens when keep is null: [B, Nv, D]. */
  forward(x: Tensor, keep: Tensor | null): Tensor {
    const tokens = this.embed(x);
    const vis = keep === null ? tokens : gatherTokens(tokens, keep);
    return this.norm.forward(this.runBlocks(vis));
  }

  /**
   * Encodes the visible tokens with the first `frozen` blocks run under no-grad — and the embedding too when
   * `embeddingFrozen` — so that backward never enters them: [B, Nv, D]. With `frozen` 0 it is `forward`.
   */
  forwardFrozen(x: Tensor, keep: Tensor, frozen: number, embeddingFrozen: boolean): Tensor {
    if (frozen === 0) return this.forward(x, keep);
    const prefix = (): Tensor => this.runBlocks(gatherTokens(this.embed(x), keep), 0, frozen);
    const h = embeddingFrozen ? noGrad(prefix) : prefix();
    return this.norm.forward(this.runBlocks(h, frozen));
  }

  /**
   * The outputs of blocks `layers` (1-based) over the full token sequence, before the final norm, each [B, N, D]
   * (under no-grad: these are targets). A block output that is not asked for is freed once the next block used it.
   */
  hiddenStates(x: Tensor, layers: readonly number[]): Tensor[] {
    return noGrad(() => {
      const last = Math.max(...layers);
      if (!layers.every((l) => Number.isInteger(l) && l >= 1) || last > this.blocks.length) {
        throw new TorchError(
          "hiddenStates",
          `blocks ${layers.join(", ")} are not all in 1..${this.blocks.length}`,
        );
      }
      const out = new Map<number, Tensor>();
      let h = this.embed(x);
      for (let i = 0; i < last; i++) {
        const prev = h;
        h = this.blocks.items[i].forward(h);
        if (!out.has(i)) prev.dispose();
        if (layers.includes(i + 1)) out.set(i + 1, h);
      }
      return layers.map((l) => out.get(l)!);
    });
  }
}

/** The decoder: blocks over visible + mask tokens, norm, and a linear head on the masked tokens. */
export class VideoMAEDecoder extends Module {
  /** The transformer blocks. */
  readonly blocks: ModuleList<Block>;
  /** The final norm. */
  readonly norm: LayerNorm;
  /** The prediction head. */
  readonly head: Linear;
  /** Creates the decoder. */
  constructor(cfg: VideoMAEConfig, targetDim: number, device: Device = "cpu") {
    super();
    const o = { device, gelu: cfg.gelu, layerNormEps: cfg.layerNormEps };
    this.blocks = this.child(
      "blocks",
      new ModuleList(
        Array.from(
          { length: cfg.decoderDepth },
          () => new Block(cfg.decoderDim, cfg.decoderHeads, cfg.mlpRatio, cfg.qkvBias, o),
        ),
      ),
    );
    this.norm = this.child("norm", new LayerNorm(cfg.decoderDim, cfg.layerNormEps ?? 1e-6, true, o));
    this.head = this.child("head", new Linear(cfg.decoderDim, targetDim, true, o));
  }
  /** Runs the blocks on [B, N, Dd] and predicts the last `predictCount` tokens: [B, predictCount, target]. */
  forward(x: Tensor, predictCount: number): Tensor {
    return this.head.forward(this.features(x, predictCount));
  }

  /** The normalised decoder features of the last `count` tokens, before the head: [B, count, Dd]. */
  features(x: Tensor, count: number): Tensor {
    let h = x;
    for (const b of this.blocks.items) h = b.forward(h);
    const n = h.shape[1];
    return this.norm.forward(count === n ? h : h.narrow(1, n - count, count));
  }
}

/** The pixel-target width of a configuration: tubelet·patch²·channels. */
export function pixelTargetDim(cfg: VideoMAEConfig): number {
  return cfg.tubelet * cfg.patch * cfg.patch * cfg.inChans;
}

/** VideoMAE's pretraining model: encoder, encoder→decoder projection, mask token, decoder. */
export class VideoMAE extends Module {
  /** The encoder. */
  readonly encoder: VideoMAEEncoder;
  /** Projection from encoder to decoder width (no bias). */
  readonly encoderToDecoder: Linear;
  /** The decoder. */
  readonly decoder: VideoMAEDecoder;
  /** Creates the model on a device, initialised as VideoMAE. */
  constructor(readonly cfg: VideoMAEConfig, device: Device = "cpu") {
    super();
    // The decoder's configuration errors, before the encoder is allocated (which checks its own).
    checkHeads(cfg.decoderDim, cfg.decoderHeads);
    if (cfg.posEmbed !== "videomae") sincosSplit(cfg.decoderDim);
    const o = { device, gelu: cfg.gelu, layerNormEps: cfg.layerNormEps };
    this.encoder = this.child("encoder", new VideoMAEEncoder(cfg, device));
    this.encoderToDecoder = this.child(
      "encoder_to_decoder",
      new Linear(cfg.encoderDim, cfg.decoderDim, false, o),
    );
    this.param(
      "mask_token",
      noGrad(() => zeros([1, 1, cfg.decoderDim], o).truncNormal_(0, 0.02, -0.02, 0.02)),
    );
    this.decoder = this.child(
      "decoder",
      new VideoMAEDecoder(cfg, cfg.targetDim ?? pixelTargetDim(cfg), device),
    );
    this.buffer(
      "decoder_pos_embed",
      // learned encoder positions keep the fixed 3-d table in the decoder, as before
      scope(() =>
        positionTable(
          cfg.posEmbed === "videomae" ? "videomae" : "sincos",
          this.encoder.grid,
          cfg.decoderDim,
          device,
        )
          .unsqueeze(0)
      ),
      false,
    );
  }

  /**
   * Decodes encoder features of the visible tokens [B, Nv, De]: the decoder sees visible tokens then one mask
   * token per masked position (each plus its position embedding) and predicts the masked ones, in the order
   * of `masked`: [B, Nm, targetDim].
   */
  decode(encoded: Tensor, keep: Tensor, masked: Tensor): Tensor {
    return this.decoder.head.forward(this.decoderFeatures(encoded, keep, masked, masked.shape[1]));
  }

  /**
   * The decoder's normalised features [B, count, Dd] of the last `count` decoder tokens (the masked ones when
   * count = Nm; the visible ones then the masked ones when count = Nv + Nm), before any head.
   */
  decoderFeatures(encoded: Tensor, keep: Tensor, masked: Tensor, count: number): Tensor {
    const [b, nm] = masked.shape;
    const vis = this.encoderToDecoder.forward(encoded);
    const pos = this.own("decoder_pos_embed").expand([b, -1, -1]);
    const posVis = gatherTokens(pos, keep), posMask = gatherTokens(pos, masked);
    const maskTokens = this.own("mask_token").expand([b, nm, -1]).add(posMask);
    return this.decoder.features(cat([vis.add(posVis), maskTokens], 1), count);
  }

  /** Encodes the visible tokens and predicts the masked ones: [B, Nm, targetDim]. */
  forward(x: Tensor, keep: Tensor, masked: Tensor): Tensor {
    return this.decode(this.encoder.forward(x, keep), keep, masked);
  }
}
