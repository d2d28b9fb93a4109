"""MkDocs hook: every output and measured number in the docs comes from a real run.

Markers in the pages' Markdown, replaced at build time:

- ``<!-- example-output: NAME -->`` (a line of its own): what ``examples/NAME.py`` printed
  when ``examples/run_all.py`` (``make examples``) last ran, read from
  ``logs/transcripts/NAME.txt``, as a text block.
- ``<!-- run: bn-inspect ARGS -->`` (one or more consecutive lines): each command run now on
  the examples' ``logs/`` (in a scratch directory holding ``logs`` and an empty ``empty/``),
  shown as ``$ command``, its standard output and error, and ``(exit code N)`` when not 0.
  A trailing ``| head -N`` keeps the first N lines.
- ``<!-- pycon`` ... ``-->`` (Python lines between): the code run now, in the same scratch
  directory, shown as an interactive session (``>>>`` lines and the repr of each expression).
- ``{{ 0.3625 }}`` in prose: a figure quoted from an output shown on the same page. The
  build fails unless that exact text appears in one of those outputs, so prose cannot drift
  from what the examples print. ``{{ ≈0.09 }}`` quotes a figure that training computes with
  float noise from one CPU to another (e.g. a loss printed to 4 decimals): some number of
  those outputs must round to it at the decimals quoted.

It also checks that README.md's links into the repository resolve, publishes
``examples/screenshots/*.png`` as ``img/*.png`` (no copies in ``docs/``),
fails the build, naming the fix, when the examples' transcripts are missing, and checks the
code the pages name in inline code: a file path (``bn_inspect/stats.py``, ``tests/x.py::name``,
``tb_plugin/static/``) must exist, and a dotted name (``bn_inspect.stats.merge_moments``) must
lead to a module that mentions its next part, so a renamed module or function fails the build.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "logs"
TRANSCRIPTS = LOGS / "transcripts"
SCREENSHOTS = ROOT / "examples" / "screenshots"

EXAMPLE_OUTPUT = re.compile(r"^<!-- example-output: (?P<name>[\w-]+) -->$", re.MULTILINE)
RUN_BLOCK = re.compile(r"^(?:<!-- run: .+ -->\n?)+", re.MULTILINE)
RUN_LINE = re.compile(r"<!-- run: (?P<command>.+?) -->")
PYCON = re.compile(r"^<!-- pycon\n(?P<code>.*?)^-->$", re.MULTILINE | re.DOTALL)
# Runs code statement by statement as the interactive interpreter does, echoing it.
SESSION = """
import ast, sys
source = sys.stdin.read()
lines = source.splitlines()
scope = {"__name__": "__main__"}
start = 0
for node in ast.parse(source).body:  # each statement with the comment lines before it
    for i, line in enumerate(line for line in lines[start : node.end_lineno] if line.strip()):
        print(("... " if i and line.startswith((" ", ")", "]", "}")) else ">>> ") + line)
    start = node.end_lineno
    if isinstance(node, ast.Expr):
        value = eval(compile(ast.Expression(node.value), "<docs>", "eval"), scope)
        if value is not None:
            print(repr(value))
    else:
        exec(compile(ast.Module([node], []), "<docs>", "exec"), scope)
"""
HEAD = re.compile(r"\s*\|\s*head -(?P<lines>\d+)$")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_PATH = re.compile(r"^(?:bn_inspect|tb_plugin|tests|examples|bench|docs)/[\w/*.-]*(?:\.\w+|/)(?:::(?P<name>\w+))?$")
DOTTED_NAME = re.compile(r"^(?P<name>(?:bn_inspect|tb_plugin)(?:\.\w+)+)")
NOT_CODE = {"bn_inspect.parquet"}  # a file name (bn-inspect export's default output)
FIGURE = re.compile(r"(?<!`)\{\{\s*(?P<figure>[^{}`]+?)\s*\}\}(?!`)")  # not in `code`


README_LINK = re.compile(r"\]\((?!https?:|#|mailto:)(?P<target>[^)#\s]+)")


def on_pre_build(config) -> None:
    """README.md's links into the repository (docs pages, pictures, files) must resolve."""
    readme = ROOT / "README.md"
    missing = [m["target"] for m in README_LINK.finditer(readme.read_text(encoding="utf-8"))]
    missing = [target for target in missing if not (ROOT / target).exists()]
    if missing:
        raise PluginError(f"README.md links to files that do not exist: {', '.join(missing)}")


def on_files(files: Files, config) -> Files:
    """Serve the examples' screenshots as ``img/NAME.png``."""
    for picture in sorted(SCREENSHOTS.glob("*.png")):
        files.append(File.generated(config, f"img/{picture.name}", abs_src_path=str(picture)))
    return files


def example_output(name: str) -> str:
    """The saved output of ``examples/NAME.py``; a build error naming the fix when missing."""
    path = TRANSCRIPTS / f"{name}.txt"
    if not path.is_file():
        raise PluginError(
            f"{path} is missing: the docs show the examples' real output. Run `make examples` "
            "(python examples/run_all.py) first, or build with `make docs`."
        )
    return path.read_text(encoding="utf-8").rstrip("\n")


def run_command(command: str, scratch: Path) -> str:
    """``$ command`` and what it printed, run in ``scratch`` with this checkout's bn_inspect."""
    head = HEAD.search(command)
    argv = shlex.split(command[: head.start()] if head else command)
    if argv[0] != "bn-inspect":
        raise PluginError(f"<!-- run: {command} -->: only bn-inspect commands can be run")
    result = subprocess.run(
        [sys.executable, "-m", "bn_inspect.cli", *argv[1:]],
        cwd=scratch,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = (result.stdout + result.stderr).rstrip("\n").split("\n")
    if head:
        lines = lines[: int(head.group("lines"))]
    text = "\n".join([f"$ {command}", *lines])
    return text + (f"\n(exit code {result.returncode})" if result.returncode and not head else "")


_scratch: list[Path] = []  # the build's scratch directory, made on first use


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "100",
    }


def run_python(code: str, scratch: Path) -> str:
    """``code`` run in ``scratch`` as an interactive session: its echo and every value shown."""
    result = subprocess.run(
        [sys.executable, "-c", SESSION],
        input=code,
        cwd=scratch,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode:
        raise PluginError(f"the Python example failed:\n{code}\n{result.stderr}")
    return result.stdout.rstrip("\n")


def _scratch_directory() -> Path:
    if not LOGS.is_dir():
        raise PluginError(f"{LOGS} is missing: run `make examples` first, or build with `make docs`.")
    if not _scratch:
        scratch = Path(tempfile.mkdtemp(prefix="bn-inspect-docs-"))
        (scratch / "logs").symlink_to(LOGS, target_is_directory=True)
        (scratch / "empty").mkdir()
        _scratch.append(scratch)
    return _scratch[0]


def on_post_build(config) -> None:
    """Remove the scratch directory the commands ran in."""
    while _scratch:
        shutil.rmtree(_scratch.pop(), ignore_errors=True)


def _fenced(text: str) -> str:
    return f"```text\n{text}\n```\n"


def code_reference_error(code: str) -> str | None:
    """Why the file path or dotted name in ``code`` does not exist; ``None`` when it does."""
    path = CODE_PATH.match(code)
    if path:
        files = sorted(ROOT.glob(code.split("::")[0].rstrip("/")))
        if not files:
            return f"`{code}`: no such file or directory"
        name = path.group("name")
        if name and not re.search(rf"\b{name}\b", files[0].read_text(encoding="utf-8")):
            return f"`{code}`: {files[0].relative_to(ROOT)} has no {name}"
        return None
    dotted = DOTTED_NAME.match(code)
    if not dotted or dotted.group("name") in NOT_CODE:
        return None
    parts = dotted.group("name").split(".")
    for end in range(len(parts), 0, -1):  # the longest prefix that is a module
        base = ROOT.joinpath(*parts[:end])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.is_file():
            if end < len(parts) and not re.search(rf"\b{parts[end]}\b", module.read_text(encoding="utf-8")):
                return f"`{code}`: {module.relative_to(ROOT)} has no {parts[end]}"
            return None
    return f"`{code}`: no such module"


APPROXIMATE = "≈"
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")


def figure_appears(quoted: str, output: str) -> bool:
    """Whether ``output`` shows the figure ``quoted``: that exact text (not inside a longer
    number), or for ``≈X`` a number that rounds to ``X`` at the decimals ``X`` is written with.

    Example:
        >>> figure_appears("0.36", "gap 0.36249"), figure_appears("≈0.36", "gap 0.36249"), figure_appears("≈0.4", "0.36")
        (False, True, True)
    """
    if not quoted.startswith(APPROXIMATE):
        return re.search(r"(?<![\w.])" + re.escape(quoted) + r"(?![\d])", output) is not None
    text = quoted[len(APPROXIMATE) :].strip()
    decimals = len(text.partition(".")[2])
    return any(round(float(number), decimals) == float(text) for number in NUMBER.findall(output))


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the output markers by real outputs, check the figures quoted in prose and the
    code named in inline code."""
    prose = FENCED.sub("", markdown)
    errors = [error for code in INLINE_CODE.findall(prose) if (error := code_reference_error(code))]
    if errors:
        raise PluginError(f"{page.file.src_uri} names code that does not exist: " + "; ".join(errors))
    outputs: list[str] = []

    def example(match: re.Match) -> str:
        outputs.append(example_output(match.group("name")))
        return _fenced(outputs[-1]).rstrip("\n")

    markdown = EXAMPLE_OUTPUT.sub(example, markdown)
    if PYCON.search(markdown):
        scratch = _scratch_directory()

        def session(match: re.Match) -> str:
            outputs.append(run_python(match.group("code"), scratch))
            return f"```pycon\n{outputs[-1]}\n```"

        markdown = PYCON.sub(session, markdown)
    if RUN_BLOCK.search(markdown):
        scratch = _scratch_directory()

        def run_block(match: re.Match) -> str:
            texts = [run_command(line.group("command"), scratch) for line in RUN_LINE.finditer(match.group(0))]
            outputs.extend(texts)
            return _fenced("\n".join(texts))

        markdown = RUN_BLOCK.sub(run_block, markdown)

    def figure(match: re.Match) -> str:
        quoted = match.group("figure")
        if not any(figure_appears(quoted, output) for output in outputs):
            raise PluginError(
                f"{page.file.src_uri}: the figure {quoted!r} quoted in the text appears in none of the "
                "outputs shown on that page: the examples now print something else; update the text."
            )
        return quoted

    return FIGURE.sub(figure, markdown)
