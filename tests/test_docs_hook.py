"""The docs' output hook (docs/hooks/outputs.py): outputs come from real runs, quoted figures
must appear in them. The site itself is built by ``make docs`` (mkdocs build --strict)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from mkdocs.exceptions import PluginError

HOOK = Path(__file__).resolve().parent.parent / "docs" / "hooks" / "outputs.py"


@pytest.fixture
def hook(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("docs_outputs_hook", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(module, "TRANSCRIPTS", tmp_path / "logs" / "transcripts")
    (tmp_path / "logs" / "transcripts").mkdir(parents=True)
    yield module
    module.on_post_build(None)


def _render(hook, markdown: str) -> str:
    page = SimpleNamespace(file=SimpleNamespace(src_uri="page.md"))
    return hook.on_page_markdown(markdown, page, None, None)


def test_example_output_and_quoted_figures(hook):
    (hook.TRANSCRIPTS / "demo.txt").write_text("gap 0.3625 after 32 steps (72.5%)\n")
    text = _render(hook, "<!-- example-output: demo -->\n\nThe gap is {{ 0.3625 }}, or {{72.5%}}.\n")
    assert text == "```text\ngap 0.3625 after 32 steps (72.5%)\n```\n\nThe gap is 0.3625, or 72.5%.\n"
    assert "`{{ 1 }}`" in _render(hook, "written `{{ 1 }}` in code\n")  # code is left alone


@pytest.mark.parametrize("figure", ["0.362", "0.36", "3625", "0.3626"])
def test_a_figure_not_in_the_outputs_fails_the_build(hook, figure):
    (hook.TRANSCRIPTS / "demo.txt").write_text("gap 0.3625\n")
    with pytest.raises(PluginError, match=f"'{figure}'"):
        _render(hook, f"<!-- example-output: demo -->\n\nThe gap is {{{{ {figure} }}}}.\n")


@pytest.mark.parametrize("figure", ["≈0.36", "≈0.4", "≈-0.76", "≈0.0907"])
def test_an_approximate_figure_matches_a_number_that_rounds_to_it(hook, figure):
    (hook.TRANSCRIPTS / "demo.txt").write_text("gap 0.3625, shift -0.7627, mode gap 0.0907\n")
    text = _render(hook, f"<!-- example-output: demo -->\n\nAbout {{{{ {figure} }}}}.\n")
    assert text.endswith(f"About {figure}.\n")


@pytest.mark.parametrize("figure", ["≈0.37", "≈0.363", "≈-0.77", "≈0.090"])
def test_an_approximate_figure_no_number_rounds_to_fails_the_build(hook, figure):
    (hook.TRANSCRIPTS / "demo.txt").write_text("gap 0.3625, shift -0.7627, mode gap 0.0907\n")
    with pytest.raises(PluginError, match=f"'{figure}'"):
        _render(hook, f"<!-- example-output: demo -->\n\nAbout {{{{ {figure} }}}}.\n")


def test_missing_transcript_names_the_fix(hook):
    with pytest.raises(PluginError, match="make examples"):
        _render(hook, "<!-- example-output: nothing -->\n")


def test_commands_run_for_real(hook):
    text = _render(hook, "<!-- run: bn-inspect summary empty -->\n<!-- run: bn-inspect summary logs | head -1 -->\n")
    lines = text.splitlines()
    assert lines[:2] == ["```text", "$ bn-inspect summary empty"]
    assert lines[2].startswith("bn-inspect: error: logdir 'empty' holds no event files")
    assert lines[3] == "(exit code 2)"
    assert lines[4] == "$ bn-inspect summary logs | head -1"
    assert lines[5].startswith("bn-inspect: error: logdir 'logs' holds no event files")
    assert lines[6] == "```"


@pytest.mark.parametrize(
    "code",
    [
        "bn_inspect/stats.py",
        "tests/test_cli.py::test_cli_never_imports_tensorflow_or_keras",
        "tb_plugin/static/",
        "examples/screenshots/*.png",
        "bn_inspect.stats.merge_moments",
        "bn_inspect.recalibrate(model, x_train)",
        "bn_inspect.doctor.thresholds",
        "bn_inspect/max_population_mean_gap",  # a scalar tag, not a path
        "model.fit(x, y)",
    ],
)
def test_code_that_exists_passes(hook, code):
    assert hook.code_reference_error(code) is None
    assert _render(hook, f"See `{code}`.\n") == f"See `{code}`.\n"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("bn_inspect/doctor.py", "no such file"),
        ("tests/test_cli.py::test_that_was_renamed", "has no test_that_was_renamed"),
        ("bn_inspect.stats.merge_momentz", "bn_inspect/stats.py has no merge_momentz"),
        ("bn_inspect.statz.merge_moments", "bn_inspect/__init__.py has no statz"),
    ],
)
def test_code_that_does_not_exist_fails_the_build(hook, code, reason):
    with pytest.raises(PluginError, match=re.escape(reason)):
        _render(hook, f"See `{code}`.\n\n```python\n`{code}` in a code block is not checked\n```\n")


def test_python_sessions_run_for_real(hook):
    code = "import math\n# a comment\nvalues = [math.sqrt(x) for x in (4, 9)]\nvalues  # shown\nprint('done')\n"
    text = _render(hook, f"<!-- pycon\n{code}-->\n")
    assert text.splitlines() == [
        "```pycon",
        ">>> import math",
        ">>> # a comment",
        ">>> values = [math.sqrt(x) for x in (4, 9)]",
        ">>> values  # shown",
        "[2.0, 3.0]",
        ">>> print('done')",
        "done",
        "```",
    ]
    with pytest.raises(PluginError, match="ZeroDivisionError"):
        _render(hook, "<!-- pycon\n1 / 0\n-->\n")


def test_readme_links_must_resolve(hook, tmp_path, monkeypatch):
    monkeypatch.setattr(hook, "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# x\n")
    text = "[docs](docs/index.md) [site](https://example.org/x) [top](#top) [part](docs/index.md#part)\n"
    (tmp_path / "README.md").write_text(text)
    hook.on_pre_build(None)
    (tmp_path / "README.md").write_text(text + "![tab](examples/screenshots/gone.png)\n")
    with pytest.raises(PluginError, match=r"examples/screenshots/gone\.png"):
        hook.on_pre_build(None)
