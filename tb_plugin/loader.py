"""TensorBoard's entry point for the BN Inspect tab (``tensorboard_plugins`` entry point).

Example:
    >>> import argparse
    >>> flags = argparse.Namespace(samples_per_plugin={"images": 5})
    >>> BNInspectLoader().fix_flags(flags)
    >>> flags.samples_per_plugin
    {'images': 5, 'bn_inspect': 0}
"""

from __future__ import annotations

import argparse

from tensorboard.plugins import base_plugin

from bn_inspect import schema

# TensorBoard keeps only 10 (Python loader) or 100 (Rust data server) samples per tag of an
# unknown plugin; 0 keeps every one, so no epoch is dropped.
KEEP_ALL_SAMPLES = 0


def _samples_per_plugin(value: dict | str | None) -> dict[str, int]:
    """``--samples_per_plugin`` as a dict; it is a string ``"a=1,b=2"`` when it was passed to
    ``TensorBoard.configure`` instead of the command line."""
    if isinstance(value, str):
        pairs = (item.split("=", 1) for item in value.split(",") if item.strip())
        return {name.strip(): int(count) for name, count in pairs}
    return dict(value or {})


class BNInspectLoader(base_plugin.TBLoader):
    """Loads the BN Inspect plugin and keeps all of its samples, unless the user set
    ``--samples_per_plugin bn_inspect=N`` explicitly."""

    def fix_flags(self, flags: argparse.Namespace) -> None:
        samples = _samples_per_plugin(getattr(flags, "samples_per_plugin", None))
        samples.setdefault(schema.PLUGIN_NAME, KEEP_ALL_SAMPLES)
        flags.samples_per_plugin = samples

    def load(self, context: base_plugin.TBContext) -> base_plugin.TBPlugin:
        from tb_plugin.plugin import BNInspectPlugin

        return BNInspectPlugin(context)
