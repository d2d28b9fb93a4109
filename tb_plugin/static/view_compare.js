// View 3, "Runs compared": one layer slot across the selected runs (each run's own layer of the
// slot, however it is named) — channel summaries over epochs, the initializer's remaining
// weight, and the distance between runs.

import {lineChart} from "./lines.js";
import {api} from "./model.js";
import {card, el, label, message} from "./dom.js";
import {PALETTE} from "./colors.js";

const DASHES = [undefined, [6, 4], [2, 3], [10, 3, 2, 3]];

/** The first few items of a list, then how many more. */
function shortList(items, shown = 4) {
  return items.slice(0, shown).join(", ") + (items.length > shown ? ` … and ${items.length - shown} more` : "");
}

export async function renderCompare(container, {runs, slot, layer, pathOf, schema, colorOf}) {
  if (!slot) {
    container.append(message("The selected runs have no BatchNormalization layer."));
    return;
  }
  const holding = runs.filter((r) => pathOf(r.run) !== null);
  const missing = runs.filter((r) => pathOf(r.run) === null).map((r) => r.run);
  const limit = schema.max_compared_runs;
  const shown = holding.slice(0, limit);
  const {meta, arrays} = await api.compareSlot(shown.map((r) => [r.run, pathOf(r.run)]));
  const get = (name) => arrays[name]?.data;
  if (missing.length) {
    const why = slot.how === "unmatched" && slot.why ? ` (${slot.why})` : "";
    container.append(message(`No layer of slot “${layer}” in: ${missing.join(", ")}${why}. Try another “Match” mode above.`));
  }
  if (holding.length > limit) {
    container.append(message(`Showing the first ${limit} of the ${holding.length} selected runs with this layer: narrow the selection (filter, then “Only these”).`));
  }
  const [low, high] = meta.percentiles;
  const grid = el("div", {class: "bn-grid"});
  for (const quantity of schema.variable_quantities) {
    const series = meta.runs
      .map((r, i) => ({r, i}))
      .filter(({r}) => r.quantities.includes(quantity))
      .map(({r, i}) => ({
        label: r.run,
        x: get(`${i}/${quantity}/x`),
        y: get(`${i}/${quantity}/mean`),
        low: get(`${i}/${quantity}/low`),
        high: get(`${i}/${quantity}/high`),
        color: colorOf(r.run),
      }));
    if (!series.length) continue;
    grid.append(
      card(label(quantity), `Channel mean (line) and p${low}–p${high} of the channels (band), epoch 0 = initializers.`, [
        lineChart({xLabel: "epoch", yLabel: label(quantity), series, bandLabels: [`p${high}`, `p${low}`]}),
      ], {dataset: {quantity}}),
    );
  }
  const within = meta.runs.filter((r) => r.within_epoch).map((r) => r.run);
  const renamed = meta.runs.filter((r) => r.layer !== layer).map((r) => `${r.run}: ${r.layer}`);
  container.append(
    el("p", {class: "bn-caption", dataset: {caption: "slot"}, text:
      `Layer “${layer}” in ${meta.runs.length} run(s)` +
      (slot.how === "path" ? "." : `, ${slot.description}${renamed.length ? ` (${shortList(renamed)})` : ""}.`) +
      (within.length ? ` Within-epoch points included for: ${within.join(", ")}.` : "")}),
    grid,
  );

  const residual = schema.residual_init_weight;
  const residualSeries = meta.runs
    .map((r, i) => ({r, i}))
    .filter(({i}) => get(`${i}/${residual}/x`))
    .map(({r, i}) => ({label: r.run, x: get(`${i}/${residual}/x`), y: get(`${i}/${residual}/y`), color: colorOf(r.run)}));
  const distanceSeries = [];
  let compared = 0;
  meta.runs.forEach((r, i) => {
    if (r.distance_quantities.length) compared += 1;
    r.distance_quantities.forEach((quantity) => {
      const k = schema.variable_quantities.indexOf(quantity);
      distanceSeries.push({
        label: `${label(quantity)}: ${r.run} vs ${meta.reference}`,
        x: get(`${i}/${quantity}/distance_x`),
        y: get(`${i}/${quantity}/distance`),
        color: PALETTE[(k + 4) % PALETTE.length],  // not the runs' colours
        dash: DASHES[(compared - 1) % DASHES.length],
      });
    });
  });
  container.append(
    el("div", {class: "bn-grid"}, [
      card("Initializer weight left: momentumᵗ", "After t updates the initializer still makes up momentumᵗ of the moving statistics (0.99: 37% after 100 steps).", [
        lineChart({xLabel: "epoch", yLabel: "momentumᵗ", series: residualSeries}),
      ], {dataset: {chart: "residual", quantity: residual}}),
      card(`Distance to “${meta.reference}”`, "RMS over channels of the difference between runs, per epoch and quantity.", [
        distanceSeries.length
          ? lineChart({xLabel: "epoch", yLabel: "RMS difference", series: distanceSeries})
          : message("Select two or more runs with this layer to see their distance."),
      ], {dataset: {chart: "distance"}}),
    ]),
  );
}
