#!/usr/bin/env python3
"""Extracts every decimal the recorded exchange sessions carry, exactly as written.

Reads the raw frames in shared/exchanges/samples/*.jsonl and writes, one per line, each distinct
non-negative decimal token: JSON strings holding a decimal ("97123.45") and JSON number tokens
with a fraction or exponent (Crypto.com v2 sends 45.330). Negative values (24 h changes) are not
prices and are left out. The regex works on the raw text because json.loads would re-format
number tokens (45.330 -> 45.33).

usage: extract-price-corpus.py SAMPLES_DIR > price-corpus.txt
"""
import pathlib
import re
import sys

STRING = re.compile(r'"(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"')
NUMBER = re.compile(r'(?<=[:\[,])\s*(\d+(?:\.\d+(?:[eE][-+]?\d+)?|[eE][-+]?\d+))(?=[,\]}\s])')

def main() -> None:
    found: dict[str, str] = {}
    for path in sorted(pathlib.Path(sys.argv[1]).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            for token in STRING.findall(line) + NUMBER.findall(line):
                found.setdefault(token, path.stem)
    for token, venue in sorted(found.items(), key=lambda kv: (kv[1], kv[0])):
        print(f"{venue} {token}")

if __name__ == "__main__":
    main()
