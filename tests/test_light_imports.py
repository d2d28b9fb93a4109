"""The reading side (reader, writer, CLI, TensorBoard plugin) needs no deep-learning framework.

Each check runs in a fresh interpreter twice: with TensorFlow, Keras, JAX and PyTorch made
unimportable (as on a machine without them) and with nothing blocked (where TensorFlow is
installed, the reading side must still not load it: that costs seconds).
"""

import json

import numpy as np
import pytest
from import_blocker import HEAVY, check, run_python

BLOCKING = pytest.mark.parametrize("blocked", [HEAVY, ()], ids=["frameworks-blocked", "nothing-blocked"])
# The training side of bn_inspect, which runs inside model.fit and needs Keras. Every other
# module is reading side: a new module that needs Keras belongs here, with a reason.
KERAS_SIDE = {
    "batch_logging",  # within-epoch logging inside fit: the transfer and the summaries
    "callback",
    "distribution",
    "layers",
    "population",
    "probe",
    "probe_data",
    "recalibration",
    "recording_pass",
    "reference_data",
    "stateless",
    "summaries",
    "transfer",
}


@BLOCKING
def test_reading_side_imports_and_writes_and_reads_without_frameworks(tmp_path, blocked):
    out = check(
        run_python(
            f"""
        import importlib
        import json
        import pkgutil
        import numpy as np
        import bn_inspect
        from bn_inspect import load_logdir, schema, writer

        names = [m.name.removeprefix("bn_inspect.") for m in pkgutil.walk_packages(bn_inspect.__path__, "bn_inspect.")]
        modules = sorted(name for name in names if name not in {KERAS_SIDE!r})
        for name in modules:
            importlib.import_module(f"bn_inspect.{{name}}")

        w = writer.SummaryWriter({str(tmp_path)!r})
        for step in range(3):
            w.add_layer("net/bn", schema.MOVING_MEAN, np.arange(4, dtype=np.float32) * step)
            w.add_config({{"model_name": "m"}})
            w.write_step(step)
        w.close()
        run = load_logdir({str(tmp_path)!r})["."]
        series = run.layers["net/bn"][schema.MOVING_MEAN]
        print(json.dumps({{"modules": modules, "steps": series.steps.tolist(), "values": series.values.tolist(),
                           "config": run.config, "heavy": loaded({list(HEAVY)!r})}}))
    """,
            blocked=blocked,
        )
    )
    result = json.loads(out.splitlines()[-1])
    assert result["heavy"] == []
    reading_side = {
        "alignment",
        "cli",
        "comparison",
        "doctor",
        "doctor.finding",
        "events",
        "reader",
        "schema",
        "writer",
    }
    assert reading_side <= set(result["modules"])
    assert result["steps"] == [0, 1, 2]
    np.testing.assert_array_equal(result["values"], [np.arange(4) * step for step in range(3)])
    assert result["config"] == {"model_name": "m"}


@BLOCKING
def test_every_plugin_module_and_the_entry_point_import_without_frameworks(blocked):
    out = check(
        run_python(
            f"""
        import importlib
        import importlib.metadata
        import json
        import pkgutil

        import tb_plugin
        from tensorboard.plugins import base_plugin

        modules = sorted(m.name for m in pkgutil.walk_packages(tb_plugin.__path__, "tb_plugin."))
        for name in modules:
            importlib.import_module(name)
        (entry,) = [e for e in importlib.metadata.entry_points(group="tensorboard_plugins") if e.name == "bn_inspect"]
        loader = entry.load()
        print(json.dumps({{"modules": modules, "entry_point": entry.value,
                           "is_loader": issubclass(loader, base_plugin.TBLoader),
                           "heavy": loaded({list(HEAVY)!r})}}))
    """,
            blocked=blocked,
        )
    )
    result = json.loads(out.splitlines()[-1])
    assert result["heavy"] == []
    assert {"tb_plugin.loader", "tb_plugin.plugin"} <= set(result["modules"])
    assert result["entry_point"] == "tb_plugin.loader:BNInspectLoader" and result["is_loader"]


def test_blocked_packages_look_not_installed():
    out = check(
        run_python(
            """
        import importlib.util
        print(importlib.util.find_spec("tensorflow"), importlib.util.find_spec("numpy") is not None)
    """,
            blocked=HEAVY,
        )
    )
    assert out.split() == ["None", "True"]
    result = run_python("import tensorflow", blocked=HEAVY)
    assert result.returncode != 0 and "ModuleNotFoundError: No module named 'tensorflow'" in result.stderr
    result = run_python("from bn_inspect import BatchNormInspector  # the callback needs Keras", blocked=HEAVY)
    assert result.returncode != 0 and "ModuleNotFoundError: No module named 'keras'" in result.stderr


NOTEBOOK_PACKAGES = ("anywidget", "ipywidgets", "traitlets", "IPython", "ipykernel", "comm")


def test_the_core_imports_no_notebook_code_and_show_names_the_extra(tmp_path):
    """Reading, the CLI and the plugin load no notebook package; without anywidget,
    ``diagnose`` still works and ``show`` says which extra to install."""
    out = check(
        run_python(
            f"""
        import json
        import sys
        import bn_inspect
        from bn_inspect import cli, load_logdir, schema, writer
        import tb_plugin.plugin

        w = writer.SummaryWriter({str(tmp_path)!r})
        w.add_config({{"model_name": "m"}})
        w.write_step(0)
        w.close()
        load_logdir({str(tmp_path)!r})
        core = {{"packages": loaded({list(NOTEBOOK_PACKAGES)!r}),
                 "notebook_modules": [m for m in sys.modules if m.startswith("bn_inspect.notebook")]}}
        findings = bn_inspect.diagnose({str(tmp_path)!r})
        try:
            bn_inspect.show({str(tmp_path)!r})
            error = None
        except ImportError as raised:
            error = str(raised)
        print(json.dumps({{"core": core, "findings": type(findings).__name__, "error": error}}))
    """,
            blocked=("anywidget",),
        )
    )
    result = json.loads(out.splitlines()[-1])
    assert result["core"] == {"packages": [], "notebook_modules": []}
    assert result["findings"] == "Findings"
    assert 'pip install "bn-inspect[notebook]"' in result["error"]
