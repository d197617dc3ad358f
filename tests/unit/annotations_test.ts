// Annotation lists (src/data/annotations.ts): the three separators, quoting, comments, roots, class folders,
// label ids (integers kept, names sorted, a training mapping reused), and the errors, each naming its line.
import assert from "node:assert/strict";
import {
  annotationsFromFolders,
  checkFilesExist,
  labelMap,
  parseAnnotations,
} from "../../src/data/annotations.ts";
import { DataError } from "../../src/errors.ts";
import { tempDir } from "../helpers.ts";

const parse = (text: string) => parseAnnotations(text, { source: "list.txt", root: "/data" });

Deno.test("annotations: comma, tab and space separated lines, quoting, comments, relative and absolute paths", () => {
  const got = parse([
    "# a comment, then a blank line",
    "",
    "a/one.mp4,3",
    "two.mp4\tcat",
    "three.mp4 7",
    '"with, comma.mp4",dog',
    '"with ""quote"".mp4",1',
    '"with space.mp4" 12',
    "/abs/four.webm",
    "  five.mkv ,  2  ",
  ].join("\n"));
  assert.deepEqual(got.map((a) => [a.path, a.label]), [
    ["/data/a/one.mp4", "3"],
    ["/data/two.mp4", "cat"],
    ["/data/three.mp4", "7"],
    ["/data/with, comma.mp4", "dog"],
    ['/data/with "quote".mp4', "1"],
    ["/data/with space.mp4", "12"],
    ["/abs/four.webm", null],
    ["/data/five.mkv", "2"],
  ]);
  assert.equal(got[0].where, "list.txt:3");
});

Deno.test("annotations: malformed lines are errors naming file and line", () => {
  const bad = (text: string, re: RegExp) =>
    assert.throws(() => parse(text), (e) => e instanceof DataError && re.test(e.message));
  bad("ok.mp4,1\na.mp4,1,extra", /^list\.txt:2: expected 'path' or 'path,label', got 3 fields/);
  bad('"open.mp4,1', /^list\.txt:1: unterminated quoted field/);
  bad('"a.mp4"x,1', /^list\.txt:1: text after a closing quote/);
  bad('"open.mp4 1', /^list\.txt:1: unterminated quoted path/);
  bad("a b c", /got 3 fields/);
});

Deno.test("annotations: label ids — integers kept, names sorted, the training mapping reused, unknowns named", () => {
  assert.deepEqual(labelMap(parse("a.mp4 10\nb.mp4 2\nc.mp4 10")), { "10": 10, "2": 2 });
  const train = labelMap(parse("a.mp4,walk\nb.mp4,run\nc.mp4,jump"));
  assert.deepEqual(train, { jump: 0, run: 1, walk: 2 });
  assert.deepEqual(labelMap(parse("x.mp4,run"), train), train);
  assert.throws(
    () => labelMap(parse("x.mp4,run\ny.mp4,swim"), train),
    (e) => e instanceof DataError && /list\.txt:2: label 'swim' is not one of the 3 classes/.test(e.message),
  );
  assert.throws(
    () => labelMap(parse("a.mp4,run\nb.mp4")),
    /list\.txt:2: no label, while other lines have one/,
  );
  assert.deepEqual(labelMap(parse("a.mp4\nb.mp4")), {});
});

Deno.test("annotations: class-per-subfolder, and missing files listed with their lines", async () => {
  const dir = await tempDir("annotations_");
  try {
    for (
      const [c, f] of [["walk", "a.mp4"], ["run", "b.MP4"], ["run", "deep/c.webm"], ["run", "notes.txt"]]
    ) {
      await Deno.mkdir(`${dir}/${c}/${f.includes("/") ? f.split("/")[0] : ""}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${c}/${f}`, "x");
    }
    const got = annotationsFromFolders(dir, [".mp4", ".webm"]);
    assert.deepEqual(got.map((a) => [a.path.slice(dir.length + 1), a.label]), [
      ["run/b.MP4", "run"],
      ["run/deep/c.webm", "run"],
      ["walk/a.mp4", "walk"],
    ]);
    checkFilesExist(got);
    const listed = parseAnnotations("walk/a.mp4,walk\nwalk/gone.mp4,walk\n", {
      source: "val.csv",
      root: dir,
    });
    assert.throws(
      () => checkFilesExist(listed),
      (e) =>
        e instanceof DataError &&
        /1 listed file\(s\) do not exist: .*walk\/gone\.mp4 \(val\.csv:2\)/.test(e.message),
    );
    assert.throws(() => annotationsFromFolders(`${dir}/nope`, [".mp4"]), /cannot read the video folder/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
