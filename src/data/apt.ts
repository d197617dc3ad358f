/**
 * Installing a missing Debian package on the fly: `aptInstall(pkg)` runs `apt-get install -y pkg` (and
 * `apt-get update` then a retry if that fails) when running as root, printing what it does, and otherwise throws
 * a DataError that says what is missing and how to install it by hand. Used for ffmpeg (`ensureFfmpeg`) and the
 * Fashion-MNIST files (`ensureFashionMnist`). Pure TypeScript plus subprocesses: no tensors, usable in workers.
 * @module
 */
import { DataError } from "../errors.ts";

/** Options of `aptInstall`. */
export interface AptInstallOptions {
  /** What is missing, the start of every error message (e.g. "ffmpeg is needed ... but was not found"). */
  why: string;
  /** How to install it by hand, the end of every error message. */
  hint: string;
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
}

/** Whether `e` is Deno's refusal of a permission (PermissionDenied, or NotCapable in Deno 2). */
export function permissionError(e: unknown): boolean {
  const errors = Deno.errors as unknown as Record<string, (new () => Error) | undefined>;
  return ["PermissionDenied", "NotCapable"].some((k) => errors[k] !== undefined && e instanceof errors[k]!);
}

/**
 * Whether this process runs as root (`id -u` prints 0). False where `id` is missing; throws a DataError naming
 * `--allow-run` when Deno's permissions forbid running it.
 */
export async function isRoot(): Promise<boolean> {
  try {
    const r = await new Deno.Command("id", { args: ["-u"], stdin: "null", stdout: "piped", stderr: "null" })
      .output();
    return r.success && new TextDecoder().decode(r.stdout).trim() === "0";
  } catch (e) {
    if (permissionError(e)) {
      throw new DataError(
        "apt",
        `installing packages needs permission to run subprocesses (--allow-run): ${e}`,
      );
    }
    return false; // no `id`: not a system we install on
  }
}

/**
 * Installs Debian package `pkg` with apt-get, as root only: runs `apt-get install -y pkg` (waiting up to five
 * minutes for another apt/dpkg to release its lock), and on failure `apt-get update` and the install again,
 * printing each command and letting apt-get's own output through. Throws a DataError that starts with `why` and
 * ends with `hint` when we are not root, apt-get is missing or not permitted, or the install fails.
 */
export async function aptInstall(pkg: string, opts: AptInstallOptions): Promise<void> {
  const { why, hint } = opts, log = opts.log ?? ((l: string) => console.log(l));
  let root: boolean;
  try {
    root = await isRoot();
  } catch (e) {
    throw new DataError("apt", `${why}, and it could not be installed: ${(e as Error).message}; ${hint}`);
  }
  if (!root) throw new DataError("apt", `${why}, and we are not root, so it was not installed; ${hint}`);
  const apt = async (args: string[]) => {
    const full = ["-o", "DPkg::Lock::Timeout=300", ...args];
    log(`layerlock: running apt-get ${full.join(" ")}`);
    try {
      const r = await new Deno.Command("apt-get", {
        args: full,
        stdin: "null",
        stdout: "inherit",
        stderr: "inherit",
        env: { DEBIAN_FRONTEND: "noninteractive" },
      }).output();
      return r.success;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new DataError("apt", `${why}, and apt-get is not available; ${hint}`);
      }
      if (permissionError(e)) {
        throw new DataError(
          "apt",
          `${why}, and running apt-get needs --allow-run (${(e as Error).message}); ${hint}`,
        );
      }
      throw e;
    }
  };
  log(`layerlock: installing Debian's ${pkg} package with apt-get`);
  if (!(await apt(["install", "-y", pkg]))) {
    log("layerlock: apt-get install failed; updating the package lists and retrying");
    await apt(["update"]);
    if (!(await apt(["install", "-y", pkg]))) {
      throw new DataError(
        "apt",
        `${why}, and \`apt-get install -y ${pkg}\` failed (see its output above); ${hint}`,
      );
    }
  }
  log(`layerlock: ${pkg} installed`);
}
