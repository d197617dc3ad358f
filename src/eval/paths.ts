/**
 * The small file-system questions of the probe workflow (`src/eval/probe_run.ts`): is a path a file, a folder;
 * and the SHA-256 of a text or of bytes, as the feature cache keys its files.
 * @module
 */

/** Whether `path` is a file (false when it does not exist or cannot be read). */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Whether `path` is a folder (false when it does not exist or cannot be read). */
export function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** The SHA-256 of a text (as UTF-8) or of bytes, in lower-case hex. */
export async function sha256Hex(text: string | Uint8Array): Promise<string> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}
