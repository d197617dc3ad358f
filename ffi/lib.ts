/**
 * Loads the shim built by `native/build.ts` and checks that it is the one this code expects.
 *
 * The library path comes from `LAYERLOCK_SHIM` if set, else from `native/build/current.json`.
 * @module
 */
import { SHIM_ABI, SYMBOLS } from "./symbols.ts";

/** The loaded shim's symbols. */
export type Shim = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

function locate(): string {
  const env = Deno.env.get("LAYERLOCK_SHIM");
  if (env) return env;
  const record = new URL("../native/build/current.json", import.meta.url);
  let text: string;
  try {
    text = Deno.readTextFileSync(record);
  } catch {
    throw new Error(
      "layerlock: the native shim is not built (no native/build/current.json); run `deno task build` " +
        "(or ./layerlock build), which finds or installs libtorch and compiles it",
    );
  }
  return JSON.parse(text).lib as string;
}

function open(): Deno.DynamicLibrary<typeof SYMBOLS> {
  const path = locate();
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    throw new Error(
      `layerlock: cannot load the shim at ${path}: ${(e as Error).message}\n` +
        "rebuild it with `deno task build`; if libtorch moved, delete native/build/ first",
    );
  }
  const abi = lib.symbols.ll_shim_abi();
  if (abi !== SHIM_ABI) {
    lib.close();
    throw new Error(
      `layerlock: shim ABI ${abi} does not match the binding's ${SHIM_ABI}; run \`deno task build\``,
    );
  }
  return lib;
}

/** The shim, loaded on first import. */
export const lib: Shim = open().symbols;

const STRBUF = new Uint8Array(4096);

/** Reads a string that a shim function copies into a caller buffer (`int f(char* buf, int cap)`). */
export function readString(f: (buf: Uint8Array, cap: number) => number): string {
  const n = f(STRBUF, STRBUF.length);
  return new TextDecoder().decode(STRBUF.subarray(0, Math.min(n, STRBUF.length - 1)));
}
