#!/usr/bin/env python3
"""Calls to the named functions in a callgrind output file, all callers summed (bench/callgrind.sh
counts heap allocations with it). Prints the total; -v prints each name's count too."""
import re
import sys

args = sys.argv[1:]
verbose = "-v" in args
args = [a for a in args if a != "-v"]
path, wanted = args[0], set(args[1:])
names = {}  # callgrind compresses names: "(12) malloc" once, then "(12)"
counts = {}
target = None
with open(path, errors="replace") as f:
    for line in f:
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
        if m:
            if m.group(2):
                names[m.group(1)] = m.group(2)
            target = names.get(m.group(1)) if line.startswith("cfn=") else None
        elif line.startswith("calls=") and target in wanted:
            counts[target] = counts.get(target, 0) + int(line[6:].split()[0])
            target = None
if verbose:
    for k, v in sorted(counts.items()):
        print(f"{v:>10} {k}", file=sys.stderr)
print(sum(counts.values()))
