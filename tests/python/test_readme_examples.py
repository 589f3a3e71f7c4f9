"""The README's section "Using dlshare from C, C++, CMake, pkg-config, Python and Julia" shows
only code that the tests run: each code block there is preceded by a marker
`<!-- example: examples/readme/FILE -->` and equals FILE, and every file in examples/readme/ is
shown. ctest builds and runs the C, C++, CMake and pkg-config ones (tests/cpp/CMakeLists.txt),
this file runs the Python one, bindings/julia/run_tests.sh the Julia one."""

import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "readme"
SECTION = "## Using dlshare from C, C++, CMake, pkg-config, Python and Julia"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
MARKER = re.compile(r"<!-- example: (examples/readme/[\w.]+) -->\n$")


def section_text():
    readme = (REPO / "README.md").read_text()
    assert SECTION in readme, f"README.md has no section {SECTION!r}"
    text = readme.split(SECTION, 1)[1]
    following = re.search(r"^## ", text, flags=re.M)
    return text[:following.start()] if following else text


def shown_examples():
    """(path, language, code) for every code block of the section; fails on an unmarked one."""
    text = section_text()
    blocks = []
    for fence in FENCE.finditer(text):
        marker = MARKER.search(text[:fence.start()])
        assert marker, (f"README code block ```{fence.group(1)} at offset {fence.start()} has no "
                        "'<!-- example: examples/readme/FILE -->' line before it: keep every "
                        "example in examples/readme/ so that the tests run it")
        blocks.append((marker.group(1), fence.group(1), fence.group(2)))
    return blocks


def test_every_readme_block_is_an_example_file():
    blocks = shown_examples()
    assert len(blocks) >= 6
    for path, _, code in blocks:
        file = REPO / path
        assert file.is_file(), f"README shows {path}, which does not exist"
        assert code == file.read_text(), (
            f"README's block for {path} differs from the file: edit both together")


def test_every_example_file_is_in_the_readme():
    shown = {path for path, _, _ in shown_examples()}
    files = {p.relative_to(REPO).as_posix() for p in EXAMPLES.iterdir() if p.is_file()}
    assert files == shown, f"not in the README: {sorted(files - shown)}"


def test_languages_are_labelled():
    languages = {("CMakeLists.txt" if path.endswith("CMakeLists.txt") else
                  pathlib.Path(path).suffix): lang for path, lang, _ in shown_examples()}
    assert languages == {".c": "c", ".cpp": "cpp", "CMakeLists.txt": "cmake", ".sh": "sh",
                         ".py": "python", ".jl": "julia"}


def test_python_example_runs():
    result = subprocess.run([sys.executable, str(EXAMPLES / "example.py")], capture_output=True,
                            text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "negative_stride" in result.stdout
