#!/usr/bin/env python3
"""What each CUDA kernel costs in registers and local memory, from ptxas.

usage: check_kernel_resources.py BUILD [--list] [--json FILE] [--jobs N]

Compiles every CUDA source of BUILD (a configured build folder: its
compile_commands.json gives each source's own nvcc command) again with
ptxas's report (nvcc --resource-usage), into a temporary folder, and reads
for every kernel (an entry function, per GPU architecture): registers per
thread, stack frame bytes, spill stores and loads, static shared memory.

A kernel with a stack frame or spills keeps values in local memory: a
store and a load through the L1 cache for what would otherwise live in a
register, often once per element in a loop (a pointer that may point at a
local, `cond ? &local : nullptr`, is enough). The check fails (exit 1),
naming each such kernel, file and reason, unless its source allows it: a
// comment line holding "lrt: stack frame allowed:" and a reason, the
kernel's __global__ line being the first one after it, at most four lines
below, in the .cu file compiled (the mark covers every instantiation of
that kernel; marks in included headers are not read).
The frame counted includes the functions a kernel calls. The result
depends on the toolkit: another CUDA version may inline differently.

  --list       every kernel, most registers first: registers, stack frame,
               spill stores/loads, shared memory, architecture, file, name
  --json FILE  the same as a JSON list
  --jobs N     sources compiled at once (default: the cores)

Prints a summary line last. Exit 2, with a one-line reason, on bad
arguments, when BUILD has no compile_commands.json or it lists no CUDA
source, when a compile cannot run or fails, when the build makes no GPU
code (CMAKE_CUDA_ARCHITECTURES naming only virtual architectures), when
ptxas's report holds no kernel this tool can read, or without c++filt.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

PROG = "check_kernel_resources.py"
ALLOW = "lrt: stack frame allowed:"


def die(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(2)


def cuda_entries(build):
    path = os.path.join(build, "compile_commands.json")
    if not os.path.isfile(path):
        die(f"no {path} (configure the build folder with CMake first)")
    try:
        with open(path) as f:
            entries = json.load(f)
    except (OSError, ValueError) as e:
        die(f"{path}: {e}")
    cu = [e for e in entries if isinstance(e, dict) and str(e.get("file", "")).endswith(".cu")]
    if not cu:
        die(f"{path} lists no CUDA source (a build without the CUDA backend?)")
    return sorted(cu, key=lambda e: e["file"])


# nvcc's options that name the output or ask for a dependency file: dropped,
# with their value where it is a separate word (the short and long forms).
WITH_VALUE = ("-o", "--output-file", "-MF", "--dependency-output", "-MT", "--dependency-target-name", "-MQ")
FLAGS = ("-MD", "-MMD", "--generate-dependencies-with-compile", "--generate-nonsystem-dependencies-with-compile",
         "-M", "-MM", "--generate-dependencies", "--generate-nonsystem-dependencies", "-MP",
         "--generate-dependency-targets")


def report_command(entry, obj):
    """The entry's nvcc command with ptxas's report, writing obj and no
    dependency file."""
    if "arguments" in entry and isinstance(entry["arguments"], list):
        args = [str(a) for a in entry["arguments"]]
    elif isinstance(entry.get("command"), str):
        try:
            args = shlex.split(entry["command"])
        except ValueError as e:
            die(f"compile_commands.json: the command for {entry['file']} cannot be read: {e}")
    else:
        die(f"compile_commands.json: the entry for {entry['file']} has no command")
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in WITH_VALUE:
            skip = True
            continue
        if a in FLAGS or a.startswith(tuple(o + "=" for o in WITH_VALUE)):
            continue
        out.append(a)
    return out + ["-o", obj, "--resource-usage"]


def compile_report(entry, tmp, index):
    cmd = report_command(entry, os.path.join(tmp, f"k{index}.o"))
    try:
        r = subprocess.run(cmd, cwd=entry.get("directory") or None, capture_output=True, text=True)
    except OSError as e:
        die(f"compiling {entry['file']}: cannot run {cmd[0]}: {e}")
    if r.returncode != 0:
        tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-5:])
        die(f"compiling {entry['file']} failed (status {r.returncode}):\n{tail}")
    return r.stdout + r.stderr


ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
PROPS = re.compile(r"Function properties for (\S+)")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")
SMEM = re.compile(r"(\d+) bytes smem")
CUMULATIVE = re.compile(r"(\d+) bytes cumulative stack size")  # with the functions it calls


def makes_sass(entry):
    """Whether the command builds code for a real GPU (sm_XX), not PTX only."""
    text = " ".join(entry["arguments"]) if isinstance(entry.get("arguments"), list) else str(entry.get("command", ""))
    return re.search(r"code=\S*sm_\d|(?:-arch|--gpu-architecture)[= ](?:sm_\d|native|all)", text) is not None


def parse(text):
    """Kernels in ptxas's report: a dict per entry function and architecture."""
    kernels, current, props = [], None, None
    for line in text.splitlines():
        m = ENTRY.search(line)
        if m:
            current = {"mangled": m.group(1), "arch": m.group(2), "registers": None, "stack": 0,
                       "spill_stores": 0, "spill_loads": 0, "smem": 0}
            kernels.append(current)
            props = None
            continue
        m = PROPS.search(line)
        if m:
            props = m.group(1)
            continue
        m = FRAME.search(line)
        if m and current is not None and props == current["mangled"]:
            current["stack"], current["spill_stores"], current["spill_loads"] = map(int, m.groups())
            continue
        m = USED.search(line)
        if m and current is not None and current["registers"] is None:
            current["registers"] = int(m.group(1))
            s = SMEM.search(line)
            current["smem"] = int(s.group(1)) if s else 0
            c = CUMULATIVE.search(line)
            if c:
                current["stack"] = max(current["stack"], int(c.group(1)))
    return [k for k in kernels if k["registers"] is not None]


def demangle(names):
    if not names:
        return []
    r = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    out = r.stdout.split("\n")
    if r.returncode != 0 or len(out) < len(names):
        die(f"c++filt failed (status {r.returncode}) on the kernels' names")
    return out[: len(names)]


def short_name(demangled):
    """Namespaces and the parameter list dropped: name<template arguments>."""
    depth, cut = 0, len(demangled)
    for i, ch in enumerate(demangled):  # the parameter list: the first '(' outside <>
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0 and not demangled.startswith("(anonymous", i):
            cut = i
            break
    name = demangled[:cut]
    name = re.sub(r"^void ", "", name)
    name = name.replace("(anonymous namespace)::", "")
    name = re.sub(r"\b[A-Za-z_]\w*::", "", name)
    return name


def base_name(name):
    m = re.match(r"[A-Za-z_]\w*", name)
    return m.group(0) if m else name


KERNEL = re.compile(r"__global__\s+(?:(?:static|inline)\s+)*(?:void\s+)?(?:__launch_bounds__\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*)?"
                    r"(?:void\s+)?([A-Za-z_]\w*)\s*\(")


def allowances(path):
    """{kernel name: reason} for the kernels a source marks: a comment line
    holding the marker, the kernel's __global__ line the first code line
    with __global__ after it, at most four lines below."""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    code = [l.split("//", 1)[0] for l in lines]  # line comments dropped
    found = {}
    for i, line in enumerate(lines):
        if ALLOW not in line or not line.lstrip().startswith("//"):
            continue
        reason = line.split(ALLOW, 1)[1].strip()
        for j in range(i + 1, min(i + 5, len(lines))):
            if "__global__" not in code[j]:
                continue
            m = KERNEL.search(" ".join(code[j : j + 3]))
            if m and reason:
                found[m.group(1)] = reason
            break
    return found


def allowed(path, name, cache):
    """The reason the kernel's source gives for its stack frame, or None."""
    if path not in cache:
        cache[path] = allowances(path)
    return cache[path].get(base_name(name))


def main():
    ap = argparse.ArgumentParser(prog=PROG, add_help=False)
    ap.add_argument("build", nargs="?")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-h", "--help", action="store_true")
    try:
        a = ap.parse_args()
    except SystemExit:
        die("bad arguments (see --help)")
    if a.help:
        print(__doc__.strip())
        return 0
    if not a.build:
        die("no build folder given (see --help)")
    if a.jobs < 1:
        die(f"--jobs {a.jobs}: give 1 or more")
    if not os.path.isdir(a.build):
        die(f"{a.build}: no such folder")
    if a.json:  # tried first (not emptied), so that a bad path is said before the compiles
        try:
            open(a.json, "a").close()
        except OSError as e:
            die(f"--json {a.json}: {e.strerror}")
    if not shutil.which("c++filt"):
        die("c++filt (binutils) not found: the kernels' names cannot be read")
    entries = cuda_entries(a.build)
    with tempfile.TemporaryDirectory() as tmp:
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
            reports = list(pool.map(lambda ie: compile_report(ie[1], tmp, ie[0]), enumerate(entries)))
    kernels = []
    for entry, text in zip(entries, reports):
        found = parse(text)
        for k, d in zip(found, demangle([k["mangled"] for k in found])):
            k["name"] = short_name(d)
            k["file"] = entry["file"]
        kernels.extend(found)
    if not kernels:
        if not any(makes_sass(e) for e in entries):
            die("no GPU code was built (CMAKE_CUDA_ARCHITECTURES names only virtual architectures): "
                "ptxas's report is made for real ones")
        die("ptxas's report holds no kernel this tool can read (has its format changed?)")

    cache, bad, excused = {}, [], []
    for k in kernels:
        if k["stack"] == 0 and k["spill_stores"] == 0 and k["spill_loads"] == 0:
            continue
        (excused if allowed(k["file"], k["name"], cache) else bad).append(k)

    def rel(p):  # relative to the repository where the file is in it
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        p = os.path.abspath(p)
        return os.path.relpath(p, repo) if p.startswith(repo + os.sep) else p

    if a.list:
        for k in sorted(kernels, key=lambda k: (-k["registers"], k["name"])):
            print(f"{k['registers']:4d} regs  stack {k['stack']:4d}  spills {k['spill_stores']}/{k['spill_loads']}"
                  f"  smem {k['smem']:6d}  {k['arch']}  {rel(k['file'])}  {k['name']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{key: k[key] for key in ("file", "name", "arch", "registers", "stack", "spill_stores",
                                                 "spill_loads", "smem")} for k in kernels], f, indent=1)
    for k in bad:
        print(f"{rel(k['file'])}: kernel {k['name']} ({k['arch']}): {k['stack']} bytes stack frame, "
              f"{k['spill_stores']} bytes spill stores, {k['spill_loads']} bytes spill loads: values kept in "
              f"local memory (see --help)")
    top = min(kernels, key=lambda k: (-k["registers"], k["name"]))  # --list's first
    files = len({k["file"] for k in kernels})
    summary = (f"{PROG}: {len(kernels)} kernels in {files} files; most registers {top['registers']} "
               f"({top['name']}); {len(bad)} with local memory")
    if excused:
        summary += f", {len(excused)} allowed ({', '.join(sorted({base_name(k['name']) for k in excused}))})"
    print(summary)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
