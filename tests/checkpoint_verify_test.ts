/**
 * Verified checkpoints (src/train/checkpoint.ts, src/checksum.ts): CRC-32 against its check value and
 * chaining; the recorded checksums equal a CRC-32 computed here from the file's own byte ranges; a flipped byte
 * in the tensor data or an edited configuration is refused naming the file, and resume falls back to the
 * previous intact checkpoint with a warning; a disk that fills up during a save (a real 1.x-checkpoint tmpfs,
 * mounted by the test as root; skipped with the reason otherwise) is an IoError that leaves the earlier
 * checkpoint intact and no temporary file behind.
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { parseConfig, type TrainConfig } from "../src/config.ts";
import { makeBatchSource } from "../src/data/source.ts";
import { listCheckpoints, verifyCheckpoint } from "../src/train/checkpoint.ts";
import { crc32, crc32Tag } from "../src/checksum.ts";
import type { TrainEvent } from "../src/train/events.ts";
import { train } from "../src/train/trainer.ts";
import { tempDir } from "./helpers.ts";

function config(extra: Record<string, Record<string, unknown>> = {}): TrainConfig {
  const base: Record<string, Record<string, unknown>> = {
    model: {
      encoderDim: 48,
      encoderDepth: 2,
      encoderHeads: 3,
      decoderDim: 24,
      decoderDepth: 1,
      decoderHeads: 3,
    },
    data: { frames: 4, size: 16, prefetch: 0 },
    optim: { batchSize: 2, lr: 2e-3, warmupSteps: 1, steps: 6 },
    log: { every: 2, checkpointEvery: 2, floorClips: 0, keep: 5 },
  };
  for (const [k, v] of Object.entries(extra)) base[k] = { ...(base[k] ?? {}), ...v };
  return parseConfig(base);
}

Deno.test("crc32: the check value, chaining, and the empty input", () => {
  const enc = new TextEncoder();
  assert.equal(crc32(enc.encode("123456789")), 0xcbf43926); // the standard check value of CRC-32/zlib
  assert.equal(crc32(new Uint8Array(0)), 0);
  const bytes = enc.encode("The quick brown fox jumps over the lazy dog");
  assert.equal(crc32(bytes), 0x414fa339);
  for (const cut of [0, 1, 7, 8, 9, 20, bytes.length]) {
    assert.equal(crc32(bytes.subarray(cut), crc32(bytes.subarray(0, cut))), crc32(bytes), `cut at ${cut}`);
  }
  assert.equal(crc32Tag(0xcbf43926), "crc32:cbf43926");
});

/** The data CRC of a safetensors file computed here, from its header's byte ranges in name order. */
function crcOfFile(path: string): { data: string; meta: Record<string, string> } {
  const b = Deno.readFileSync(path);
  const n = Number(new DataView(b.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
  let c = 0;
  for (const k of Object.keys(header).filter((k) => k !== "__metadata__").sort()) {
    const [s, e] = header[k].data_offsets;
    c = crc32(b.subarray(8 + n + s, 8 + n + e), c);
  }
  return { data: crc32Tag(c), meta: header.__metadata__ };
}

Deno.test("checkpoints: checksums recorded and verified; a changed byte or config falls back, named", async () => {
  const dir = await tempDir("verify_");
  const before = torch.liveTensors();
  const cfg = config();
  await train(cfg, { runDir: dir, resume: false, data: makeBatchSource, onEvent: () => {} });
  const ckpts = listCheckpoints(`${dir}/checkpoints`);
  assert.deepEqual(ckpts.map((p) => p.split("/").pop()), [2, 4, 6].map((s) => `step_000000${s}.safetensors`));
  for (const p of ckpts) {
    const { data, meta } = crcOfFile(p);
    assert.equal(meta.checksum, data);
    assert.equal(meta.configChecksum, crc32Tag(crc32(new TextEncoder().encode(meta.config))));
    verifyCheckpoint(p);
  }
  // one flipped bit in the last byte of the newest checkpoint's tensor data
  const newest = ckpts[2], bytes = Deno.readFileSync(newest);
  bytes[bytes.length - 1] ^= 1;
  Deno.writeFileSync(newest, bytes);
  assert.throws(
    () => verifyCheckpoint(newest),
    (e: Error) =>
      e instanceof torch.IoError && e.message.includes(newest) &&
      /is corrupt: its tensor data has crc32:/.test(e.message),
  );
  // an edited configuration in the next one (same length, so the header still parses)
  const mid = ckpts[1], text = Deno.readFileSync(mid);
  const s = new TextDecoder("latin1").decode(text);
  const i = s.indexOf('\\"lr\\":0.002');
  assert.ok(i > 0);
  text[i + 9] = "3".charCodeAt(0); // 0.002 → 0.003
  Deno.writeFileSync(mid, text);
  assert.throws(() => verifyCheckpoint(mid), /is corrupt: its configuration has crc32:/);
  // resume passes over both, naming them, and continues from step 2 to a longer end
  const events: TrainEvent[] = [];
  const longer = parseConfig({ ...structuredClone(cfg), optim: { ...cfg.optim, steps: 8 } });
  const r = await train(longer, {
    runDir: dir,
    resume: true,
    data: makeBatchSource,
    onEvent: (e) => events.push(e),
  });
  assert.equal(r.step, 8);
  const w = events.find((e) => e.kind === "warning") as { message: string } | undefined;
  assert.ok(w, "a warning");
  assert.match(
    w.message,
    /resuming from .*step_0000002\.safetensors: the newer .*step_0000006\.safetensors is unreadable/,
  );
  assert.match(w.message, /step_0000004\.safetensors is unreadable \(.*configuration/);
  assert.ok(events.some((e) => e.kind === "resume" && e.step === 2));
  assert.equal(torch.liveTensors(), before);
});

const root = (() => {
  try {
    const r = new Deno.Command("id", { args: ["-u"], stdout: "piped" }).outputSync();
    return new TextDecoder().decode(r.stdout).trim() === "0";
  } catch {
    return false;
  }
})();
if (!root) console.warn("disk-full test skipped: mounting a small tmpfs needs root");

Deno.test({
  name: "checkpoints: a disk that fills up during a save is an IoError; the earlier checkpoint stays intact",
  ignore: !root,
  async fn() {
    // the size of one checkpoint of this model, from a normal run
    const probe = await tempDir("full_probe_");
    const cfg = config({ optim: { steps: 2, warmupSteps: 1 } });
    await train(cfg, { runDir: probe, resume: false, data: makeBatchSource, onEvent: () => {} });
    const size = Deno.statSync(listCheckpoints(`${probe}/checkpoints`)[0]).size;
    // a file system with room for one checkpoint and a half (tmpfs counts whole 4 KiB pages)
    const mnt = await tempDir("full_");
    const m = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${Math.ceil((size * 1.5) / 4096) * 4096}`, "tmpfs", mnt],
      stderr: "piped",
    }).output();
    if (!m.success) {
      console.warn(`disk-full test skipped: mount failed: ${new TextDecoder().decode(m.stderr).trim()}`);
      return;
    }
    try {
      const before = torch.liveTensors();
      const runDir = `${mnt}/run`;
      await assert.rejects(
        () => train(config(), { runDir, resume: false, data: makeBatchSource, onEvent: () => {} }),
        (e: Error) =>
          e instanceof torch.IoError &&
          /cannot write the checkpoint .*step_0000004\.safetensors: .*(No space|space left)/i.test(
            e.message,
          ) && /the earlier checkpoints are intact/.test(e.message),
      );
      assert.equal(torch.liveTensors(), before, "nothing native left behind");
      const left = [...Deno.readDirSync(`${runDir}/checkpoints`)].map((e) => e.name);
      assert.deepEqual(
        left,
        ["step_0000002.safetensors"],
        "no temporary file left, the first checkpoint kept",
      );
      verifyCheckpoint(`${runDir}/checkpoints/step_0000002.safetensors`);
    } finally {
      await new Deno.Command("umount", { args: [mnt] }).output();
      await Deno.remove(mnt, { recursive: true }).catch(() => {});
    }
  },
});
