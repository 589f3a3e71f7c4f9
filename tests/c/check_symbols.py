"""The shared library exports exactly the functions that dlshare.h declares.

usage: check_symbols.py NM HEADER LIBRARY

Function names come from the header with its comments removed (a declaration is an identifier
starting with dlshare_ followed by '('); exported names come from `nm -D --defined-only`.
"""
import re
import subprocess
import sys


def header_functions(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # block comments
    text = re.sub(r"//[^\n]*", " ", text)  # line comments
    text = re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)  # preprocessor lines
    return set(re.findall(r"\b(dlshare_[A-Za-z0-9_]*)\s*\(", text))


def exported_symbols(nm, path):
    out = subprocess.run([nm, "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    symbols = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            symbols[fields[2].split("@")[0]] = fields[1]
    return symbols


def main():
    nm, header, library = sys.argv[1:4]
    declared = header_functions(header)
    exported = exported_symbols(nm, library)
    failures = []
    if not declared:
        failures.append(f"no dlshare_* function declarations found in {header}")
    missing = sorted(declared - exported.keys())
    extra = sorted(exported.keys() - declared)
    not_code = sorted(n for n in declared & exported.keys() if exported[n] not in "Tt")
    if missing:
        failures.append("declared in the header but not exported: " + ", ".join(missing))
    if extra:
        failures.append("exported but not declared in the header: " + ", ".join(extra))
    if not_code:
        failures.append("exported, but not as functions: " + ", ".join(not_code))
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    print(f"{len(declared)} functions declared in {header.rsplit('/', 1)[-1]}, "
          f"the same {len(exported)} symbols exported by {library.rsplit('/', 1)[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
