/**
 * PNG encoding for the experiment report, in pure TypeScript: `encodePng` writes 8-bit RGB or greyscale PNGs
 * (zlib data from the platform's `CompressionStream("deflate")`, filter 0 on every row, the CRC-32 of
 * src/checksum.ts per chunk), `imageGrid` tiles equal-size frames into one image and `upscale` enlarges small
 * frames (nearest neighbour) so that 32×32 video frames are visible in a browser. No tensors, no native code.
 * @module
 */

import { crc32 } from "../checksum.ts";
import { ConfigError, DataError } from "../errors.ts";

/** An 8-bit RGB image: `rgb` holds width·height·3 bytes, row-major, channels interleaved (R, G, B). */
export interface RgbImage {
  /** Pixels, [height, width, 3] row-major. */
  rgb: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/** The eight bytes every PNG file starts with. */
export const PNG_SIGNATURE: Uint8Array = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

// `fn` is the function checking (the error's `where`), `what` the size it checks, e.g. `image 2: width`.
function checkSize(fn: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1 || v > 0x7fffffff) {
    throw new DataError(fn, `${fn}: ${what} must be an integer from 1 to 2^31 − 1, got ${v}`);
  }
}

/** Compresses `data` into the zlib format (RFC 1950) with the platform's CompressionStream. */
async function zlibDeflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** One PNG chunk: length, type, data, CRC-32 of type and data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Encodes 8-bit pixels as a PNG file. `pixels` holds width·height·channels bytes, row-major: interleaved RGB
 * for `channels` 3 (colour type 2), one grey level per pixel for `channels` 1 (colour type 0). Every row is
 * written with filter type 0 (none); no ancillary chunks. Throws a DataError when the sizes disagree.
 */
export async function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: 1 | 3 = 3,
): Promise<Uint8Array> {
  checkSize("encodePng", "width", width);
  checkSize("encodePng", "height", height);
  if (channels !== 1 && channels !== 3) {
    throw new ConfigError("encodePng", `encodePng: channels must be 1 or 3, got ${channels}`);
  }
  const stride = width * channels;
  if (pixels.length !== stride * height) {
    throw new DataError(
      "encodePng",
      `encodePng: expected width·height·channels = ${width}·${height}·${channels} = ${
        stride * height
      } bytes, ` +
        `got ${pixels.length}`,
    );
  }
  const ihdr = new Uint8Array(13);
  const hv = new DataView(ihdr.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 3 ? 2 : 0; // colour type: truecolour or greyscale
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    // raw[y * (stride + 1)] stays 0: filter type none.
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const parts = [
    PNG_SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", await zlibDeflate(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// `fn` is the function checking (the error's `where`), `which` the image (`image 2`) when it takes several.
function checkImage(fn: string, which: string, img: RgbImage): void {
  const what = which ? `${fn}: ${which}` : fn;
  checkSize(fn, which ? `${which}: width` : "width", img.width);
  checkSize(fn, which ? `${which}: height` : "height", img.height);
  if (img.rgb.length !== img.width * img.height * 3) {
    throw new DataError(
      fn,
      `${what}: expected width·height·3 = ${
        img.width * img.height * 3
      } bytes for ${img.width}×${img.height} ` +
        `RGB, got ${img.rgb.length}`,
    );
  }
}

/**
 * Tiles equal-size RGB images into one, `cols` to a row (fewer when there are fewer images), left to right
 * then top to bottom, with `pad` pixels of `background` between tiles and around the edge (as torchvision's
 * `make_grid`). `background` is a grey level or an [r, g, b] triple. Unused cells of the last row stay
 * background. Throws a DataError for an empty list or unequal sizes, a ConfigError for a bad `cols`/`pad`.
 */
export function imageGrid(
  images: RgbImage[],
  cols: number,
  pad = 2,
  background: number | readonly [number, number, number] = 0,
): RgbImage {
  if (images.length === 0) throw new DataError("imageGrid", "imageGrid: no images");
  if (!Number.isInteger(cols) || cols < 1) {
    throw new ConfigError("imageGrid", `imageGrid: cols must be ≥ 1, got ${cols}`);
  }
  if (!Number.isInteger(pad) || pad < 0) {
    throw new ConfigError("imageGrid", `imageGrid: pad must be ≥ 0, got ${pad}`);
  }
  const { width: w, height: h } = images[0];
  images.forEach((img, i) => {
    checkImage("imageGrid", `image ${i}`, img);
    if (img.width !== w || img.height !== h) {
      throw new DataError(
        "imageGrid",
        `imageGrid: image ${i} is ${img.width}×${img.height}, image 0 is ${w}×${h}`,
      );
    }
  });
  const nc = Math.min(cols, images.length), nr = Math.ceil(images.length / nc);
  const width = nc * (w + pad) + pad, height = nr * (h + pad) + pad;
  const rgb = new Uint8Array(width * height * 3);
  const bg = typeof background === "number" ? [background, background, background] : background;
  if (bg[0] !== 0 || bg[1] !== 0 || bg[2] !== 0) {
    for (let i = 0; i < rgb.length; i += 3) {
      rgb[i] = bg[0];
      rgb[i + 1] = bg[1];
      rgb[i + 2] = bg[2];
    }
  }
  images.forEach((img, i) => {
    const x0 = pad + (i % nc) * (w + pad), y0 = pad + Math.floor(i / nc) * (h + pad);
    for (let y = 0; y < h; y++) {
      rgb.set(img.rgb.subarray(y * w * 3, (y + 1) * w * 3), ((y0 + y) * width + x0) * 3);
    }
  });
  return { rgb, width, height };
}

/** Enlarges an RGB image by an integer `factor` (each pixel becomes a factor×factor block: nearest neighbour). */
export function upscale(img: RgbImage, factor: number): RgbImage {
  checkImage("upscale", "", img);
  if (!Number.isInteger(factor) || factor < 1) {
    throw new ConfigError("upscale", `upscale: factor must be an integer ≥ 1, got ${factor}`);
  }
  if (factor === 1) return { rgb: img.rgb.slice(), width: img.width, height: img.height };
  const width = img.width * factor, height = img.height * factor;
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < img.height; y++) {
    const row = (y * factor) * width * 3;
    for (let x = 0; x < img.width; x++) {
      const s = (y * img.width + x) * 3, r = img.rgb[s], g = img.rgb[s + 1], b = img.rgb[s + 2];
      for (let k = 0, d = row + x * factor * 3; k < factor; k++, d += 3) {
        rgb[d] = r;
        rgb[d + 1] = g;
        rgb[d + 2] = b;
      }
    }
    for (let k = 1; k < factor; k++) rgb.copyWithin(row + k * width * 3, row, row + width * 3);
  }
  return { rgb, width, height };
}
