// EMA staleness, in the "Training vs inference" view: how far each layer's moving statistics
// are from the exact population statistics of the reference data (BatchNormInspector's
// reference_data): per layer over epochs, and per channel at one epoch.

import {pairCharts} from "./channel_pairs.js";
import {gapHeatmapCard} from "./gap_heatmap.js";
import {api} from "./model.js";
import {card, el, field, message, select} from "./dom.js";

/** Layer × epoch card of the population gaps of the focus run, or a card saying how to get them. */
export function stalenessHeatmapCard(answer, schema, picks, refresh) {
  const heatmap = gapHeatmapCard({
    answer,
    quantities: schema.staleness_gaps,
    picked: picks.stalenessGap,
    onPick: (value) => ((picks.stalenessGap = value), refresh()),
    title: "EMA staleness: layer × epoch",
    caption: "Moving statistics vs the exact population statistics of the reference data, in the units of the probe gaps " +
      "(0 = inference normalises the data exactly; bn_inspect.recalibrate installs them).",
    view: "modes-staleness",
  });
  return heatmap ?? card("EMA staleness: layer × epoch", null, [message(
    `Run “${answer.meta.run}” logged no population statistics. Pass BatchNormInspector(..., reference_data=x_train[:2048]) ` +
    "to see how stale the moving statistics are.",
  )], {dataset: {view: "modes-staleness"}});
}

/** Per-channel moving vs population statistics of `layer` (points in `color`) at an epoch picked
 * among those with population statistics; null when the layer has none. `answer` is a
 * /layer_step answer of the same run and layer (any step), reused when it is the picked step. */
export async function stalenessChannelsCard({run, layer, schema, picks, refresh, answer, color}) {
  const [populationMean] = Object.values(schema.population_pairs);
  const steps = answer.meta.quantity_steps[populationMean] ?? [];
  if (!steps.length) return null;
  if (!steps.includes(picks.populationStep)) picks.populationStep = steps[steps.length - 1];
  const {arrays} = picks.populationStep === answer.meta.step ? answer : await api.layerStep(run, layer, picks.populationStep);
  return card(`Moving vs population statistics, per channel: layer “${layer}”, run “${run}”`,
    "What inference normalises with (moving statistics) vs what it should (exact statistics of the layer's input over the reference data).", [
      el("div", {class: "bn-controls"}, [
        field("Epoch", select(steps, picks.populationStep, (v) => ((picks.populationStep = Number(v)), refresh()), {dataset: {control: "population-step"}})),
      ]),
      pairCharts(arrays, schema.population_pairs, "reference data", color),
    ], {dataset: {view: "modes-population-channels"}});
}
