"""Reads TensorBoard events with TensorBoard's own EventAccumulator and prints them as JSON, for
tests/tensorboard_test.ts to compare with the metrics.jsonl records the run wrote.

Usage: python read_tensorboard.py PATH   (an events file, or a folder of them)

Output: {"fileVersion": "...", "scalars": {tag: [[step, value], ...]}, "other": {kind: [tag, ...]}}, where
`other` holds the tags of every kind besides scalars (images, histograms, tensors, ...) that has any, and the
values are the float32 values TensorBoard stored, as Python floats (exact in JSON).
"""

import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> None:
    acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    tags = acc.Tags()
    scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in tags["scalars"]}
    other = {kind: list(v) for kind, v in tags.items() if kind != "scalars" and v}
    print(json.dumps({"fileVersion": acc.file_version, "scalars": scalars, "other": other}))


if __name__ == "__main__":
    main()
