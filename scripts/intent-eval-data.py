#!/usr/bin/env python3
"""Writes the evaluation sets of docs/intent.md as `sentence,label` CSV files into OUT_DIR.

  clinc-train.csv / clinc-test.csv    CLINC150 (150 intents + out-of-scope): train+oos_train /
                                      test+oos_test, as published
  bitext-train.csv / bitext-test.csv  Bitext (27 customer-service intents) train / test, the
                                      test deduplicated against train (the sets overlap), with
                                      CLINC150's oos_train / oos_test as out_of_scope
  zh-train.csv / zh-test.csv          tests/intents/zh-shop-messages.csv split by a hash of the
                                      sentence (1/3 train, 2/3 test); test rows that are in
                                      Kefu's built-in examples (data/kefu_ours.tsv,
                                      data/generic_oos.txt) are left out

Usage: scripts/intent-eval-data.py SHARED_DATA_INTENTS OUT_DIR
"""
import csv
import hashlib
import json
import os
import re
import sys
import unicodedata


def key(text):
    # As kefu_intent::data::dedupe_key: normalised, digits and punctuation aside.
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"\d+", "0", t)
    return "".join(c for c in t if c.isalnum() and c != "0")


def write(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sentence", "label"])
        w.writerows(rows)
    print(f"{path}: {len(rows)} rows, {len({l for _, l in rows})} labels")


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    clinc = json.load(open(os.path.join(src, "clinc150/data/data_full.json"), encoding="utf-8"))
    lab = lambda l: "out_of_scope" if l == "oos" else l
    write(os.path.join(out, "clinc-train.csv"),
          [(t, lab(l)) for t, l in clinc["train"] + clinc["oos_train"]])
    write(os.path.join(out, "clinc-test.csv"),
          [(t, lab(l)) for t, l in clinc["test"] + clinc["oos_test"]])

    def bitext(name):
        with open(os.path.join(src, "bitext/data", name), encoding="utf-8") as f:
            return [(r["utterance"], r["intent"]) for r in csv.DictReader(f)]
    train = bitext("train.csv")
    seen = {key(t) for t, _ in train}
    test = [(t, l) for t, l in bitext("test.csv") if key(t) not in seen]
    write(os.path.join(out, "bitext-train.csv"),
          train + [(t, "out_of_scope") for t, _ in clinc["oos_train"]])
    write(os.path.join(out, "bitext-test.csv"),
          test + [(t, "out_of_scope") for t, _ in clinc["oos_test"]])

    here = os.path.dirname(os.path.abspath(__file__))
    builtin = set()
    for line in open(os.path.join(here, "../crates/kefu-intent/data/kefu_ours.tsv"), encoding="utf-8"):
        if line.strip() and not line.startswith("#") and "\t" in line:
            builtin.add(key(line.split("\t", 1)[1].strip()))
    for line in open(os.path.join(here, "../crates/kefu-intent/data/generic_oos.txt"), encoding="utf-8"):
        if line.strip():
            builtin.add(key(line.strip()))
    with open(os.path.join(here, "../tests/intents/zh-shop-messages.csv"), encoding="utf-8") as f:
        zh = [(r["sentence"], r["label"]) for r in csv.DictReader(f)]
    tr, te, dropped = [], [], 0
    for t, l in zh:
        if int(hashlib.sha256(t.encode()).hexdigest(), 16) % 3 == 0:
            tr.append((t, l))
        elif key(t) in builtin:
            dropped += 1
        else:
            te.append((t, l))
    write(os.path.join(out, "zh-train.csv"), tr)
    write(os.path.join(out, "zh-test.csv"), te)
    print(f"zh: {dropped} test rows left out (also in Kefu's built-in examples)")


if __name__ == "__main__":
    main()
