"""Every repository path the docs or the code's comments cite exists.

Docs went stale by citing files that moved or never were in the repository (code comments
cited a design document it does not hold). Checked: Markdown links, and every path that starts at a
top-level folder of the repository (`src/fraud/core/params.py`, `metrics/<model>.json`,
`models/{baseline,weighted}.onnx`: braces expand, `<name>` and `*` match anything) in the
README, CONTRIBUTING.md, docs/, bench/*.md and plots/template/README.md, and in the comments
and docstrings of the Python files. A path exists when git knows the file (tracked, or new
and not ignored) or `dvc.lock` names it as a stage's output.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import itertools
import re
import subprocess
import tokenize
from pathlib import Path, PurePosixPath

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "CONTRIBUTING.md", "docs/*.md", "bench/*.md", "plots/template/README.md"]
CODE_FOLDERS = ["src", "tests", "bench", "tools"]
TOP_FOLDERS = ["src", "tests", "bench", "tools", "docs", "metrics", "plots", "reports", "models",
               "data", ".dvc", ".ci"]
# Written by a command on demand, never committed: citing them is right.
WRITTEN_ON_DEMAND = {
    "bench/results/": "python -m bench.run (git-ignored)",
    "reports/seeds/": "python -m src.compare_seeds",
    ".dvc/tmp": "DVC's scratch folder",
}
_TOP = "|".join(re.escape(folder) for folder in TOP_FOLDERS)
PATH = re.compile(r"(?<![\w./{}<>*$@-])((?:" + _TOP + r")/[\w./{},*<>=@-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"python -m ((?:src|bench|tools)(?:\.\w+)+)")  # the project's commands
# A document named without its folder (NOTES.md); capitalised, as this repository names its
# documents, so that output names in comments (latest.md) are not taken for citations.
BARE_MARKDOWN = re.compile(r"(?<![\w./-])([A-Z][\w-]*\.md)\b")


def expand(pattern: str) -> list[str]:
    """`a/{b,c}.{x,y}` -> the four paths; `<model>` and `{format}` (a placeholder) become `*`."""
    pattern = re.sub(r"<[^>/]+>|\{[^{},/]*\}", "*", pattern)
    parts = re.split(r"(\{[^{}]*\})", pattern)
    choices = [part[1:-1].split(",") if part.startswith("{") else [part] for part in parts]
    return ["".join(combo) for combo in itertools.product(*choices)]


def cited_in_text(text: str) -> set[str]:
    """Paths from the repository root that `text` names (trailing punctuation dropped)."""
    text = re.sub(r"https?://\S+|\S*\\\.\S*", "", text)  # URLs; regexes (`evaluate\.json`)
    return {match.rstrip(".,:;") for match in PATH.findall(text)} - {""}


def modules_run(text: str) -> set[str]:
    """`python -m src.summary` -> `src/summary.py`: a command names a file too."""
    return {module.replace(".", "/") + ".py" for module in MODULE.findall(text)}


def links_in_markdown(text: str, folder: PurePosixPath) -> set[str]:
    """Relative link targets, as paths from the repository root."""
    found = set()
    for target in LINK.findall(text):
        target = target.split("#", 1)[0]
        if target and "://" not in target and not target.startswith("mailto:"):
            joined = PurePosixPath(folder, target).as_posix()
            parts: list[str] = []
            for part in joined.split("/"):
                if part == "..":
                    parts = parts[:-1]
                elif part not in ("", "."):
                    parts.append(part)
            found.add("/".join(parts) + ("/" if target.endswith("/") else ""))
    return found


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces to
    hyphens (`## Share results: a DVC remote` -> `share-results-a-dvc-remote`)."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", re.sub(r"```.*?```", "", markdown, flags=re.S),
                          flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def anchored_links(text: str, folder: PurePosixPath) -> set[tuple[str, str]]:
    """(file from the repository root, anchor) of each Markdown link to a heading."""
    found = set()
    for target in LINK.findall(text):
        if "#" in target and "://" not in target:
            path, anchor = target.split("#", 1)
            file = links_in_markdown(f"]({path})", folder).pop() if path else None
            found.add((file or "", anchor))
    return found


def comments_and_docstrings(source: str) -> str:
    """The prose of a Python file: its comments and docstrings, not its string values."""
    comments = [token.string for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT]
    docs = [ast.get_docstring(node) or "" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef |
                          ast.AsyncFunctionDef)]
    return "\n".join(comments + docs)


def known_paths(root: Path = ROOT) -> set[str]:
    """Files git knows (tracked, or untracked and not ignored), DVC outputs, their folders."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=root, check=True, capture_output=True, text=True).stdout
    files = set(listed.splitlines())
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    outs = [out for stage in lock["stages"].values() for out in stage.get("outs", [])]
    files |= {out["path"] for out in outs}
    # A folder output (`data/split`) holds files dvc.lock does not list one by one.
    files |= {out["path"].rstrip("/") + "/**" for out in outs if "nfiles" in out
              or str(out.get("md5", "")).endswith(".dir")}
    folders = {parent.as_posix() + "/" for path in files
               for parent in PurePosixPath(path).parents if parent.as_posix() != "."}
    return files | folders | {folder.rstrip("/") for folder in folders}


def _known(pattern: str, known: set[str]) -> bool:
    """`pattern` names a known path, matches one (globs), or lies in a folder output."""
    if pattern in known or any(ch in pattern for ch in "*?[") and fnmatch.filter(known, pattern):
        return True
    return any(pattern.startswith(entry[:-2]) for entry in known if entry.endswith("/**"))


def missing(cited: set[str], known: set[str]) -> list[str]:
    """The cited paths that match nothing known and are not written on demand. A one-letter
    file name (`src/fraud/x.py`) is a placeholder in an example, not a citation."""
    absent = []
    for citation in sorted(cited):
        if any(citation.startswith(prefix) for prefix in WRITTEN_ON_DEMAND) or \
                re.fullmatch(r"[a-z]", PurePosixPath(citation).stem):
            continue
        if not all(_known(pattern, known) for pattern in expand(citation)):
            absent.append(citation)
    return absent


def doc_files(root: Path = ROOT) -> list[Path]:
    return sorted({path for pattern in DOCS for path in root.glob(pattern)})


def python_files(root: Path = ROOT) -> list[Path]:
    return sorted(path for folder in CODE_FOLDERS for path in (root / folder).rglob("*.py"))


@pytest.fixture(scope="module")
def known() -> set[str]:
    return known_paths()


def test_docs_cite_existing_paths(known: set[str]) -> None:
    absent = {}
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        folder = PurePosixPath(path.parent.relative_to(ROOT).as_posix())
        cited = cited_in_text(text) | links_in_markdown(text, folder) | modules_run(text)
        if gone := missing(cited, known):
            absent[str(path.relative_to(ROOT))] = gone
    assert not absent, f"cited but not in the repository: {absent}"


def test_links_to_headings_exist() -> None:
    broken = []
    for path in doc_files():
        relative = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        for file, anchor in anchored_links(text, PurePosixPath(relative).parent):
            target = ROOT / (file or relative)
            if target.suffix == ".md" and target.exists() and \
                    anchor not in heading_anchors(target.read_text(encoding="utf-8")):
                broken.append(f"{relative}: {file or relative}#{anchor}")
    assert not broken, f"links to headings that do not exist: {broken}"


def test_code_comments_cite_existing_paths(known: set[str]) -> None:
    markdown_names = {PurePosixPath(path).name for path in known if path.endswith(".md")}
    absent = {}
    for path in python_files():
        prose = comments_and_docstrings(path.read_text(encoding="utf-8"))
        gone = missing(cited_in_text(prose), known)
        gone += sorted(set(BARE_MARKDOWN.findall(prose)) - markdown_names)
        if gone:
            absent[str(path.relative_to(ROOT))] = gone
    assert not absent, f"cited in comments but not in the repository: {absent}"


def test_the_docs_are_read(known: set[str]) -> None:
    """The checks see citations at all: a pattern change that finds nothing must fail."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert {"docs/results.md", "CONTRIBUTING.md"} <= links_in_markdown(readme, PurePosixPath("."))
    assert "src/stages/" in cited_in_text(readme)
    assert {"README.md", "docs/", "metrics/evaluate.json", "models/fraud_detector.onnx"} <= known


# The checks themselves, on text made to fail them.

def test_citations_are_found_and_expanded() -> None:
    text = ("See `src/fraud/model.py`, [notes](../bench/NOTES.md#speed), "
            "`models/{a,b}.{onnx,keras}` and metrics/<model>.json. Not "
            "https://example.org/src/x.py, not {project}/data/x.npy, not /tmp/src/y.")
    assert cited_in_text(text) == {"src/fraud/model.py", "models/{a,b}.{onnx,keras}",
                                   "metrics/<model>.json"}
    assert links_in_markdown(text, PurePosixPath("docs")) == {"bench/NOTES.md"}
    assert modules_run("`python -m src.summary`; python -m pytest; python -m bench.run") == {
        "src/summary.py", "bench/run.py"}
    assert expand("models/{a,b}.{onnx,keras}") == [
        "models/a.onnx", "models/a.keras", "models/b.onnx", "models/b.keras"]


def test_missing_paths_are_reported() -> None:
    known = {"src/", "src/fraud/core/params.py", "metrics/gbdt.json", "metrics/", "data/split/**"}
    cited = {"src/fraud/core/params.py", "src/fraud/model.py", "metrics/<model>.json",
             "metrics/{gbdt,logreg}.json", "bench/results/latest.md", "src/", "src/fraud/x.py",
             "data/split/{train,val}.parquet", "data/splits/train.parquet"}
    assert missing(cited, known) == ["data/splits/train.parquet", "metrics/{gbdt,logreg}.json",
                                     "src/fraud/model.py"]


def test_heading_anchors_are_githubs() -> None:
    text = "# Top\n## Share results: a DVC remote\n```\n# not a heading\n```\n### `dvc exp show`\n"
    assert heading_anchors(text) == {"top", "share-results-a-dvc-remote", "dvc-exp-show"}
    assert anchored_links("[a](ops.md#x) [b](#top) [c](https://e.org/#y)", PurePosixPath("docs")) \
        == {("docs/ops.md", "x"), ("", "top")}


def test_comments_and_docstrings_not_strings() -> None:
    source = ('"""Module: see GONE.md."""\nPATH = "src/not_a_citation.py"\n'
              "def f():\n    '''Uses docs/x.md.'''\n    # and tools/y.py\n")
    prose = comments_and_docstrings(source)
    assert cited_in_text(prose) == {"docs/x.md", "tools/y.py"}
    assert BARE_MARKDOWN.findall(prose) == ["GONE.md"]
