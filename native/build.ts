/**
 * Finds libtorch and builds the C shim (`native/*.cpp` → `native/build/<key>/libllshim.so`).
 *
 * libtorch is looked for in this order:
 *  1. `LIBTORCH`: a directory with `include/` and `lib/` (ABI from `LIBTORCH_CXX11_ABI`, default 1);
 *  2. a Python that has torch: `LIBTORCH_PYTHON`, else `python3` on PATH, else the project's `.venv`;
 *  3. otherwise a project-local `.venv` is created and `torch==2.13.0` (CPU) installed into it.
 *
 * Object files are cached by the hash of their source, the headers and the flags; the linked library by the
 * hash of everything that goes into it, so an unchanged tree never rebuilds. `native/build/current.json`
 * records what was found; the FFI loader reads it.
 *
 * The video decoder (`native/video/video.cpp` → `libllvideo.so`) is a separate library on FFmpeg's libavformat,
 * libavcodec and libswscale, without libtorch: the data workers load it. Their headers come from Debian's
 * libavformat-dev and libswscale-dev, installed as root when missing; without them the build goes on and video
 * folders decode with the ffmpeg program.
 *
 * Run with `deno task build` (the `test`, `train`, `bench` and `repl` tasks run it first).
 * @module
 */

import { aptInstall } from "../src/data/apt.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const NATIVE = `${ROOT}/native`;
const BUILD = `${NATIVE}/build`;
const TORCH_PIN = "torch==2.13.0";

/** What was found about the libtorch used for the build. */
export interface TorchInfo {
  /** torch version string, e.g. `2.13.0+cpu`. */
  version: string;
  /** Directories passed to the compiler with -I. */
  includeDirs: string[];
  /** Directory holding libtorch.so. */
  libDir: string;
  /** `_GLIBCXX_USE_CXX11_ABI` value of the build. */
  cxx11Abi: number;
  /** Whether libtorch_cuda.so is present. */
  cuda: boolean;
  /** The Python interpreter that has this torch, if found through Python. */
  python: string | null;
  /** How it was found. */
  source: string;
}

/** The record written to `native/build/current.json`. */
export interface BuildRecord {
  /** Absolute path of the built shared library. */
  lib: string;
  /** The libtorch it was built against. */
  torch: TorchInfo;
  /** Cache key of the build. */
  key: string;
  /** Whether the CUDA memory-statistics unit was compiled with CUDA headers. */
  cudaStats: boolean;
  /** The process-group backends compiled into the distributed unit (Gloo needs its headers, NCCL nccl.h). */
  dist: { gloo: boolean; nccl: boolean };
  /**
   * The in-process video decoder (`native/video/` → libllvideo.so, on FFmpeg's libraries), or why it was not
   * built (then video folders decode with the ffmpeg program instead).
   */
  video: { lib: string } | { lib: null; why: string };
}

function say(msg: string): void {
  console.error(`[build] ${msg}`);
}

class BuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BuildError";
  }
}

/** Runs a command; `show` lets its output through to the terminal (then `out`/`err` are empty). */
async function run(
  cmd: string,
  args: string[],
  opts: { show?: boolean } = {},
): Promise<{ ok: boolean; out: string; err: string }> {
  const io = opts.show ? "inherit" : "piped";
  try {
    const r = await new Deno.Command(cmd, { args, stdout: io, stderr: io }).output();
    const dec = new TextDecoder();
    return opts.show
      ? { ok: r.success, out: "", err: "" }
      : { ok: r.success, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { ok: false, out: "", err: `${cmd}: not found` };
    throw e;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

const PY_PROBE = `
import json, os, torch
from torch.utils import cpp_extension as ce
d = os.path.dirname(torch.__file__)
print(json.dumps({"version": torch.__version__, "dir": d,
  "abi": int(torch._C._GLIBCXX_USE_CXX11_ABI), "cuda": torch.version.cuda is not None,
  "include": [os.path.join(d, "include"), os.path.join(d, "include", "torch", "csrc", "api", "include")],
  "lib": os.path.join(d, "lib")}))
`;

async function probePython(py: string, source: string): Promise<TorchInfo | null> {
  const r = await run(py, ["-c", PY_PROBE]);
  if (!r.ok) return null;
  const j = JSON.parse(r.out.trim().split("\n").pop()!);
  const cuda = await exists(`${j.lib}/libtorch_cuda.so`);
  return {
    version: j.version,
    includeDirs: j.include,
    libDir: j.lib,
    cxx11Abi: j.abi,
    cuda,
    python: py,
    source,
  };
}

async function fromLibtorchDir(dir: string): Promise<TorchInfo> {
  if (!(await exists(`${dir}/include`)) || !(await exists(`${dir}/lib/libtorch.so`))) {
    throw new BuildError(`LIBTORCH=${dir} must hold include/ and lib/libtorch.so`);
  }
  let version = "unknown";
  try {
    const h = await Deno.readTextFile(`${dir}/include/torch/version.h`);
    version = h.match(/TORCH_VERSION\s+"([^"]+)"/)?.[1] ?? version;
  } catch { /* older layouts have no version.h */ }
  return {
    version,
    includeDirs: [`${dir}/include`, `${dir}/include/torch/csrc/api/include`],
    libDir: `${dir}/lib`,
    cxx11Abi: Number(Deno.env.get("LIBTORCH_CXX11_ABI") ?? "1"),
    cuda: await exists(`${dir}/lib/libtorch_cuda.so`),
    python: null,
    source: `LIBTORCH=${dir}`,
  };
}

/** Finds libtorch as documented at the top of this file, installing it into `.venv` as a last resort. */
export async function locateTorch(): Promise<TorchInfo> {
  const lt = Deno.env.get("LIBTORCH");
  if (lt) return await fromLibtorchDir(lt);
  const explicit = Deno.env.get("LIBTORCH_PYTHON");
  if (explicit) {
    const t = await probePython(explicit, `LIBTORCH_PYTHON=${explicit}`);
    if (!t) throw new BuildError(`LIBTORCH_PYTHON=${explicit} cannot import torch`);
    return t;
  }
  const sys = await probePython("python3", "python3 on PATH");
  if (sys) return sys;
  const venvPy = `${ROOT}/.venv/bin/python3`;
  if (await exists(venvPy)) {
    const t = await probePython(venvPy, "project .venv");
    if (t) return t;
  }
  // Last resort: a project-local virtual environment with the CPU build of torch.
  const base = await run("python3", ["--version"]);
  if (!base.ok) {
    throw new BuildError(
      "no libtorch found: set LIBTORCH to a libtorch directory, or LIBTORCH_PYTHON to a Python with torch, " +
        "or install python3 (with venv and pip) so that torch can be installed into .venv",
    );
  }
  say(`no torch found; creating .venv and installing ${TORCH_PIN} (CPU build, a few minutes, ~1 GB)...`);
  if (!(await exists(venvPy))) {
    const v = await run("python3", ["-m", "venv", `${ROOT}/.venv`], { show: true });
    if (!v.ok) {
      throw new BuildError("python3 -m venv .venv failed (is python3-venv installed?); see the output above");
    }
  }
  const pip = await run(venvPy, [
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--progress-bar",
    "off",
    TORCH_PIN,
    "numpy",
    "safetensors",
  ], { show: true });
  if (!pip.ok) throw new BuildError(`pip install ${TORCH_PIN} into .venv failed; see the output above`);
  const t = await probePython(venvPy, "project .venv (installed now)");
  if (!t) throw new BuildError("torch was installed into .venv but cannot be imported");
  return t;
}

async function sha256(parts: (string | Uint8Array)[]): Promise<string> {
  const enc = new TextEncoder();
  const chunks = parts.map((p) => typeof p === "string" ? enc.encode(p) : p);
  const total = chunks.reduce((n, c) => n + c.length + 1, 0);
  const buf = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    buf.set(c, o);
    o += c.length + 1;
  }
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The site-packages folder of a wheel's torch (its lib dir without /torch/lib). */
function sitePackages(t: TorchInfo): string {
  return t.libDir.replace(/\/torch\/lib$/, "");
}

/**
 * The CUDA include folders: the first that has the runtime's headers, then every other candidate that exists
 * (torch's own CUDA headers include cuBLAS's, cuSPARSE's and cuSOLVER's, which pip puts in other folders than the
 * runtime's, e.g. site-packages/nvidia/cu13/include beside /usr/local/cuda/include). Empty: none found.
 */
async function findCudaIncludes(t: TorchInfo): Promise<string[]> {
  const cands: string[] = [];
  for (const v of ["CUDA_HOME", "CUDA_PATH"]) {
    const e = Deno.env.get(v);
    if (e) cands.push(`${e}/include`);
  }
  cands.push("/usr/local/cuda/include");
  // pip wheels of the CUDA runtime ship headers next to torch: site-packages/nvidia/*/include
  const site = sitePackages(t);
  try {
    for await (const e of Deno.readDir(`${site}/nvidia`)) {
      cands.push(`${site}/nvidia/${e.name}/include`);
    }
  } catch { /* no nvidia wheels */ }
  const primary = [];
  for (const c of cands) if (await exists(`${c}/cuda_runtime_api.h`)) primary.push(c);
  if (primary.length === 0) return [];
  const rest = [];
  for (const c of cands) if (!primary.includes(c) && await exists(c)) rest.push(c);
  return [...new Set([...primary, ...rest])];
}

/** Gloo's headers (Debian's libgloo-dev; the torch wheel does not ship them): installed as root when missing. */
async function findGlooInclude(): Promise<string | null> {
  const cands = [Deno.env.get("GLOO_INCLUDE"), "/usr/include", "/usr/local/include"].filter((
    c,
  ): c is string => !!c);
  const find = async () => {
    for (const c of cands) if (await exists(`${c}/gloo/config.h`)) return c;
    return null;
  };
  const found = await find();
  if (found || Deno.env.get("LAYERLOCK_NO_GLOO")) return found;
  try {
    await aptInstall("libgloo-dev", {
      why: "Gloo's headers (for multi-process training) were not found",
      hint: "install libgloo-dev (Debian/Ubuntu) or set GLOO_INCLUDE to the folder holding gloo/",
      log: (l) => say(l),
    });
  } catch (e) {
    say(`warning: ${(e as Error).message}; building without Gloo (single-process training only)`);
    return null;
  }
  return await find();
}

/** NCCL's header, from the nvidia-nccl wheel beside torch or a system install (CUDA builds only). */
async function findNcclInclude(t: TorchInfo): Promise<string | null> {
  const site = sitePackages(t);
  const cands = [
    Deno.env.get("NCCL_INCLUDE"),
    `${site}/nvidia/nccl/include`,
    "/usr/include",
    "/usr/local/cuda/include",
  ]
    .filter((c): c is string => !!c);
  for (const c of cands) if (await exists(`${c}/nccl.h`)) return c;
  return null;
}

const AV_HEADERS = ["libavformat/avformat.h", "libavcodec/avcodec.h", "libswscale/swscale.h"];
const AV_PACKAGES = ["libavformat-dev", "libswscale-dev"];

/** The folder holding FFmpeg's development headers (Debian puts them under a multiarch folder), or null. */
async function findAvInclude(): Promise<string | null> {
  const arch = Deno.build.arch === "x86_64" ? "x86_64-linux-gnu" : "aarch64-linux-gnu";
  const cands = [Deno.env.get("FFMPEG_INCLUDE"), `/usr/include/${arch}`, "/usr/include", "/usr/local/include"]
    .filter((c): c is string => !!c);
  for (const c of cands) {
    if ((await Promise.all(AV_HEADERS.map((h) => exists(`${c}/${h}`)))).every((x) => x)) return c;
  }
  return null;
}

/**
 * Builds `native/video/video.cpp` into `native/build/video-<hash>/libllvideo.so` (cached by the hash of the
 * source and flags), installing FFmpeg's development packages as root when their headers are missing. Never
 * fails the build: without headers or on a compile error it returns why, and video folders use the ffmpeg
 * program. `LAYERLOCK_NO_LIBAV=1` skips it.
 */
async function buildVideo(cxx: string): Promise<BuildRecord["video"]> {
  if (Deno.env.get("LAYERLOCK_NO_LIBAV")) return { lib: null, why: "LAYERLOCK_NO_LIBAV is set" };
  let inc = await findAvInclude();
  if (inc === null) {
    try {
      for (const pkg of AV_PACKAGES) {
        await aptInstall(pkg, {
          why: "FFmpeg's headers (for the in-process video decoder) were not found",
          hint: `install ${AV_PACKAGES.join(" ")} (Debian/Ubuntu) or set FFMPEG_INCLUDE`,
          log: (l) => say(l),
        });
      }
    } catch (e) {
      const why = (e as Error).message;
      say(`warning: ${why}; video folders will decode with the ffmpeg program (slower)`);
      return { lib: null, why };
    }
    inc = await findAvInclude();
    if (inc === null) return { lib: null, why: "FFmpeg's headers are still missing after installing them" };
  }
  const src = `${NATIVE}/video/video.cpp`;
  const flags = ["-O2", "-fPIC", "-shared", "-std=c++20", "-w", "-fvisibility=hidden", `-I${inc}`];
  const libs = ["-lavformat", "-lavcodec", "-lswscale", "-lavutil"];
  const h = await sha256([await Deno.readFile(src), flags.join(" "), libs.join(" "), cxx]);
  const dir = `${BUILD}/video-${h.slice(0, 16)}`, lib = `${dir}/libllvideo.so`;
  if (await exists(lib)) return { lib };
  await compilerCheck(cxx);
  say("compiling the video decoder (native/video/video.cpp, FFmpeg's libraries)...");
  await Deno.mkdir(dir, { recursive: true });
  const r = await run(cxx, [...flags, src, "-o", `${lib}.${Deno.pid}.tmp`, ...libs]);
  if (!r.ok) {
    const why = `compiling native/video/video.cpp failed: ${r.err.split("\n").slice(0, 20).join("\n")}`;
    say(`warning: ${why}; video folders will decode with the ffmpeg program (slower)`);
    return { lib: null, why };
  }
  await Deno.rename(`${lib}.${Deno.pid}.tmp`, lib);
  say(`built ${lib.replace(ROOT + "/", "")}`);
  return { lib };
}

async function compilerCheck(cxx: string): Promise<void> {
  const r = await run(cxx, ["--version"]);
  if (!r.ok) {
    throw new BuildError(
      `the C++ compiler '${cxx}' was not found; install g++ (Debian: apt-get install g++) or set CXX`,
    );
  }
}

/** Builds the shim if needed and returns the record of the build. */
export async function build(): Promise<BuildRecord> {
  const torch = await locateTorch();
  const cxx = Deno.env.get("CXX") ?? "g++";
  const sources: string[] = [];
  const headers: string[] = [];
  for await (const e of Deno.readDir(NATIVE)) {
    if (e.isFile && e.name.endsWith(".cpp")) sources.push(e.name);
    if (e.isFile && e.name.endsWith(".h")) headers.push(e.name);
  }
  sources.sort();
  headers.sort();
  const headerBytes = await Promise.all(headers.map((h) => Deno.readFile(`${NATIVE}/${h}`)));

  const cudaIncs = torch.cuda ? await findCudaIncludes(torch) : [];
  const cudaInc = cudaIncs.length ? cudaIncs.map((d) => `-I${d}`) : null;
  if (torch.cuda && !cudaInc) {
    say("warning: CUDA torch but no CUDA headers found; CUDA graphs, streams and memory statistics are off");
  }
  const baseFlags = [
    "-O2",
    "-fPIC",
    "-std=c++20",
    `-D_GLIBCXX_USE_CXX11_ABI=${torch.cxx11Abi}`,
    "-w",
    ...torch.includeDirs.map((d) => `-I${d}`),
  ];
  const glooInc = await findGlooInclude();
  const ncclInc = torch.cuda && cudaInc ? await findNcclInclude(torch) : null;
  if (torch.cuda && !ncclInc) say("warning: CUDA torch but no nccl.h found; the NCCL backend is not built");
  const glooFlags = glooInc
    ? ["-DUSE_C10D_GLOO", "-DLL_GLOO", ...(glooInc === "/usr/include" ? [] : [`-I${glooInc}`])]
    : [];
  const ncclFlags = ncclInc && cudaInc ? ["-DUSE_C10D_NCCL", "-DLL_NCCL", `-I${ncclInc}`, ...cudaInc] : [];
  const flagsFor = (src: string) =>
    src === "cuda.cpp" && cudaInc
      ? [...baseFlags, "-DLL_CUDA", ...cudaInc]
      : src === "dist.cpp"
      ? [...baseFlags, ...glooFlags, ...ncclFlags]
      : baseFlags;
  // Where a unit's optional CUDA part does not compile, it is built without it (a warning says what is lost)
  // rather than failing the whole build: a GPU host with an unexpected header layout still trains.
  const fallbackFor = (src: string): Unit["fallback"] =>
    src === "cuda.cpp" && cudaInc
      ? { flags: baseFlags, lost: "CUDA graphs, streams, pinned uploads and memory statistics are off" }
      : src === "dist.cpp" && ncclFlags.length
      ? { flags: [...baseFlags, ...glooFlags], lost: "the NCCL backend is not built" }
      : undefined;

  await Deno.mkdir(`${BUILD}/obj`, { recursive: true });
  const objs: Unit[] = [];
  for (const src of sources) {
    const flags = flagsFor(src);
    const h = await sha256([
      await Deno.readFile(`${NATIVE}/${src}`),
      ...headerBytes,
      flags.join(" "),
      cxx,
      torch.version,
    ]);
    const obj = `${BUILD}/obj/${src.replace(/\.cpp$/, "")}-${h.slice(0, 16)}.o`;
    objs.push({ src, obj, fresh: !(await exists(obj)), flags, fallback: fallbackFor(src) });
  }
  // a unit built earlier without its CUDA part says so again
  const degraded = new Set<string>();
  for (const o of objs) {
    if (!o.fresh && o.fallback && await exists(`${o.obj}.fallback`)) {
      degraded.add(o.src);
      say(`warning: native/${o.src} was built without its CUDA part: ${o.fallback.lost}`);
    }
  }
  const key = (await sha256([...objs.map((o) => o.obj), torch.libDir, String(torch.cuda)])).slice(0, 16);
  const lib = `${BUILD}/${key}/libllshim.so`;
  const record: BuildRecord = {
    lib,
    torch,
    key,
    cudaStats: cudaInc !== null,
    dist: { gloo: glooInc !== null, nccl: ncclFlags.length > 0 },
    video: await buildVideo(cxx),
  };
  const noteDegraded = () => {
    if (degraded.has("cuda.cpp")) record.cudaStats = false;
    if (degraded.has("dist.cpp")) record.dist.nccl = false;
  };

  if (await exists(lib)) {
    noteDegraded();
    await writeRecord(record);
    return record;
  }
  await compilerCheck(cxx);
  say(`torch ${torch.version} (${torch.source}; CXX11 ABI ${torch.cxx11Abi}${torch.cuda ? ", CUDA" : ""})`);
  const todo = objs.filter((o) => o.fresh);
  if (todo.length > 0) {
    const jobs = Math.max(1, Math.min(navigator.hardwareConcurrency ?? 2, todo.length));
    say(
      `compiling ${todo.length} of ${objs.length} shim units with ${cxx} (${jobs} at a time; ` +
        `a first build takes a few minutes)...`,
    );
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const o = todo[next++];
        const t0 = performance.now();
        const tmp = `${o.obj}.${Deno.pid}.tmp`; // concurrent builds (torchrun workers) never share a file
        let r = await run(cxx, [...o.flags, "-c", `${NATIVE}/${o.src}`, "-o", tmp]);
        if (!r.ok && o.fallback) {
          const why = r.err.split("\n").find((l) => /error/.test(l)) ?? r.err.split("\n")[0];
          say(
            `warning: native/${o.src} does not compile with its CUDA part (${why.trim()}); ${o.fallback.lost}`,
          );
          r = await run(cxx, [...o.fallback.flags, "-c", `${NATIVE}/${o.src}`, "-o", tmp]);
          if (r.ok) {
            degraded.add(o.src);
            await Deno.writeTextFile(`${o.obj}.fallback`, why);
          }
        }
        if (!r.ok) {
          throw new BuildError(
            `compiling native/${o.src} failed:\n${r.err.split("\n").slice(0, 40).join("\n")}`,
          );
        }
        await Deno.rename(tmp, o.obj);
        say(`  ${o.src} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
    };
    await Promise.all(Array.from({ length: jobs }, worker));
  }
  await Deno.mkdir(`${BUILD}/${key}`, { recursive: true });
  const libs = ["-ltorch", "-ltorch_cpu", "-lc10", ...(torch.cuda ? ["-ltorch_cuda", "-lc10_cuda"] : [])];
  const link = await run(cxx, [
    "-shared",
    "-o",
    `${lib}.${Deno.pid}.tmp`,
    ...objs.map((o) => o.obj),
    `-L${torch.libDir}`,
    `-Wl,-rpath,${torch.libDir}`,
    "-Wl,--no-as-needed",
    ...libs,
    "-Wl,--as-needed",
  ]);
  if (!link.ok) throw new BuildError(`linking the shim failed:\n${link.err.slice(0, 4000)}`);
  noteDegraded();
  await Deno.rename(`${lib}.${Deno.pid}.tmp`, lib);
  say(`built ${lib.replace(ROOT + "/", "")}`);
  await writeRecord(record);
  return record;
}

/** One translation unit of the shim: its object file, flags, and the flags to fall back to. */
interface Unit {
  src: string;
  obj: string;
  fresh: boolean;
  flags: string[];
  /** Flags without the unit's optional CUDA part, and what is lost when they are used. */
  fallback?: { flags: string[]; lost: string };
}

async function writeRecord(r: BuildRecord): Promise<void> {
  const path = `${BUILD}/current.json`;
  const text = JSON.stringify(r, null, 2) + "\n";
  let old = "";
  try {
    old = await Deno.readTextFile(path);
  } catch { /* first build */ }
  if (old !== text) {
    // atomically: concurrent builds (torchrun workers) and readers never see half a record
    await Deno.writeTextFile(`${path}.${Deno.pid}.tmp`, text);
    await Deno.rename(`${path}.${Deno.pid}.tmp`, path);
  }
}

if (import.meta.main) {
  try {
    const r = await build();
    say(`shim ready: torch ${r.torch.version}${r.torch.cuda ? " (CUDA build)" : " (CPU build)"}`);
  } catch (e) {
    if (e instanceof BuildError) {
      console.error(`[build] error: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
