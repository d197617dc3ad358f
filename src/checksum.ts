/**
 * CRC-32 (ISO 3309 / ITU-T V.42, the polynomial PNG and zlib use, so Python's `zlib.crc32` gives the same value),
 * slicing by 8 bytes: the checksum of PNG chunks (src/eval/png.ts) and the one a checkpoint records of its tensor
 * data and configuration (src/train/checkpoint.ts); and CRC-32C (Castagnoli), which TensorBoard's event records
 * carry (src/train/tensorboard.ts). Pure TypeScript; imports nothing.
 * @module
 */

const TABLES: Uint32Array[] = (() => {
  const t = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[0][n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) t[k][n] = (t[k - 1][n] >>> 8) ^ t[0][t[k - 1][n] & 0xff];
  }
  return t;
})();

/**
 * The CRC-32 of `bytes` as an unsigned 32-bit integer, continuing from `crc` (the CRC of the bytes before them;
 * 0 to start). The CRC of "123456789" is 0xcbf43926.
 */
export function crc32(bytes: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES;
  let c = ~crc >>> 0, i = 0;
  const n = bytes.length, end8 = n - (n % 8);
  for (; i < end8; i += 8) {
    const a = (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24)) ^ c;
    c = t7[a & 0xff] ^ t6[(a >>> 8) & 0xff] ^ t5[(a >>> 16) & 0xff] ^ t4[a >>> 24] ^
      t3[bytes[i + 4]] ^ t2[bytes[i + 5]] ^ t1[bytes[i + 6]] ^ t0[bytes[i + 7]];
  }
  for (; i < n; i++) c = t0[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** `crc32:` and the CRC-32 of `bytes` in 8 hex digits, as checkpoints record it. */
export function crc32Tag(crc: number): string {
  return `crc32:${crc.toString(16).padStart(8, "0")}`;
}

const CRC32C_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * The CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) of `bytes` as an unsigned 32-bit integer, continuing
 * from `crc` (0 to start). The CRC-32C of "123456789" is 0xe3069283.
 */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC32C_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
