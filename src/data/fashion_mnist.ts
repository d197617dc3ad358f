/**
 * The Fashion-MNIST files: Debian's `dataset-fashion-mnist` package (the official gzipped IDX files under
 * `/usr/share/datasets/fashion-mnist/`, or a folder named by `LAYERLOCK_FASHION_MNIST`), installed by
 * `ensureFashionMnist` with apt-get when missing and running as root, decoded and validated (IDX magic numbers,
 * counts, 28×28 images, labels 0..9), then cached in memory once per process (or worker). Pure TypeScript.
 * @module
 */
import { aptInstall } from "./apt.ts";
import { gunzip, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, type IdxArray, parseIdx } from "./idx.ts";
import { ConfigError, DataError } from "../errors.ts";

/** Debian's package holding the Fashion-MNIST files. */
export const FASHION_MNIST_PACKAGE = "dataset-fashion-mnist";
/** Where `dataset-fashion-mnist` installs the gzipped IDX files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";
/** Fashion-MNIST class names, indexed by the `shape` label. */
export const FASHION_CLASSES: readonly string[] = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];
/** Height and width of a Fashion-MNIST image in pixels. */
export const FASHION_IMAGE_SIZE = 28;

/** Which official file: the 60000 training images or the 10000 test images. */
export type FashionFile = "train" | "test";

/** File names (in the data folder) and image counts of each official file. */
export const FASHION_MNIST_FILES: Readonly<
  Record<FashionFile, { readonly images: string; readonly labels: string; readonly count: number }>
> = {
  train: { images: "train-images-idx3-ubyte.gz", labels: "train-labels-idx1-ubyte.gz", count: 60000 },
  test: { images: "t10k-images-idx3-ubyte.gz", labels: "t10k-labels-idx1-ubyte.gz", count: 10000 },
};

const INSTALL_HINT =
  `install it with \`apt-get install ${FASHION_MNIST_PACKAGE}\` (as root; \`sudo apt-get ` +
  `install ${FASHION_MNIST_PACKAGE}\` otherwise) on Debian/Ubuntu, or put the four official gzipped IDX files ` +
  `(${Object.values(FASHION_MNIST_FILES).flatMap((f) => [f.images, f.labels]).join(", ")}) in a folder and ` +
  "name it with the environment variable `" + "LAYERLOCK_FASHION_MNIST" + "` (or pass it as `dir`)";

/** Options of `ensureFashionMnist`. */
export interface EnsureFashionMnistOptions {
  /**
   * The folder holding the four files (default: `$LAYERLOCK_FASHION_MNIST` when set, else `FASHION_MNIST_DIR`;
   * only the latter is ever installed).
   */
  dir?: string;
  /** Install Debian's package with apt-get when files are missing and we are root (default true). */
  install?: boolean;
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
}

/**
 * The folder Fashion-MNIST is read from when none is given: the environment variable `LAYERLOCK_FASHION_MNIST`
 * when it is set and not empty (e.g. a copy in your home directory on a machine without root), else
 * `FASHION_MNIST_DIR`.
 */
export function fashionMnistDir(): string {
  const v = Deno.env.get("LAYERLOCK_FASHION_MNIST");
  return v !== undefined && v !== "" ? v : FASHION_MNIST_DIR;
}

async function missingFiles(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (const f of Object.values(FASHION_MNIST_FILES).flatMap((s) => [s.images, s.labels])) {
    try {
      if (!(await Deno.stat(`${dir}/${f}`)).isFile) missing.push(f);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      missing.push(f);
    }
  }
  return missing;
}

/**
 * Makes sure the four Fashion-MNIST files are in `dir` and returns it. When some are missing from the default
 * folder and `install` is on: as root on a system with apt-get, installs Debian's `dataset-fashion-mnist` (see
 * `aptInstall`), printing what it does; otherwise throws a DataError that names the missing files and says how to
 * install them.
 */
export async function ensureFashionMnist(opts: EnsureFashionMnistOptions = {}): Promise<string> {
  const dir = opts.dir ?? fashionMnistDir(), log = opts.log ?? ((l: string) => console.log(l));
  const missing = await missingFiles(dir);
  if (missing.length === 0) return dir;
  const why = `Fashion-MNIST is needed but ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} ` +
    `missing from ${dir}`;
  if (opts.install === false || dir !== FASHION_MNIST_DIR) {
    throw new DataError("fashion-mnist", `${why}; ${INSTALL_HINT}`);
  }
  log(`layerlock: Fashion-MNIST not found under ${dir}`);
  await aptInstall(FASHION_MNIST_PACKAGE, { why, hint: INSTALL_HINT, log });
  const still = await missingFiles(dir);
  if (still.length > 0) {
    throw new DataError(
      "fashion-mnist",
      `${why}, and still misses ${still.join(", ")} after installing the package; ${INSTALL_HINT}`,
    );
  }
  return dir;
}

/** One decoded, validated file of Fashion-MNIST. */
export interface FashionMnistData {
  /** Which file. */
  split: FashionFile;
  /** Number of images (60000 train, 10000 test). */
  count: number;
  /** Pixels [count, 28, 28], uint8, 0 = black background. */
  images: Uint8Array;
  /** Class labels (indices into `FASHION_CLASSES`), one per image. */
  labels: Uint8Array;
}

async function readIdx(path: string, magic: number): Promise<IdxArray> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new DataError("fashion-mnist", `Fashion-MNIST: ${path} was not found; ${INSTALL_HINT}`);
    }
    throw new DataError("fashion-mnist", `Fashion-MNIST: cannot read ${path}: ${(e as Error).message}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await gunzip(file.readable);
  } catch (e) {
    throw new DataError(
      "fashion-mnist",
      `Fashion-MNIST: ${path} is not a valid gzip file, it is corrupt or truncated (${
        (e as Error).message
      }); ` +
        `reinstall it (\`apt-get install --reinstall ${FASHION_MNIST_PACKAGE}\`)`,
    );
  }
  return parseIdx(bytes, `Fashion-MNIST: ${path}`, magic);
}

/** Decodes and validates one split from the gzipped IDX files in `dir` (no caching). */
async function decodeSplit(split: FashionFile, dir: string): Promise<FashionMnistData> {
  const f = FASHION_MNIST_FILES[split], S = FASHION_IMAGE_SIZE;
  const imagesPath = `${dir}/${f.images}`, labelsPath = `${dir}/${f.labels}`;
  // Both files are read concurrently, but a failure is reported in a fixed order (images first), so the same
  // broken folder always gives the same message.
  const [ri, rl] = await Promise.allSettled([
    readIdx(imagesPath, IDX_IMAGES_MAGIC),
    readIdx(labelsPath, IDX_LABELS_MAGIC),
  ]);
  if (ri.status === "rejected") throw ri.reason;
  if (rl.status === "rejected") throw rl.reason;
  const img = ri.value, lab = rl.value;
  const [n, h, w] = img.dims;
  if (h !== S || w !== S) {
    throw new DataError(
      "fashion-mnist",
      `Fashion-MNIST: ${imagesPath} holds ${h}×${w} images, expected ${S}×${S}`,
    );
  }
  if (n !== f.count) {
    throw new DataError(
      "fashion-mnist",
      `Fashion-MNIST: ${imagesPath} holds ${n} images, the ${split} split has ${f.count}`,
    );
  }
  if (lab.dims[0] !== f.count) {
    throw new DataError(
      "fashion-mnist",
      `Fashion-MNIST: ${labelsPath} holds ${lab.dims[0]} labels, the ${split} split has ${f.count}`,
    );
  }
  const bad = lab.data.findIndex((l) => l >= FASHION_CLASSES.length);
  if (bad >= 0) {
    throw new DataError(
      "fashion-mnist",
      `Fashion-MNIST: ${labelsPath}: label ${lab.data[bad]} at index ${bad} is out of range 0..${
        FASHION_CLASSES.length - 1
      }`,
    );
  }
  return { split, count: n, images: img.data, labels: lab.data };
}

const cache = new Map<string, Promise<FashionMnistData>>();

/**
 * The decoded `split` of the Fashion-MNIST files in `dir` (default `fashionMnistDir()`), decoded once per
 * process (or worker) and cached; a failed decode is not cached. Does not install anything: see
 * `ensureFashionMnist`. Throws a DataError naming the file when one is missing, corrupt, truncated or invalid.
 */
export function loadFashionMnist(
  split: FashionFile = "train",
  dir = fashionMnistDir(),
): Promise<FashionMnistData> {
  if (!(split in FASHION_MNIST_FILES)) {
    throw new ConfigError("loadFashionMnist", `Fashion-MNIST: unknown split '${split}'`);
  }
  const key = `${dir}\0${split}`;
  let p = cache.get(key);
  if (p === undefined) {
    p = decodeSplit(split, dir);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}
