"""Griffe extension for the API pages: the project's docstrings as mkdocstrings reads them.

- ``Example:`` (Keras' spelling) becomes ``Examples:``, the Google-style section whose
  ``>>>`` lines are rendered as code (under ``Example:`` they would be read as Markdown).
- Sphinx roles become links. The docstrings say ``:func:`bn_inspect.recalibrate``` (readable in ``help()`` and editors);
mkdocstrings does not know Sphinx roles. This rewrites them to optional autorefs
cross-references: a link where the API pages document that object, plain code where they do
not. Relative names such as ``:func:`diagnose``` are qualified from the documenting module.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

EXAMPLE_HEADING = re.compile(r"^(?P<indent>\s*)Example:\s*$", re.MULTILINE)
ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`~?(?P<name>[\w.]+)`")


class ProjectDocstrings(griffe.Extension):
    """Rewrite every docstring of the package, once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, pkg)

    def _rewrite(self, obj: griffe.Object, package: griffe.Module) -> None:
        if obj.docstring is not None:
            text = EXAMPLE_HEADING.sub(r"\g<indent>Examples:", obj.docstring.value)
            obj.docstring.value = ROLE.sub(lambda match: self._reference(match["name"], obj, package), text)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, package)

    @staticmethod
    def _reference(name: str, obj: griffe.Object, package: griffe.Module) -> str:
        module = obj if obj.is_module else obj.module
        for candidate in (f"{module.path}.{name}", name, f"{package.path}.{name}"):
            try:
                package.modules_collection.get_member(candidate)  # type: ignore[union-attr]
            except (KeyError, ValueError, AttributeError):
                continue
            return f'<autoref identifier="{candidate}" optional><code>{name}</code></autoref>'
        return f"`{name}`"
