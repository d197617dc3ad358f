// The build: the symbol table matches native/ll.h, and an unchanged tree does not rebuild.
import assert from "node:assert/strict";
import { parseHeader, render } from "../native/gen_symbols.ts";

const root = new URL("..", import.meta.url);

Deno.test("ffi/symbols.ts is generated from the current native/ll.h", async () => {
  const header = await Deno.readTextFile(new URL("native/ll.h", root));
  const committed = await Deno.readTextFile(new URL("ffi/symbols.ts", root));
  const decls = parseHeader(header);
  assert.ok(decls.size > 90, `only ${decls.size} declarations parsed`);
  assert.equal(
    committed,
    render(decls),
    "run: deno run --allow-read --allow-write=ffi native/gen_symbols.ts",
  );
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
