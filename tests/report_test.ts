/**
 * The report pieces: PNG encoding (decoded by an independent decoder, Python's zlib + struct through
 * tests/interop/check_png.py — those tests are ignored, not passed, where python3 is missing — with the chunk
 * CRCs also checked here by a bitwise CRC-32), image grids and upscaling, the SVG charts (one path per series with the right points,
 * gaps, legend, escaping, well-formed markup), tables, and the written report with its image check.
 * Pure TypeScript: no tensors, no native library.
 * @module
 */
import assert from "node:assert/strict";
import { encodePng, imageGrid, PNG_SIGNATURE, type RgbImage, upscale } from "../src/eval/png.ts";
import { crc32 } from "../src/checksum.ts";
import { barChart, lineChart } from "../src/eval/charts.ts";
import { checkReport, renderReport, writeReport } from "../src/eval/report.ts";
import { escapeHtml, formatNumber, image, table } from "../src/eval/html.ts";

// ---------------------------------------------------------------- helpers

/** Bitwise CRC-32 (no table), independent of the implementation under test. */
function crcBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

interface Chunk {
  type: string;
  data: Uint8Array;
}

/** Splits a PNG into chunks, asserting the signature and every chunk's CRC. */
function parseChunks(png: Uint8Array): Chunk[] {
  assert.deepEqual([...png.subarray(0, 8)], [...PNG_SIGNATURE]);
  assert.deepEqual([...PNG_SIGNATURE], [137, 80, 78, 71, 13, 10, 26, 10]);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: Chunk[] = [];
  let at = 8;
  while (at < png.length) {
    const len = view.getUint32(at);
    const type = new TextDecoder().decode(png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + len);
    assert.equal(
      view.getUint32(at + 8 + len),
      crcBitwise(png.subarray(at + 4, at + 8 + len)),
      `CRC of ${type}`,
    );
    chunks.push({ type, data });
    at += 12 + len;
  }
  assert.equal(at, png.length, "chunks end exactly at the end of the file");
  return chunks;
}

/** Whether `python3` is on PATH: the PNG decoder the tests trust is Python's zlib + struct, not ours. */
const HAS_PYTHON3 = (() => {
  try {
    return new Deno.Command("python3", {
      args: ["-c", "import zlib, struct"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
})();
const CHECK_PNG = decodeURIComponent(new URL("./interop/check_png.py", import.meta.url).pathname);

/**
 * Decodes a PNG with an independent decoder, tests/interop/check_png.py (Python's zlib + struct: signature,
 * every chunk's CRC, IHDR first and IEND last, all five row filters), after checking the chunk CRCs here with a
 * bitwise CRC; returns its size, channels and pixels.
 */
async function decodePng(png: Uint8Array) {
  assert.deepEqual(parseChunks(png).map((c) => c.type), ["IHDR", "IDAT", "IEND"]);
  let result: { width: number; height: number; channels: number; pixels: Uint8Array } | undefined;
  await withTmp(async (dir) => {
    const path = `${dir}/decode.png`;
    await Deno.writeFile(path, png);
    const out = await new Deno.Command("python3", { args: [CHECK_PNG, path, "--pixels"] }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    const pixels = new Uint8Array((r.data as string).match(/../g)?.map((h) => parseInt(h, 16)) ?? []);
    result = { width: r.width, height: r.height, channels: r.channels, pixels };
  });
  return result!;
}

function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

function solid(w: number, h: number, rgb: [number, number, number]): RgbImage {
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < out.length; i++) out[i] = rgb[i % 3];
  return { rgb: out, width: w, height: h };
}

const px = (
  img: RgbImage,
  x: number,
  y: number,
) => [...img.rgb.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

const VOID = new Set(["meta", "img", "br", "hr", "link", "input", "source", "col", "wbr"]);

/** Asserts that every tag is closed in order (self-closing and HTML void elements aside) and no raw < or > is in text. */
function assertBalanced(markup: string): void {
  const stack: string[] = [];
  const body = markup.replace(/<!DOCTYPE[^>]*>/i, "").replace(/<!--[\s\S]*?-->/g, "");
  let last = 0;
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][\w:-]*)((?:\s[^<>]*)?)>/g)) {
    const text = body.slice(last, m.index);
    assert.ok(!/[<>]/.test(text), `raw < or > in text: ${JSON.stringify(text.slice(0, 80))}`);
    last = m.index! + m[0].length;
    const [, close, name, rest] = m;
    if (close) assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    else if (!rest.endsWith("/") && !VOID.has(name.toLowerCase())) stack.push(name);
  }
  assert.ok(!/[<>]/.test(body.slice(last)), "raw < or > after the last tag");
  assert.deepEqual(stack, [], "unclosed elements");
}

/** The path of each series in a line chart: its name and the number of M and L commands. */
function seriesPaths(svg: string) {
  return [
    ...svg.matchAll(/<path data-series="([^"]*)" data-points="(\d+)" d="([^"]*)"[^>]*stroke="([^"]+)"/g),
  ]
    .map(([, name, n, d, stroke]) => ({
      name,
      declared: Number(n),
      moves: (d.match(/M/g) ?? []).length,
      points: (d.match(/[ML]-?[\d.]+ -?[\d.]+/g) ?? []).length,
      stroke,
    }));
}

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  await Deno.mkdir("runs/tmp", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "runs/tmp", prefix: "report_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------- PNG

Deno.test("crc32: the standard check value and continuation", () => {
  const bytes = new TextEncoder().encode("123456789");
  assert.equal(crc32(bytes), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32(bytes.subarray(4), crc32(bytes.subarray(0, 4))), 0xcbf43926);
  const r = randomBytes(1000, 7);
  assert.equal(crc32(r), crcBitwise(r));
});

Deno.test(
  { name: "encodePng: RGB round-trips through chunks, CRCs, IHDR and zlib", ignore: !HAS_PYTHON3 },
  async () => {
    for (const [w, h] of [[7, 5], [1, 1], [64, 3]]) {
      const rgb = randomBytes(w * h * 3, w * 31 + h);
      const png = await encodePng(rgb, w, h);
      const d = await decodePng(png);
      assert.deepEqual([d.width, d.height, d.channels], [w, h, 3]);
      assert.deepEqual(d.pixels, rgb);
    }
  },
);

Deno.test({
  name: "encodePng: greyscale (channels 1) uses colour type 0 and round-trips",
  ignore: !HAS_PYTHON3,
}, async () => {
  const grey = randomBytes(9 * 4, 3);
  const png = await encodePng(grey, 9, 4, 1);
  assert.equal(png[8 + 8 + 9], 0, "IHDR colour type");
  const d = await decodePng(png);
  assert.deepEqual([d.width, d.height, d.channels], [9, 4, 1]);
  assert.deepEqual(d.pixels, grey);
});

Deno.test("encodePng: refuses sizes that disagree with the data", async () => {
  await assert.rejects(
    () => encodePng(new Uint8Array(11), 2, 2),
    /expected width·height·channels = 2·2·3 = 12/,
  );
  await assert.rejects(() => encodePng(new Uint8Array(0), 0, 1), /width must be/);
  await assert.rejects(() => encodePng(new Uint8Array(4), 2, 1, 2 as 1), /channels must be 1 or 3/);
});

Deno.test({
  name: "encodePng: Python's zlib + struct read the file (tests/interop/check_png.py)",
  ignore: !HAS_PYTHON3,
}, async () => {
  const img = upscale(solid(4, 3, [10, 200, 30]), 2);
  img.rgb.set([250, 1, 128], 0);
  await withTmp(async (dir) => {
    const path = `${dir}/interop.png`;
    await Deno.writeFile(path, await encodePng(img.rgb, img.width, img.height));
    const out = await new Deno.Command("python3", { args: [CHECK_PNG, path] }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(r, {
      width: 8,
      height: 6,
      channels: 3,
      first_pixel: [250, 1, 128],
      pixels: 48,
      chunks: ["IHDR", "IDAT", "IEND"],
    });
  });
});

Deno.test("imageGrid: tiles with padding and background; upscale: nearest neighbour", () => {
  const a = solid(2, 2, [255, 0, 0]), b = solid(2, 2, [0, 255, 0]), c = solid(2, 2, [0, 0, 255]);
  const g = imageGrid([a, b, c], 2, 1, [9, 9, 9]);
  assert.deepEqual([g.width, g.height], [7, 7]); // 2·(2+1)+1
  assert.equal(g.rgb.length, 7 * 7 * 3);
  assert.deepEqual(px(g, 0, 0), [9, 9, 9]);
  assert.deepEqual(px(g, 1, 1), [255, 0, 0]);
  assert.deepEqual(px(g, 2, 2), [255, 0, 0]);
  assert.deepEqual(px(g, 3, 1), [9, 9, 9]); // gap between tiles
  assert.deepEqual(px(g, 4, 1), [0, 255, 0]);
  assert.deepEqual(px(g, 5, 2), [0, 255, 0]);
  assert.deepEqual(px(g, 1, 4), [0, 0, 255]);
  assert.deepEqual(px(g, 4, 4), [9, 9, 9]); // empty cell of the last row
  const one = imageGrid([a, b], 8, 0); // cols clamped to the number of images, no padding
  assert.deepEqual([one.width, one.height], [4, 2]);
  assert.deepEqual(px(one, 2, 0), [0, 255, 0]);
  assert.throws(() => imageGrid([a, solid(3, 2, [0, 0, 0])], 2), /image 1 is 3×2, image 0 is 2×2/);
  assert.throws(() => imageGrid([], 2), /no images/);
  assert.throws(
    () => imageGrid([{ rgb: new Uint8Array(5), width: 2, height: 2 }], 1),
    /expected width·height·3/,
  );

  const small = { rgb: new Uint8Array([1, 2, 3, 4, 5, 6]), width: 2, height: 1 };
  const big = upscale(small, 3);
  assert.deepEqual([big.width, big.height], [6, 3]);
  for (let y = 0; y < 3; y++) {
    for (let x = 0; x < 6; x++) {
      assert.deepEqual(px(big, x, y), x < 3 ? [1, 2, 3] : [4, 5, 6], `(${x}, ${y})`);
    }
  }
  const same = upscale(small, 1);
  assert.deepEqual(same.rgb, small.rgb);
  assert.notEqual(same.rgb, small.rgb);
  assert.throws(() => upscale(small, 1.5), /factor must be an integer ≥ 1/);
});

// ---------------------------------------------------------------- charts and tables

Deno.test("lineChart: one path per series with its points, gaps, a single point, legend, escaped title", () => {
  const svg = lineChart({
    title: `Loss <&> "quoted"`,
    xLabel: "step",
    yLabel: "loss <mse>",
    series: [
      { name: "MAE", points: [[0, 0.9], [100, 0.7], [200, 0.5], [300, 0.45], [400, 0.4]] },
      {
        name: "LayerLock & co",
        points: [[0, 1], [100, null], [200, 0.6], [300, NaN], [400, 0.3], [500, 0.2]],
      },
      { name: "probe", points: [[250, 0.8]] },
    ],
  });
  assertBalanced(svg);
  assert.ok(svg.startsWith("<svg") && svg.endsWith("</svg>"));
  const paths = seriesPaths(svg);
  assert.deepEqual(paths.map((p) => p.name), ["MAE", "LayerLock &amp; co", "probe"]);
  assert.deepEqual(paths.map((p) => p.points), [5, 4, 1]);
  assert.deepEqual(paths.map((p) => p.declared), [5, 4, 1]);
  assert.deepEqual(paths.map((p) => p.moves), [1, 3, 1], "each gap starts a new subpath");
  assert.equal(new Set(paths.map((p) => p.stroke)).size, 3, "distinct colours");
  assert.ok(
    svg.includes(">MAE</text>") && svg.includes(">LayerLock &amp; co</text>") &&
      svg.includes(">probe</text>"),
  );
  assert.ok(svg.includes("Loss &lt;&amp;&gt; &quot;quoted&quot;"));
  assert.ok(!svg.includes("<&>") && !svg.includes("<mse>"));
  assert.ok(svg.includes("loss &lt;mse&gt;"));
  assert.ok((svg.match(/<circle/g) ?? []).length >= 1, "the single point is drawn as a marker");
  assert.ok(/>step<\/text>/.test(svg));
  assert.ok(/>500<\/text>/.test(svg), "x ticks reach the last step");
});

Deno.test("lineChart: log axis drops values ≤ 0; no data; a constant series; many series", () => {
  const svg = lineChart({
    title: "log",
    xLabel: "x",
    yLabel: "y",
    logY: true,
    series: [{ name: "s", points: [[1, 1], [2, 0.01], [3, 0], [4, -1], [5, 0.1]] }],
  });
  assertBalanced(svg);
  assert.deepEqual(seriesPaths(svg).map((p) => [p.points, p.moves]), [[3, 2]]);
  for (const t of ["0.01", "0.1", "1"]) assert.ok(svg.includes(`>${t}</text>`), `tick ${t}`);

  const empty = lineChart({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: "a", points: [[1, null]] }],
  });
  assertBalanced(empty);
  assert.ok(empty.includes("no data"));
  assert.deepEqual(seriesPaths(empty).map((p) => p.points), [0]);
  assertBalanced(lineChart({ title: "t", xLabel: "x", yLabel: "y", series: [] }));

  const flat = lineChart({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: "c", points: [[3, 2], [3, 2]] }],
  });
  assertBalanced(flat);
  assert.ok(!/NaN|Infinity/.test(flat), "a zero range does not divide by zero");

  const many = lineChart({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: Array.from(
      { length: 12 },
      (_, i) => ({ name: `s${i}`, points: [[0, i], [1, i + 1]] as [number, number][] }),
    ),
  });
  const styles = [
    ...many.matchAll(/<path data-series[^>]*stroke="([^"]+)"[^>]*?(stroke-dasharray="[^"]+")?\/>/g),
  ]
    .map((m) => `${m[1]} ${m[2] ?? ""}`);
  assert.equal(new Set(styles).size, 12, "series beyond the palette differ by dash pattern");

  for (const name of ["latent", "x", "LayerLock (latent only)"]) {
    const one = lineChart({
      title: "t",
      xLabel: "x",
      yLabel: "y",
      series: [{ name, points: [[0, 1], [1, 2]] }],
    });
    assert.ok(one.includes(`>${escapeHtml(name)}</text>`), `legend shows ${name} in full`);
  }
  const longName = "a".repeat(60);
  const cut = lineChart({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: longName, points: [[0, 1]] }],
  });
  assertBalanced(cut);
  assert.ok(
    cut.includes(`<title>${longName}</title>`) && cut.includes("…</text>"),
    "a very long name is cut",
  );
});

Deno.test("barChart: a bar per finite value, error bars, negative values, n/a, escaped labels", () => {
  const svg = barChart({
    title: "Probe <accuracy>",
    yLabel: "top-1",
    bars: [
      { label: "MAE", value: 0.61, err: 0.03 },
      { label: "LayerLock <latent>", value: 0.74, err: 0.02 },
      { label: "random", value: -0.1 },
      { label: "missing", value: null },
    ],
  });
  assertBalanced(svg);
  const rects = [...svg.matchAll(/<rect data-label="([^"]*)"/g)].map((m) => m[1]);
  assert.deepEqual(rects, ["MAE", "LayerLock &lt;latent&gt;", "random"]);
  assert.equal((svg.match(/<g class="err"/g) ?? []).length, 2);
  assert.ok(svg.includes("Probe &lt;accuracy&gt;") && !svg.includes("<accuracy>"));
  assert.ok(svg.includes(">n/a</text>"));
  assert.ok(svg.includes(">0.74</text>") && svg.includes(">-0.1</text>"));
  assert.ok(svg.includes("0.61 ± 0.03"));
  assert.ok(!/NaN|Infinity/.test(svg));
  const long = barChart({
    title: "t",
    yLabel: "y",
    bars: Array.from({ length: 12 }, (_, i) => ({ label: `a rather long label ${i}`, value: i })),
  });
  assertBalanced(long);
  assert.ok(long.includes("rotate(-35)"), "labels that do not fit are rotated");
  assertBalanced(barChart({ title: "t", yLabel: "y", bars: [] }));
});

Deno.test("table and formatNumber: escaped cells, formatted numbers, empty cells, raw HTML", () => {
  const html = table(["name <i>", "acc"], [["a&b", 0.123456], [null, 12], [{ html: "<b>x</b>" }, 1e-5]], {
    caption: "c <1>",
  });
  assertBalanced(html);
  assert.ok(html.includes("<th>name &lt;i&gt;</th>"));
  assert.ok(html.includes("<td>a&amp;b</td>") && html.includes(`<td class="num">0.1235</td>`));
  assert.ok(html.includes(`<td class="empty">—</td>`) && html.includes(`<td class="num">12</td>`));
  assert.ok(html.includes("<td><b>x</b></td>") && html.includes(">1e-5<") && html.includes("c &lt;1&gt;"));
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  assert.deepEqual(
    [0.5, 1 / 3, 1234.5678, 2e-7, 3.5e7, -0.25, 600, null, NaN, Infinity].map((v) => formatNumber(v)),
    ["0.5", "0.3333", "1235", "2e-7", "35000000", "-0.25", "600", "—", "NaN", "∞"],
  );
  assert.equal(formatNumber(3.5e7 + 0.5), "3.5e7");
});

// ---------------------------------------------------------------- the report on disk

Deno.test("renderReport + writeReport + checkReport: a self-contained page whose images exist", async () => {
  await withTmp(async (dir) => {
    const frame = upscale(solid(4, 4, [200, 50, 50]), 4);
    const grid = imageGrid([frame, frame, frame], 3);
    const html = renderReport({
      title: "LayerLock <report> & co",
      subtitle: "tiny, 600 steps",
      sections: [
        {
          heading: "Loss",
          html: lineChart({
            title: "loss",
            xLabel: "step",
            yLabel: "mse",
            series: [{ name: "a", points: [[0, 1]] }],
          }),
        },
        {
          heading: "Probes",
          html: barChart({ title: "acc", yLabel: "top-1", bars: [{ label: "a", value: 1 }] }),
        },
        { heading: "Numbers", html: table(["k", "v"], [["a", 1]]) },
        {
          heading: "Frames",
          html: image("frames/grid.png", { caption: "grid" }) + image("one.png", { width: 64 }),
        },
      ],
    });
    assertBalanced(html);
    const path = await writeReport(dir, html, [
      { name: "frames/grid.png", png: await encodePng(grid.rgb, grid.width, grid.height) },
      { name: "one.png", png: await encodePng(frame.rgb, frame.width, frame.height) },
    ]);
    assert.equal(path, `${dir}/report.html`);
    const text = await Deno.readTextFile(path);
    assert.ok(text.startsWith("<!DOCTYPE html>") && text.includes("<html") && text.includes("</html>"));
    assert.equal((text.match(/<section id=/g) ?? []).length, 4);
    assert.ok(text.includes(`<nav>`) && text.includes(`href="#loss"`));
    assert.ok(text.includes("<title>LayerLock &lt;report&gt; &amp; co</title>"));
    assert.ok(!/<script|<link|https?:\/\/(?!www\.w3\.org\/2000\/svg)/.test(text), "no external resources");

    const ok = await checkReport(dir);
    assert.deepEqual(ok.images.map((i) => [i.src, i.exists]), [["frames/grid.png", true], ["one.png", true]]);
    assert.deepEqual([ok.missing, ok.problems, ok.ok], [[], [], true]);
    const ihdr = parseChunks(await Deno.readFile(`${dir}/frames/grid.png`))[0].data;
    assert.equal(new DataView(ihdr.buffer, ihdr.byteOffset, 13).getUint32(0), 3 * 18 + 2, "grid width");

    await Deno.remove(`${dir}/one.png`);
    const bad = await checkReport(dir);
    assert.deepEqual(bad.images.map((i) => [i.src, i.exists]), [["frames/grid.png", true], [
      "one.png",
      false,
    ]]);
    assert.deepEqual([bad.missing, bad.ok], [["one.png"], false]);

    await assert.rejects(
      () => writeReport(dir, html, [{ name: "../x.png", png: new Uint8Array(1) }]),
      /plain relative/,
    );
    await assert.rejects(
      () => writeReport(dir, html, [{ name: "/abs.png", png: new Uint8Array(1) }]),
      /plain relative/,
    );
  });
});

Deno.test("checkReport: flags network references, stylesheets, a missing page and a missing <html>", async () => {
  await withTmp(async (dir) => {
    assert.deepEqual((await checkReport(dir)).ok, false);
    assert.match((await checkReport(dir)).problems[0], /report\.html does not exist/);
    await writeReport(
      dir,
      `<p>text src="nope.png" is not a tag</p><img src='https://example.com/a.png'><script src="x.js"></script>` +
        `<link rel="stylesheet" href="s.css"><img src="data:image/png;base64,AAAA"><!-- <img src="c.png"> -->` +
        `<img alt="x" src=a%20b.png>`,
    );
    await Deno.writeFile(`${dir}/a b.png`, new Uint8Array(1));
    const r = await checkReport(dir);
    assert.deepEqual(r.images.map((i) => [i.src, i.exists]), [
      ["https://example.com/a.png", false],
      ["x.js", false],
      ["data:image/png;base64,AAAA", true],
      ["a%20b.png", true],
    ]);
    assert.equal(r.ok, false);
    for (const p of [/no <html>/, /no <body>/, /<link href="s.css">/, /not a relative reference: https:/]) {
      assert.ok(r.problems.some((q) => p.test(q)), `problem ${p}: ${r.problems}`);
    }
  });
});
