"""ABI baseline check (docs/abi.md): the C ABI of libdlshare may grow, never change or shrink.

usage: check_abi.py [--header H] [--library L] [--baseline B] [--cc CC] [--update]

Compares the header and the shared library against the committed baseline
(tests/abi/baseline.json) and fails when
- a function of the baseline is no longer declared or no longer exported by the library, or
  its declaration changed type (the baseline's prototype is re-declared after including the
  header and compiled: C rejects a conflicting redeclaration; parameter names do not matter);
- a struct of the baseline changed size or alignment, or one of its fields moved, changed
  size or disappeared (measured by the C compiler with sizeof/offsetof/_Alignof);
- a constant of the baseline (status and reason codes, every enum value, integer macros)
  changed value or disappeared;
- the library's SONAME is not libdlshare.so.<ABI version> (0.MINOR before 1.0, MAJOR after).
Anything new (functions, structs, constants) is allowed and listed.

Refresh the baseline after an intended, recorded break (CHANGELOG.md) or to take in additions:
    python3 tests/abi/check_abi.py --update
(defaults: include/dlshare.h, target/release/libdlshare.so, tests/abi/baseline.json, $CC or cc).
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
# Macros that change with every release, by design.
VERSION_MACROS = re.compile(r"^(DLSHARE_VERSION_|DLPACK_(MAJOR|MINOR)_VERSION$)")
OURS = re.compile(r"^(dlshare_|DLSHARE_|DL[A-Z]|kDL|Arrow[A-Z]|ARROW_)")


def run(command, **kwargs):
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs).stdout


def preprocess(cc, header):
    """The header as C sees it (the C branch of every conditional), without the export macro."""
    return run([cc, "-E", "-P", "-std=c11", "-DDLSHARE_API=", "-x", "c", str(header)])


def top_level_statements(code):
    """Statements at brace depth 0, split at ';' (struct and enum bodies stay inside)."""
    statements, depth, current = [], 0, []
    for ch in code:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == ";" and depth == 0:
            statements.append(" ".join("".join(current).split()))
            current = []
        else:
            current.append(ch)
    return statements


def field_name(decl):
    m = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", decl)  # function pointer
    if m:
        return m.group(1)
    m = re.search(r"(\w+)\s*(\[[^\]]*\]\s*)*$", decl)
    return m.group(1)


def parse(code):
    """Functions (name -> prototype), structs (C type -> field names), enum constant names."""
    functions, structs, enum_constants = {}, {}, []
    for stmt in top_level_statements(code):
        m = re.fullmatch(r"(?:typedef\s+)?struct\s*(\w*)\s*\{(.*)\}\s*(\w*)", stmt)
        if m:
            tag, body, alias = m.groups()
            ctype = alias or f"struct {tag}"
            if OURS.match(alias or tag):
                structs[ctype] = [field_name(d) for d in body.split(";") if d.strip()]
            continue
        m = re.fullmatch(r"(?:typedef\s+)?enum\s*(\w*)\s*(?::\s*\w+\s*)?\{(.*)\}\s*(\w*)", stmt)
        if m:
            for item in m.group(2).split(","):
                name = item.split("=")[0].strip()
                if name and OURS.match(name):
                    enum_constants.append(name)
            continue
        if stmt.startswith("typedef") or "{" in stmt:
            continue
        m = re.search(r"\b(dlshare_\w+)\s*\(", stmt)
        if m and stmt.endswith(")"):
            functions[m.group(1)] = stmt
    return functions, structs, enum_constants


def integer_macros(header):
    text = re.sub(r"/\*.*?\*/", " ", header.read_text(encoding="utf-8"), flags=re.S)
    names = []
    for name, value in re.findall(r"^\s*#\s*define\s+(\w+)[ \t]+([^\n]+)$", text, flags=re.M):
        if OURS.match(name) and re.fullmatch(r"[\dULul\s()<|+x]+", value.strip()):
            names.append(name)
    return names


def measure(cc, header, structs, constants, prototypes, workdir):
    """Compiles a program that includes the header, re-declares `prototypes` (compile error on a
    changed signature) and prints struct layouts and constant values."""
    lines = [f'#include "{header.name}"', "#include <stdio.h>", "#include <stddef.h>", ""]
    lines += [f"{p};" for p in prototypes]
    lines += ["", "int main(void) {"]
    for ctype, fields in structs.items():
        lines.append(f'  printf("struct\\t%s\\t%zu\\t%zu\\n", "{ctype}", sizeof({ctype}), '
                     f"(size_t)_Alignof({ctype}));")
        for f in fields:
            lines.append(f'  printf("field\\t%s\\t%s\\t%zu\\t%zu\\n", "{ctype}", "{f}", '
                         f"offsetof({ctype}, {f}), sizeof((({ctype} *)0)->{f}));")
    for name in constants:
        lines.append(f'  printf("const\\t%s\\t%lld\\n", "{name}", (long long)({name}));')
    lines += ["  return 0;", "}", ""]
    source = workdir / "abi_probe.c"
    source.write_text("\n".join(lines), encoding="utf-8")
    program = workdir / "abi_probe"
    build = subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-DDLSHARE_API=", "-I",
                            str(header.parent), str(source), "-o", str(program)],
                           capture_output=True, text=True)
    if build.returncode != 0:
        return None, build.stderr
    layout = {"structs": {}, "constants": {}}
    for line in run([str(program)]).splitlines():
        kind, *rest = line.split("\t")
        if kind == "struct":
            ctype, size, align = rest
            layout["structs"][ctype] = {"size": int(size), "align": int(align), "fields": {}}
        elif kind == "field":
            ctype, f, offset, size = rest
            layout["structs"][ctype]["fields"][f] = [int(offset), int(size)]
        else:
            layout["constants"][rest[0]] = int(rest[1])
    return layout, ""


def exported_functions(library):
    out = run(["nm", "-D", "--defined-only", str(library)])
    return {f[2].split("@")[0] for f in (line.split() for line in out.splitlines())
            if len(f) >= 3 and f[1] in "Tt"}


def soname(library):
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", run(["readelf", "-d", str(library)]))
    return m and m.group(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--header", type=pathlib.Path, default=REPO / "include" / "dlshare.h")
    ap.add_argument("--library", type=pathlib.Path,
                    default=REPO / "target" / "release" / "libdlshare.so")
    ap.add_argument("--baseline", type=pathlib.Path,
                    default=REPO / "tests" / "abi" / "baseline.json")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--update", action="store_true",
                    help="write the current ABI as the new baseline")
    args = ap.parse_args()

    functions, structs, enum_constants = parse(preprocess(args.cc, args.header))
    constants = enum_constants + integer_macros(args.header)
    stable_constants = [c for c in constants if not VERSION_MACROS.match(c)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.update:
            layout, errors = measure(args.cc, args.header, structs, stable_constants, [],
                                     pathlib.Path(tmp))
            if layout is None:
                sys.exit(f"the header does not compile:\n{errors}")
            baseline = {
                "comment": "ABI baseline of libdlshare (docs/abi.md); refresh with "
                           "python3 tests/abi/check_abi.py --update",
                "functions": dict(sorted(functions.items())),
                "structs": dict(sorted(layout["structs"].items())),
                "constants": dict(sorted(layout["constants"].items())),
            }
            args.baseline.write_text(json.dumps(baseline, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {args.baseline}: {len(functions)} functions, "
                  f"{len(layout['structs'])} structs, {len(layout['constants'])} constants")
            return

        baseline = json.loads(args.baseline.read_text(encoding="utf-8"))
        failures = []
        gone = sorted(set(baseline["functions"]) - set(functions))
        failures += [f"function {f} is no longer declared in {args.header.name}" for f in gone]
        kept = [baseline["functions"][f] for f in sorted(baseline["functions"]) if f in functions]
        gone_structs = sorted(set(baseline["structs"]) - set(structs))
        failures += [f"struct {s} is no longer defined" for s in gone_structs]
        gone_constants = sorted(set(baseline["constants"]) - set(constants))
        failures += [f"constant {c} is no longer defined" for c in gone_constants]

        layout, errors = measure(args.cc, args.header, structs, stable_constants, kept,
                                 pathlib.Path(tmp))
        if layout is None:
            failures.append("a function's type changed (the baseline's prototype conflicts "
                            "with the header's declaration):\n" + errors)
            layout, errors = measure(args.cc, args.header, structs, stable_constants, [],
                                     pathlib.Path(tmp))
            if layout is None:
                sys.exit(f"the header does not compile:\n{errors}")
        for ctype, old in baseline["structs"].items():
            new = layout["structs"].get(ctype)
            if new is None:
                continue
            for key in ("size", "align"):
                if new[key] != old[key]:
                    failures.append(f"{ctype}: {key} {old[key]} -> {new[key]}")
            for f, (offset, size) in old["fields"].items():
                if f not in new["fields"]:
                    failures.append(f"{ctype}.{f} is gone (was at offset {offset})")
                elif new["fields"][f] != [offset, size]:
                    now = new["fields"][f]
                    failures.append(f"{ctype}.{f}: offset/size {offset}/{size} -> "
                                    f"{now[0]}/{now[1]}")
        for name, value in baseline["constants"].items():
            if name in layout["constants"] and layout["constants"][name] != value:
                failures.append(f"{name}: {value} -> {layout['constants'][name]}")

        if args.library.is_file():
            exported = exported_functions(args.library)
            failures += [f"function {f} is not exported by {args.library}"
                         for f in sorted(set(baseline["functions"]) - exported)]
            major, minor = (layout_constant(args, n)
                            for n in ("DLSHARE_VERSION_MAJOR", "DLSHARE_VERSION_MINOR"))
            expected = f"libdlshare.so.{major}" if major else f"libdlshare.so.0.{minor}"
            actual = soname(args.library)
            if actual != expected:
                failures.append(f"SONAME of {args.library} is {actual}, expected {expected} "
                                "(docs/abi.md: 0.MINOR before 1.0, MAJOR after)")
        else:
            failures.append(f"{args.library} not found (build it: cargo build --release, or "
                            "pass --library)")

    added = {
        "functions": sorted(set(functions) - set(baseline["functions"])),
        "structs": sorted(set(structs) - set(baseline["structs"])),
        "constants": sorted(set(stable_constants) - set(baseline["constants"])),
    }
    for kind, names in added.items():
        if names:
            print(f"new {kind} (allowed; not in the baseline yet): {', '.join(names)}")
    if failures:
        print("ABI break against tests/abi/baseline.json:", file=sys.stderr)
        print("\n".join("  " + f for f in failures), file=sys.stderr)
        print("If intended: record it in CHANGELOG.md (a 0.x minor or a major release, "
              "docs/abi.md), then refresh: python3 tests/abi/check_abi.py --update",
              file=sys.stderr)
        sys.exit(1)
    print(f"ABI matches the baseline: {len(baseline['functions'])} functions, "
          f"{len(baseline['structs'])} structs, {len(baseline['constants'])} constants; "
          f"SONAME {soname(args.library)}")


def layout_constant(args, name):
    text = args.header.read_text(encoding="utf-8")
    m = re.search(rf"^\s*#\s*define\s+{name}\s+(\d+)", text, flags=re.M)
    if not m:
        sys.exit(f"{name} is not defined in {args.header}")
    return int(m.group(1))


if __name__ == "__main__":
    main()
