/**
 * The name maps between our video MAE's state dict and the two layouts PyTorch video researchers hold:
 *
 * - **VideoMAE's own** (`modeling_pretrain.py` / `modeling_finetune.py`, VideoMAE and VideoMAEv2): the names our
 *   model already uses (`encoder.blocks.0.attn.qkv.weight`, `encoder_to_decoder.weight`, `mask_token`, ...). A
 *   `.pth` adds containers and prefixes around them: the state dict under `model`, `module` or `state_dict`
 *   (or bare), wrapped in `module.` (DistributedDataParallel) or `_orig_mod.` (torch.compile), the encoder under
 *   `encoder.`, `backbone.` or bare (a fine-tuning checkpoint: `patch_embed.*`, `blocks.*`, `norm.*`, with a
 *   classification head `head.*` and, with mean pooling, `fc_norm.*`). {@link officialStateDict} takes these
 *   off.
 * - **transformers'** `VideoMAEModel` / `VideoMAEForPreTraining` (`videomae.embeddings.patch_embeddings.
 *   projection.weight`, `videomae.encoder.layer.N.attention.attention.query.weight`, ...). {@link hfMapping}
 *   gives, for each of our names, the name (or, for the joined `qkv` weight, the three names) transformers
 *   uses. transformers has spelt the attention's biases two ways: `q_bias`/`v_bias` parameters (4.x, as
 *   VideoMAE) and biased `query`/`value` Linears (5.x), whose `key.bias` VideoMAE does not have: a key bias adds
 *   q·b to every score of a query's row, which softmax ignores, so it is dropped exactly on import and written
 *   as zeros on export.
 *
 * Pure: no tensor is made here.
 * @module
 */

/** How one of our parameters is found in (or written to) a transformers state dict. */
export type HfMapping =
  /** One tensor, under the first of these names that is present (export writes the first). */
  | { kind: "copy"; names: string[] }
  /** Our `attn.qkv.weight` [3D, D]: transformers' query, key and value weights [D, D] each, stacked in order. */
  | { kind: "qkv"; names: [string, string, string] };

/** Our name inside a transformer block → transformers' name inside a `VideoMAELayer` (one-to-one parts). */
const HF_BLOCK: Record<string, string[]> = {
  "norm1.weight": ["layernorm_before.weight"],
  "norm1.bias": ["layernorm_before.bias"],
  "attn.q_bias": ["attention.attention.query.bias", "attention.attention.q_bias"],
  "attn.v_bias": ["attention.attention.value.bias", "attention.attention.v_bias"],
  "attn.proj.weight": ["attention.output.dense.weight"],
  "attn.proj.bias": ["attention.output.dense.bias"],
  "norm2.weight": ["layernorm_after.weight"],
  "norm2.bias": ["layernorm_after.bias"],
  "mlp.fc1.weight": ["intermediate.dense.weight"],
  "mlp.fc1.bias": ["intermediate.dense.bias"],
  "mlp.fc2.weight": ["output.dense.weight"],
  "mlp.fc2.bias": ["output.dense.bias"],
};

/** transformers' key bias inside a `VideoMAELayer` (5.x): no counterpart here (see the module notes). */
export const HF_KEY_BIAS = "attention.attention.key.bias";

/** transformers' parts of a layer that have no counterpart and are dropped exactly: the key bias. */
export const HF_DROPPED_EXACTLY = /\.attention\.attention\.key\.bias$/;

/** transformers' classification parts (`VideoMAEForVideoClassification`), dropped on import. */
export const HF_CLASSIFIER = /^(fc_norm|classifier)\./;

/**
 * The transformers name(s) of one of our state-dict names, with `base` the prefix of the base model's names
 * (`"videomae."` inside `VideoMAEForPreTraining`, `""` for a `VideoMAEModel` saved alone); null for a name
 * transformers has no place for (a learned `encoder.pos_embed`).
 */
export function hfMapping(ours: string, base: string): HfMapping | null {
  const block = ours.match(/^(encoder|decoder)\.blocks\.(\d+)\.(.+)$/);
  if (block) {
    const [, part, i, rest] = block;
    const pre = part === "encoder" ? `${base}encoder.layer.${i}.` : `decoder.decoder_layers.${i}.`;
    if (rest === "attn.qkv.weight") {
      return {
        kind: "qkv",
        names: [
          `${pre}attention.attention.query.weight`,
          `${pre}attention.attention.key.weight`,
          `${pre}attention.attention.value.weight`,
        ],
      };
    }
    const names = HF_BLOCK[rest];
    return names ? { kind: "copy", names: names.map((n) => pre + n) } : null;
  }
  const top: Record<string, string> = {
    "encoder.patch_embed.proj.weight": `${base}embeddings.patch_embeddings.projection.weight`,
    "encoder.patch_embed.proj.bias": `${base}embeddings.patch_embeddings.projection.bias`,
    "encoder.norm.weight": `${base}layernorm.weight`,
    "encoder.norm.bias": `${base}layernorm.bias`,
    "encoder_to_decoder.weight": "encoder_to_decoder.weight",
    "mask_token": "mask_token",
    "decoder.norm.weight": "decoder.norm.weight",
    "decoder.norm.bias": "decoder.norm.bias",
    "decoder.head.weight": "decoder.head.weight",
    "decoder.head.bias": "decoder.head.bias",
  };
  return ours in top ? { kind: "copy", names: [top[ours]] } : null;
}

/** What one of transformers' names is here. */
export type HfName =
  /** One of our tensors (`part`: which third of the joined qkv weight, for query/key/value weights). */
  | { kind: "ours"; ours: string; part?: 0 | 1 | 2 }
  /** Dropped exactly: a key bias. */
  | { kind: "keyBias" }
  /** Dropped: a classification head. */
  | { kind: "classifier" }
  /** Nothing of ours. */
  | { kind: "unknown" };

const HF_BLOCK_REVERSE = new Map(
  Object.entries(HF_BLOCK).flatMap(([ours, names]) => names.map((n) => [n, ours] as const)),
);
const QKV_PARTS: Record<string, 0 | 1 | 2> = { query: 0, key: 1, value: 2 };

/** What transformers' name `name` is here, with `base` the prefix of its base model (`"videomae."` or `""`). */
export function fromHfName(name: string, base: string): HfName {
  if (HF_CLASSIFIER.test(name)) return { kind: "classifier" };
  if (!name.startsWith(base) && !/^(decoder\.|encoder_to_decoder\.|mask_token$)/.test(name)) {
    return { kind: "unknown" };
  }
  const layer = name.match(/^(?:(.*)encoder\.layer\.(\d+)|decoder\.decoder_layers\.(\d+))\.(.+)$/);
  if (layer) {
    const [, pre, ei, di, rest] = layer;
    if (ei !== undefined && pre !== base) return { kind: "unknown" };
    const block = ei !== undefined ? `encoder.blocks.${ei}.` : `decoder.blocks.${di}.`;
    if (rest === HF_KEY_BIAS) return { kind: "keyBias" };
    const qkv = rest.match(/^attention\.attention\.(query|key|value)\.weight$/);
    if (qkv) return { kind: "ours", ours: `${block}attn.qkv.weight`, part: QKV_PARTS[qkv[1]] };
    const ours = HF_BLOCK_REVERSE.get(rest);
    return ours ? { kind: "ours", ours: block + ours } : { kind: "unknown" };
  }
  for (
    const ours of [
      "encoder.patch_embed.proj.weight",
      "encoder.patch_embed.proj.bias",
      "encoder.norm.weight",
      "encoder.norm.bias",
      "encoder_to_decoder.weight",
      "mask_token",
      "decoder.norm.weight",
      "decoder.norm.bias",
      "decoder.head.weight",
      "decoder.head.bias",
    ]
  ) {
    const m = hfMapping(ours, base);
    if (m?.kind === "copy" && m.names[0] === name) return { kind: "ours", ours };
  }
  return { kind: "unknown" };
}

/** Whether one of our names belongs to the decoder side (decoder, projection to it, mask token). */
export function isDecoderName(ours: string): boolean {
  return ours.startsWith("decoder.") || ours.startsWith("encoder_to_decoder.") || ours === "mask_token";
}

/** What {@link officialStateDict} found around the state dict. */
export interface OfficialLayout {
  /** The state dict in our names (the encoder under `encoder.`), classification parts left out. */
  names: Map<string, string>;
  /** The container the state dict was under (`model`, `module`, `state_dict`), or null for a bare one. */
  container: string | null;
  /** The wrapper prefixes taken off every name (`module.`, `_orig_mod.`) and the encoder's (`backbone.`). */
  prefixes: string[];
  /** Whether the encoder's names were bare (`patch_embed.*`, `blocks.*`: a fine-tuning checkpoint's). */
  bareEncoder: boolean;
  /** The source names left out: a classification head (`head.*`, `fc_norm.*`). */
  dropped: string[];
}

const CONTAINERS = ["model", "module", "state_dict"];
const WRAPPERS = ["module.", "_orig_mod."];
/** Top-level names of VideoMAE's encoder (`VisionTransformer` of fine-tuning, the pretraining encoder). */
const ENCODER_PARTS = /^(patch_embed\.|blocks\.|norm\.|pos_embed$|cls_token$|head\.|fc_norm\.)/;
/** Parts of VideoMAE's pretraining model besides the encoder. */
const DECODER_PARTS = /^(decoder\.|encoder_to_decoder\.|mask_token$)/;
/** Classification parts of a fine-tuning model (or an encoder built with classes): left out. */
const CLASSIFICATION = /^encoder\.(head|fc_norm)\./;

/**
 * Maps the flattened names of a torch.save file (nested dictionaries joined with dots, as `loadTorchFile`
 * gives them) to our names: picks the state dict out of its container (`model`, else `module`, else
 * `state_dict`, else the whole file), takes off prefixes every name carries (`module.`, `_orig_mod.`, in any
 * order and number), puts the encoder under `encoder.` (from `backbone.`, or from the bare names of a
 * fine-tuning checkpoint) and leaves out a classification head. Returns our name → the file's name.
 */
export function officialStateDict(fileNames: readonly string[]): OfficialLayout {
  let names = [...fileNames];
  let container: string | null = null;
  for (const c of CONTAINERS) {
    if (names.some((n) => n.startsWith(`${c}.`))) {
      container = c;
      names = names.filter((n) => n.startsWith(`${c}.`));
      break;
    }
  }
  const orig = new Map(names.map((n) => [n, n]));
  let cur = new Map([...orig].map(([n, f]) => [container ? n.slice(container.length + 1) : n, f]));
  const prefixes: string[] = [];
  for (let changed = true; changed && cur.size > 0;) {
    changed = false;
    for (const w of WRAPPERS) {
      if ([...cur.keys()].every((n) => n.startsWith(w))) {
        cur = new Map([...cur].map(([n, f]) => [n.slice(w.length), f]));
        prefixes.push(w);
        changed = true;
      }
    }
  }
  const out = new Map<string, string>();
  const dropped: string[] = [];
  let backbone = false, bare = false;
  for (const [n, f] of cur) {
    let ours = n;
    if (n.startsWith("backbone.")) {
      ours = `encoder.${n.slice(9)}`;
      backbone = true;
    } else if (ENCODER_PARTS.test(n) && !DECODER_PARTS.test(n)) {
      ours = `encoder.${n}`;
      bare = true;
    }
    if (CLASSIFICATION.test(ours)) dropped.push(f);
    else out.set(ours, f);
  }
  if (backbone) prefixes.push("backbone.");
  return { names: out, container, prefixes, dropped, bareEncoder: bare };
}

/**
 * The parts of a joined `attn.qkv.bias` [3D] (timm's spelling of a biased qkv): our `q_bias` and `v_bias` are
 * its first and last thirds; the key's middle third is dropped exactly (see the module notes).
 */
export const QKV_BIAS = /^(.*\.attn\.)qkv\.bias$/;
