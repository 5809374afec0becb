#!/usr/bin/env python3
"""Heaptrack peak consumers per stream, each with the frames that say what it is.

  heaptrack_print -f FILE --flamegraph-cost-type peak -F stacks.txt
  python3 peaks.py stacks.txt N [frames]   # N = streams open at the peak
"""
import re
import sys
from collections import Counter

# Allocator plumbing, skipped from the leaf end of a stack.
PLUMBING = re.compile(
    r"^(_RN.*|__rust.*|__rdl.*|alloc|alloc_impl.*|allocate|allocate_in|finish_grow.*|grow.*|"
    r"realloc|malloc|calloc|try_allocate_in.*|with_capacity.*|reserve.*|do_reserve.*|"
    r"box_new_uninit|new_uninit.*|exchange_malloc|try_reserve.*|aligned_malloc|"
    r"push|push_back.*|extend.*|spec_extend.*|to_vec.*|clone.*|from_iter.*|collect.*)$")


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    groups = Counter()
    total = 0
    for line in open(path):
        stack, _, cost = line.rstrip().rpartition(" ")
        cost = int(cost)
        total += cost
        frames = [f for f in stack.split(";") if f][::-1]  # leaf first
        i = 0
        while i < len(frames) and PLUMBING.match(frames[i].split(" (")[0].rstrip("<>")):
            i += 1
        groups[" <- ".join(frames[i:i + depth])] += cost
    print(f"total at peak {total / 1024:.0f} KiB = {total / n:.0f} B per stream (N={n})")
    for key, cost in groups.most_common(60):
        if cost < n * 16:
            break
        print(f"{cost / n:7.0f} B  {key}")


main()
