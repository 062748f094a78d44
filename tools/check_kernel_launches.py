#!/usr/bin/env python3
"""Checks the CUDA sources' kernels against lrt's launch rule:

    check_kernel_launches.py [ROOT]

Every kernel is queued through kernels::cuda::launch() (kernels/cuda/
launch.cuh), which makes it a programmatic dependent launch where
lrt::dependent_launch() is on: such a kernel may be scheduled while the one
before it is still running, so it must call dependent_launch_enter() before
it touches memory. So, in every .cu and .cuh file under ROOT (default: the
repository holding this script):

  - no `<<<` launch outside kernels/cuda/launch.cuh;
  - every __global__ function's body begins with dependent_launch_enter();
    a statement before it is allowed only where its line says, in a
    trailing comment, that it touches "no memory" (a clock register read);
  - no __shared__ declaration outside kernels/cuda/launch.cuh: shared
    arrays are declared with LRT_SHARED(type, name, dims), which the
    emulated grid of the tests (tests/emulated/grid.h) gives each block
    afresh, poisoned.

Prints one line a violation (FILE:LINE: what) and exits 1 if there is any,
else prints how many kernels it checked and exits 0; 2 on bad arguments.
"""

import os
import re
import sys

LAUNCHER = os.path.join("kernels", "cuda", "launch.cuh")
ENTER = re.compile(r"^(?:[A-Za-z_][A-Za-z_0-9]*::)*dependent_launch_enter\(\);")


def sources(root):
    for dirpath, dirnames, filenames in os.walk(root):
        # Build trees, dependencies and hidden folders hold no sources of ours.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not d.startswith("build"))
        for name in sorted(filenames):
            if name.endswith((".cu", ".cuh")):
                yield os.path.join(dirpath, name)


def strip_comment(line):
    at = line.find("//")
    return line if at < 0 else line[:at]


def blank_block_comments(text):
    """text with each /* ... */ comment's characters but its newlines blanked
    (so line numbers stay)."""
    return re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)


def check_file(path, rel):
    """The file's violations, and how many kernels it defines."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = blank_block_comments(f.read())
    problems = []
    lines = text.split("\n")
    if rel != LAUNCHER:
        for no, line in enumerate(lines, 1):
            code = strip_comment(line)
            if "<<<" in code:
                problems.append(f"{rel}:{no}: a <<<>>> launch; queue kernels with launch() (kernels/cuda/launch.cuh)")
            if re.search(r"\b__shared__\b", code):
                problems.append(f"{rel}:{no}: a __shared__ declaration; declare shared arrays with "
                                "LRT_SHARED(type, name, dims) (kernels/cuda/launch.cuh)")
    kernels = 0
    for m in re.finditer(r"\b__global__\b", text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        if "//" in text[line_start:m.start()]:
            continue  # in a comment
        body = text.find("{", m.end())
        declaration = text.find(";", m.end())
        if body < 0 or 0 <= declaration < body:
            continue  # a declaration: its definition is checked where it is
        kernels += 1
        head = " ".join(text[m.start():body].split())
        # The name is the identifier before the parameter list, not an
        # attribute's (__launch_bounds__(256)) nor a template's.
        head = re.sub(r"__launch_bounds__\s*\([^()]*\)", " ", head)
        name = re.search(r"([A-Za-z_][A-Za-z_0-9]*)\s*\((?:[^()]|\([^()]*\))*\)\s*$", head)
        name = name.group(1) if name else head[:60]
        line_no = text.count("\n", 0, body) + 1
        ok = reported = False
        for offset, line in enumerate(text[body + 1:].split("\n")):
            code = strip_comment(line).strip()
            if not code:
                continue
            if ENTER.match(code):
                ok = True
                break
            if code.startswith("}"):
                break  # the body ends
            if "no memory" in line[len(strip_comment(line)):]:
                continue  # a register read, said so
            problems.append(f"{rel}:{line_no + offset}: kernel {name} does '{code[:60]}' before "
                            "dependent_launch_enter()")
            reported = True
            break
        if not ok and not reported:
            problems.append(f"{rel}:{line_no}: kernel {name} never calls dependent_launch_enter()")
    return problems, kernels


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print("usage: check_kernel_launches.py [ROOT]", file=sys.stderr)
        return 2
    root = argv[1] if len(argv) == 2 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(root):
        print(f"check_kernel_launches.py: '{root}' is not a folder", file=sys.stderr)
        return 2
    problems, kernels, files = [], 0, 0
    for path in sources(root):
        p, k = check_file(path, os.path.relpath(path, root))
        problems += p
        kernels += k
        files += 1
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"check_kernel_launches.py: {kernels} kernels in {files} files queue through launch() and enter first, "
          "shared arrays by LRT_SHARED")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
