// A layer × epoch heatmap card of one per-layer gap quantity of a /modes answer (probe gaps,
// EMA staleness, replica spread), with a picker among the quantities the run logged.

import {Heatmap} from "./heatmap.js";
import {card, el, field, label, select} from "./dom.js";

/** Cells without a value: not logged, or (with `frozenUnmeasured`) NaN in a frozen layer, which
 * has no batch statistics to measure. Other NaN and ±inf cells keep their own colour. */
function missingMask(meta, values, logged, cols, frozenUnmeasured) {
  const mask = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const frozen = meta.frozen[Math.floor(i / cols)];
    mask[i] = !logged[i] || (frozenUnmeasured && frozen && Number.isNaN(values[i])) ? 1 : 0;
  }
  return mask;
}

/**
 * The card, or null when the run logged none of `quantities`.
 * Example:
 *   gapHeatmapCard({answer, quantities: schema.probe_gaps, picked, onPick, title, caption, view: "modes-heatmap"})
 */
export function gapHeatmapCard({answer, quantities, picked, onPick, title, caption, view, frozenUnmeasured = false}) {
  const {meta, arrays} = answer;
  const logged = quantities.filter((q) => q in meta.gap_steps);
  if (!logged.length) return null;
  const quantity = logged.includes(picked) ? picked : logged[0];
  const steps = meta.gap_steps[quantity];
  const values = arrays[quantity].data;
  const rows = meta.layers.length;
  const heatmap = new Heatmap({xLabel: "epoch", yLabel: "layer", valueLabel: label(quantity), height: Math.max(180, 60 + 26 * rows)});
  const controls = logged.length > 1
    ? el("div", {class: "bn-controls"}, [
      field("Per-layer figure", select(logged.map((q) => [q, label(q)]), quantity, onPick, {dataset: {control: "gap"}})),
    ])
    : null;
  const root = card(title, caption, [controls, heatmap.root], {dataset: {view, quantity}});
  heatmap.setData({
    rows,
    cols: steps.length,
    values,
    colLabels: steps,
    rowLabels: meta.layers.map((layer, i) => (meta.frozen[i] ? `${layer} (frozen)` : layer)),
    missing: missingMask(meta, values, arrays[`${quantity}/logged`].data, steps.length, frozenUnmeasured),
    missingLabel: frozenUnmeasured ? "not measured" : "not logged",
  });
  return root;
}
