// Per-channel point charts of one layer at one epoch: each moving statistic (what inference
// normalises with) next to the same statistic measured on data (probe batch, reference data).

import {lineChart} from "./lines.js";
import {el, label} from "./dom.js";

const MOVING_COLOR = "#616161";

/**
 * One chart per `pairs` entry ({moving: measured}) present in `arrays` (a /layer_step answer).
 * Example:
 *   pairCharts(arrays, schema.population_pairs, "reference data", "#2ca02c")
 */
export function pairCharts(arrays, pairs, measuredLabel, color) {
  const charts = Object.entries(pairs)
    .filter(([moving, measured]) => arrays[moving] && arrays[measured])
    .map(([moving, measured]) => {
      const channels = Array.from({length: arrays[moving].data.length}, (_, c) => c);
      const series = [
        {label: `${label(moving)} (inference)`, x: channels, y: arrays[moving].data, color: MOVING_COLOR},
        {label: `${label(measured)} (${measuredLabel})`, x: channels, y: arrays[measured].data, color},
      ];
      return el("div", {}, [
        el("h4", {text: `${label(moving)} vs ${label(measured)}`}),
        lineChart({xLabel: "channel", yLabel: label(moving), series, points: true}),
      ]);
    });
  return el("div", {class: "bn-grid"}, charts);
}

/** One chart per statistic of `spreads` ({stat: [quantity, ...]}): every quantity per channel. */
export function spreadCharts(arrays, spreads, colors) {
  const charts = Object.entries(spreads).map(([stat, quantities]) => {
    const present = quantities.filter((q) => arrays[q]);
    if (!present.length) return null;
    const channels = Array.from({length: arrays[present[0]].data.length}, (_, c) => c);
    const series = present.map((q, k) => ({label: label(q), x: channels, y: arrays[q].data, color: colors[k % colors.length]}));
    return el("div", {}, [
      el("h4", {text: `${stat}: max − min across replicas`}),
      lineChart({xLabel: "channel", yLabel: `${stat} spread`, series, points: true}),
    ]);
  });
  return el("div", {class: "bn-grid"}, charts);
}
