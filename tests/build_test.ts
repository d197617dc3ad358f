// The build: the symbol table matches native/ll.h, and an unchanged tree does not rebuild.
import assert from "node:assert/strict";
import { parseConstants, parseHeader, render } from "../native/gen_symbols.ts";
import { BINARY_OP, DTYPE, SHIM_ABI } from "../ffi/symbols.ts";

const root = new URL("..", import.meta.url);

Deno.test("ffi/symbols.ts is generated from the current native/ll.h", async () => {
  const header = await Deno.readTextFile(new URL("native/ll.h", root));
  const committed = await Deno.readTextFile(new URL("ffi/symbols.ts", root));
  const decls = parseHeader(header);
  assert.ok(decls.size > 90, `only ${decls.size} declarations parsed`);
  const constants = parseConstants(header);
  assert.equal(constants.abi, SHIM_ABI);
  assert.deepEqual(Object.keys(constants.enums.get("BINARY_OP") ? BINARY_OP : {}).length, 16);
  assert.equal(DTYPE.bf16, 15, "c10::ScalarType::BFloat16");
  assert.equal(
    committed,
    render(decls, constants),
    "run: deno run --allow-read --allow-write=ffi native/gen_symbols.ts",
  );
});

Deno.test("parseConstants: enum members need their prefix and a value; the ABI define is required", () => {
  const c = parseConstants(
    "#define LL_SHIM_ABI 7\nenum ll_colour_op { LL_COLOUR_DARK_RED = 2, LL_COLOUR_BLUE = 0 };",
  );
  assert.equal(c.abi, 7);
  assert.deepEqual(c.enums.get("COLOUR_OP"), [["darkRed", 2], ["blue", 0]]);
  assert.throws(() => parseConstants("enum ll_a { LL_A_X = 0 };"), /LL_SHIM_ABI/);
  assert.throws(
    () => parseConstants("#define LL_SHIM_ABI 1\nenum ll_a { LL_B_X = 0 };"),
    /LL_A_NAME = value/,
  );
  assert.throws(() => parseConstants("#define LL_SHIM_ABI 1\nenum ll_a { LL_A_X };"), /LL_A_NAME = value/);
});

Deno.test("a second build of an unchanged tree compiles nothing", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["task", "build"],
    cwd: root.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stderr) + new TextDecoder().decode(r.stdout);
  assert.ok(r.success, out);
  assert.ok(out.includes("shim ready"), out);
  assert.ok(!out.includes("compiling"), `the build recompiled:\n${out}`);
});
