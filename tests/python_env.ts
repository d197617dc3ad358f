/**
 * The Python that tests compare against: the one the build found torch in (native/build/current.json), with the
 * pinned packages a test needs (transformers, tensorboard, ...) installed into it on first use when it is the
 * project's `.venv` (as the build installs torch there). A test is skipped, with the reason, only when the
 * packages cannot be had (pip cannot reach them, or torch lives in a Python the project does not own).
 * @module
 */

/** Pinned versions of the Python packages tests use besides torch. */
export const PYTHON_PINS = {
  transformers: "transformers==5.17.0",
  tensorboard: "tensorboard==2.21.0",
  safetensors: "safetensors==0.8.0",
} as const;

/** A Python with the packages, or why there is none. */
export type PythonEnv = { python: string; skip: null } | { python: null; skip: string };

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const cache = new Map<string, Promise<PythonEnv>>();

async function importable(python: string, modules: readonly string[]): Promise<boolean> {
  const r = await new Deno.Command(python, {
    args: ["-c", modules.map((m) => `import ${m}`).join("; ")],
    stdout: "null",
    stderr: "null",
  }).output();
  return r.success;
}

/**
 * The build's Python with `packages` (keys of PYTHON_PINS) importable: installed into the project's `.venv` at
 * their pinned versions when missing (once per process).
 */
export function pythonWith(...packages: (keyof typeof PYTHON_PINS)[]): Promise<PythonEnv> {
  const key = packages.join(",");
  if (!cache.has(key)) cache.set(key, find(packages));
  return cache.get(key)!;
}

async function find(packages: readonly (keyof typeof PYTHON_PINS)[]): Promise<PythonEnv> {
  let python: string | undefined;
  try {
    python = JSON.parse(Deno.readTextFileSync(`${ROOT}native/build/current.json`)).torch?.python;
  } catch { /* not built */ }
  if (!python) {
    return { python: null, skip: "no Python with torch (a LIBTORCH build): nothing to compare against" };
  }
  if (await importable(python, packages)) return { python, skip: null };
  const ours = python.startsWith(`${ROOT}.venv/`);
  if (!ours) {
    return {
      python: null,
      skip: `${python} lacks ${packages.join(", ")}, and it is not the project's .venv to install into`,
    };
  }
  const pins = packages.map((p) => PYTHON_PINS[p]);
  console.error(`tests: installing ${pins.join(", ")} into .venv (once)...`);
  const pip = await new Deno.Command(python, {
    args: ["-m", "pip", "install", "--disable-pip-version-check", "-q", ...pins],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!pip.success || !(await importable(python, packages))) {
    const why = new TextDecoder().decode(pip.stderr).trim().split("\n").slice(-1)[0] ?? "";
    return { python: null, skip: `pip could not install ${pins.join(", ")} into .venv (${why})` };
  }
  return { python, skip: null };
}
