"""Which BatchNormalization layers of different runs are the same layer: one alignment for the
reader API, the CLI and the TensorBoard tab. Pure Python: no Keras, no TensorFlow.

Runs of one architecture rarely share layer paths: models built one after another in one
process get ``batch_normalization``, ``batch_normalization_1``, ... inside ``sequential``,
``sequential_1``, ... So layers are matched by three rules, in this order, each one only
among the layers the previous ones left:

1. ``path``: the identical path;
2. ``name``: the path with Keras' automatic numbering removed from every part
   (``sequential_3/batch_normalization_7`` ~ ``sequential/batch_normalization``), for the
   layers whose stripped path is unique within their run;
3. ``position``: the k-th BN layer with c channels of one run ~ the k-th with c channels of
   another (one architecture built twice, whatever the names).

A layer no rule matches stays alone in its slot, marked ``unmatched`` with the reason.
``match="path"`` uses rule 1 only, ``match="position"`` rule 3 only.

Example:
    >>> alignment = align_layers({
    ...     "init_default": [("sequential/batch_normalization", 32)],
    ...     "init_custom": [("sequential_1/batch_normalization_1", 32)],
    ... })
    >>> slot = alignment.slots[0]
    >>> slot.name, slot.how, slot.path("init_custom")
    ('sequential/batch_normalization', 'name', 'sequential_1/batch_normalization_1')
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bn_inspect.run_config import RunConfig

PATH, NAME, POSITION, UNMATCHED = "path", "name", "position", "unmatched"
RULES = (PATH, NAME, POSITION)  # strongest first
MATCH_MODES = {"auto": RULES, "path": (PATH,), "position": (POSITION,)}
DESCRIPTIONS = {
    PATH: "same path",
    NAME: "matched by name (numbering removed)",
    POSITION: "matched by position",
    UNMATCHED: "unmatched",
}
_NUMBERING = re.compile(r"_\d+$")

LayerList = Sequence[tuple[str, int | None]]  # (path, channels) of a run's BN layers, model order


def strip_numbering(path: str) -> str:
    """``path`` without Keras' automatic ``_<n>`` suffix on each of its parts.

    Example:
        >>> strip_numbering("sequential_3/batch_normalization_7")
        'sequential/batch_normalization'
    """
    return "/".join(_NUMBERING.sub("", part) for part in path.split("/"))


@dataclass(frozen=True)
class AlignedLayer:
    """One run's layer in a slot, and the rule that put it there."""

    run: str
    path: str
    channels: int | None
    how: str  # PATH, NAME, POSITION or UNMATCHED


@dataclass(eq=False)
class Slot:
    """Layers of different runs taken as the same layer.

    ``how`` is the weakest rule among its layers (``unmatched``: one run only, with ``why``).
    """

    name: str
    layers: dict[str, AlignedLayer] = field(default_factory=dict)  # by run name
    why: str | None = None

    @property
    def how(self) -> str:
        if len(self.layers) < 2:
            return UNMATCHED if self.why else PATH
        return max((layer.how for layer in self.layers.values()), key=RULES.index)

    @property
    def runs(self) -> list[str]:
        return list(self.layers)

    def path(self, run: str) -> str | None:
        """The path of ``run``'s layer in this slot (``None``: the run has none)."""
        layer = self.layers.get(run)
        return None if layer is None else layer.path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: name, how, description, why and per run its path and rule."""
        return {
            "name": self.name,
            "how": self.how,
            "description": DESCRIPTIONS[self.how],
            "why": self.why,
            "layers": {run: {"path": x.path, "channels": x.channels, "how": x.how} for run, x in self.layers.items()},
        }


@dataclass
class Alignment:
    """The slots of a set of runs, in model order of the first run that has each."""

    runs: list[str]
    match: str
    slots: list[Slot]

    def slot(self, name: str) -> Slot:
        """The slot called ``name``; ``KeyError`` listing the slots when there is none."""
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise KeyError(f"no slot {name!r}; slots: {', '.join(s.name for s in self.slots)}")

    @property
    def matched(self) -> list[Slot]:
        """Slots holding layers of two or more runs."""
        return [slot for slot in self.slots if len(slot.layers) > 1]

    @property
    def unmatched(self) -> list[Slot]:
        """Slots of one run's layer that no rule matched to another run's."""
        return [slot for slot in self.slots if slot.how == UNMATCHED]

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "match": self.match, "slots": [slot.to_dict() for slot in self.slots]}


def _keys(layers: LayerList, rule: str) -> list[Hashable | None]:
    """Each layer's key under ``rule``; ``None`` when the rule cannot place it."""
    if rule == PATH:
        return [path for path, _ in layers]
    if rule == NAME:
        stripped = [strip_numbering(path) for path, _ in layers]
        count = Counter(stripped)
        return [name if count[name] == 1 else None for name in stripped]
    seen: Counter = Counter()
    keys: list[Hashable | None] = []
    for _, channels in layers:
        if channels is None:
            keys.append(None)
            continue
        keys.append((channels, seen[channels]))
        seen[channels] += 1
    return keys


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _why(path: str, channels: int | None, keys: dict[str, Hashable | None], rules: Sequence[str]) -> str:
    """Why no rule in ``rules`` matched the layer whose key under each rule is ``keys[rule]``."""
    reasons = []
    for rule in rules:
        key = keys[rule]
        if rule == PATH:
            reasons.append(f"no other run has path '{path}'")
        elif rule == NAME:
            stripped = strip_numbering(path)
            if key is None:
                reasons.append(f"'{stripped}' (numbering removed) names several layers of this run")
            else:
                reasons.append(f"no other layer left is '{stripped}' with numbering removed")
        elif key is None:
            reasons.append("its channel count is unknown")
        else:
            reasons.append(f"no other run has a {_ordinal(key[1] + 1)} {channels}-channel BN layer left")
    return "; ".join(reasons)


def align_layers(layers_by_run: Mapping[str, LayerList], match: str = "auto") -> Alignment:
    """Align the BN layers of runs, each given as ``[(path, channels), ...]`` in model order.

    ``match``: ``"auto"`` (path, then name without numbering, then position), ``"path"``
    (identical paths only) or ``"position"`` (order among layers of equal channel count only).

    Example:
        >>> a = align_layers({"a": [("bn", 8), ("head/bn", 4)], "b": [("x", 8), ("head/bn", 4), ("extra", 2)]})
        >>> [(s.name, s.how, s.runs) for s in a.slots]
        [('bn', 'position', ['a', 'b']), ('head/bn', 'path', ['a', 'b']), ('extra', 'unmatched', ['b'])]
        >>> a.slots[2].why
        "no other run has path 'extra'; no other layer left is 'extra' with numbering removed; no other run has a 1st 2-channel BN layer left"
    """
    if match not in MATCH_MODES:
        raise ValueError(f"match must be one of {', '.join(MATCH_MODES)}; got {match!r}")
    rules = MATCH_MODES[match]
    runs = list(layers_by_run)
    keys = {run: {rule: _keys(layers_by_run[run], rule) for rule in RULES} for run in runs}
    left = {run: list(range(len(layers_by_run[run]))) for run in runs}  # layer indices not yet placed
    placed: dict[tuple[str, int], Slot] = {}
    slots: list[Slot] = []

    def layer(run: str, i: int, how: str) -> AlignedLayer:
        path, channels = layers_by_run[run][i]
        return AlignedLayer(run, path, channels, how)

    for rule in rules:
        # A slot takes part under this rule when all its layers share one key under it.
        anchors: dict[Hashable, Slot] = {}
        for slot in slots:
            slot_keys = {keys[run][rule][_index(layers_by_run[run], x.path)] for run, x in slot.layers.items()}
            if len(slot_keys) == 1 and None not in slot_keys:
                anchors[slot_keys.pop()] = slot
        groups: dict[Hashable, list[tuple[str, int]]] = {}
        for run in runs:
            for i in left[run]:
                key = keys[run][rule][i]
                if key is not None:
                    groups.setdefault(key, []).append((run, i))
        for key, members in groups.items():
            slot = anchors.get(key)
            if slot is None and len(members) < 2 and len(runs) > 1:
                continue  # alone: a later rule may still match it
            if slot is None:
                slot = Slot(name=_slot_name(layers_by_run, members))
                slots.append(slot)
            for run, i in members:
                if run not in slot.layers:
                    slot.layers[run] = layer(run, i, rule)
                    placed[(run, i)] = slot
                    left[run].remove(i)
    for run in runs:
        for i in left[run]:
            path, channels = layers_by_run[run][i]
            why = _why(path, channels, {rule: keys[run][rule][i] for rule in RULES}, rules)
            slot = Slot(name=path, layers={run: layer(run, i, UNMATCHED)}, why=why)
            slots.append(slot)
            placed[(run, i)] = slot
    return Alignment(runs=runs, match=match, slots=_in_model_order(slots, runs, layers_by_run, placed))


def _index(layers: LayerList, path: str) -> int:
    return next(i for i, (p, _) in enumerate(layers) if p == path)


def _slot_name(layers_by_run: Mapping[str, LayerList], members: list[tuple[str, int]]) -> str:
    """The shared path, else the shared path without numbering, else the first run's path."""
    paths = [layers_by_run[run][i][0] for run, i in members]
    if len(set(paths)) == 1:
        return paths[0]
    stripped = {strip_numbering(path) for path in paths}
    return stripped.pop() if len(stripped) == 1 else paths[0]


def _in_model_order(
    slots: list[Slot], runs: list[str], layers_by_run: Mapping[str, LayerList], placed: dict[tuple[str, int], Slot]
) -> list[Slot]:
    """Slots ordered by the first run's model order; a slot of a later run only comes right
    after the slot of its predecessor in that run (at the end when it has none); slot names made
    unique (``name (2)``)."""
    ordered: list[Slot] = []
    for run in runs:
        previous = -1
        for i in range(len(layers_by_run[run])):
            slot = placed[(run, i)]
            if slot in ordered:
                previous = ordered.index(slot)
            elif previous < 0:  # before any slot this run shares: after all slots so far
                ordered.append(slot)
                previous = len(ordered) - 1
            else:
                previous += 1
                ordered.insert(previous, slot)
    seen: Counter = Counter()
    for slot in ordered:
        seen[slot.name] += 1
        if seen[slot.name] > 1:
            slot.name = f"{slot.name} ({seen[slot.name]})"
    return ordered


def run_layers(run: Any) -> list[tuple[str, int | None]]:
    """``[(path, channels), ...]`` of a :class:`~bn_inspect.reader.RunData`, in model order:
    the layers of its configuration record, then any others it logged."""
    config = run.run_config or RunConfig()
    return [(path, config.layer(path).channels) for path in run.layer_paths]


def align(runs: Mapping[str, Any] | Sequence[Any], match: str = "auto") -> Alignment:
    """Align the BN layers of loaded runs (:func:`bn_inspect.load_logdir`'s values).

    Example:
        >>> from bn_inspect.reader import RunData
        >>> def run(name, *paths):
        ...     return RunData(name, config={"layers": [{"path": p, "channels": 16} for p in paths]})
        >>> alignment = align([run("default", "sequential/batch_normalization"),
        ...                    run("custom", "sequential_1/batch_normalization_1", "sequential_1/batch_normalization_2")])
        >>> [(s.name, s.how, s.path("custom")) for s in alignment.slots]
        [('sequential/batch_normalization', 'position', 'sequential_1/batch_normalization_1'), ('sequential_1/batch_normalization_2', 'unmatched', 'sequential_1/batch_normalization_2')]
        >>> from bn_inspect import load_logdir
        >>> alignment = align(load_logdir("logs/initializers"))  # doctest: +SKIP
    """
    values = list(runs.values()) if isinstance(runs, Mapping) else list(runs)
    return align_layers({run.name: run_layers(run) for run in values}, match)
