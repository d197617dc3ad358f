/**
 * layerlock: LayerLock self-supervised video training on libtorch, from Deno.
 *
 * ```ts
 * import * as torch from "./mod.ts";
 * const y = torch.scope(() => torch.randn([2, 3]).matmul(torch.ones([3, 4])));
 * console.log(y.shape, torch.liveTensors());
 * y.dispose();
 * ```
 *
 * The same API by area: `./torch`, `./nn`, `./layerlock`, `./data`, `./eval` (subpath exports in deno.json).
 * @module
 */
export * from "./src/torch/mod.ts";
export * from "./src/nn/mod.ts";
export * from "./src/layerlock/mod.ts";
export * from "./src/data/mod.ts";
export * from "./src/eval/mod.ts";
