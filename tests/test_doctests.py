"""The examples in the docstrings of bn_inspect and tb_plugin run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest

import bn_inspect
import tb_plugin


def _modules():
    for package in (bn_inspect, tb_plugin):
        yield package.__name__
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
