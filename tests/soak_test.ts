/**
 * The soak (tools/soak.ts), short: 240 steps of the 4-block LayerLock model with checkpoints; once the freezing
 * schedule has finished, the live native tensors stay constant and the resident memory does not grow beyond
 * noise (48 MiB), and nothing is left alive after the run. The 10⁴-step run is `deno task soak` (docs/reliability.md).
 * @module
 */
import assert from "node:assert/strict";
import { soak, soakConfig } from "../tools/soak.ts";
import { tempDir } from "./helpers.ts";

Deno.test("soak: live tensors and resident memory are flat once the schedule settles", async () => {
  const dir = await tempDir("soak_");
  const r = await soak(soakConfig(240, 10), dir, 48);
  assert.ok(r.samples.length === 24, `${r.samples.length} samples`);
  assert.ok(r.flat, r.why);
});
