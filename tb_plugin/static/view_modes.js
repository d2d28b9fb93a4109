// View 4, "Training vs inference": the model-output gap per run, where in the network the
// two modes diverge (layer x epoch), and probe batch vs moving statistics per channel.

import {Heatmap} from "./heatmap.js";
import {lineChart} from "./lines.js";
import {api} from "./model.js";
import {card, el, field, label, message, select} from "./dom.js";

const picks = {run: null, gap: null, step: null};

export async function renderModes(container, {runs, layer, schema, refresh, colorOf}) {
  const answers = await Promise.all(runs.map((r) => api.modes(r.run)));
  const [meanField] = schema.output_gap_fields;
  const gapSeries = answers
    .filter(({meta}) => meta.output_gap_steps.length)
    .map(({meta, arrays}) => {
      const gap = arrays.output_gap;
      return {
        label: meta.run,
        x: meta.output_gap_steps,
        y: Array.from({length: gap.shape[0]}, (_, i) => gap.data[i * gap.shape[1]]),
        color: colorOf(meta.run),
      };
    });
  if (!gapSeries.length) {
    container.append(message(
      "No probe data in the selected runs. Pass a fixed batch to the callback, e.g. " +
      "BatchNormInspector(log_dir, probe_data=x_train[:64]), to compare training and inference mode.",
    ));
    return;
  }
  const noisy = answers.filter(({meta}) => meta.probe_has_dropout).map(({meta}) => meta.run);
  const caption = noisy.length
    ? `Mean |training-mode − inference-mode output| on the fixed probe batch. Dropout/noise layers in ${noisy.join(", ")} make training-mode outputs random, so part of that gap is noise.`
    : "Mean |training-mode − inference-mode output| on the fixed probe batch. No Dropout or noise layer: the gap comes from BatchNormalization (batch vs moving statistics).";
  container.append(
    card("Model output: training vs inference mode", caption, [
      lineChart({xLabel: "epoch", yLabel: `output gap (${label(meanField)})`, series: gapSeries}),
    ], {dataset: {chart: "output-gap"}}),
  );

  const withProbe = answers.filter(({meta}) => Object.keys(meta.gap_steps).length);
  if (!withProbe.some(({meta}) => meta.run === picks.run)) picks.run = withProbe[0]?.meta.run;
  const focus = withProbe.find(({meta}) => meta.run === picks.run);
  if (!focus) return;
  const gaps = schema.gap_quantities.filter((q) => q in focus.meta.gap_steps);
  if (!gaps.includes(picks.gap)) picks.gap = gaps[0];
  const controls = el("div", {class: "bn-controls"}, [
    field("Run", select(withProbe.map(({meta}) => meta.run), picks.run, (v) => ((picks.run = v), refresh()), {dataset: {control: "run"}})),
    field("Per-layer gap", select(gaps.map((q) => [q, label(q)]), picks.gap, (v) => ((picks.gap = v), refresh()))),
  ]);
  const heatmap = new Heatmap({xLabel: "epoch", yLabel: "layer", valueLabel: label(picks.gap), height: Math.max(180, 60 + 26 * focus.meta.layers.length)});
  container.append(
    card("Where training and inference mode diverge: layer × epoch", "Mean gap: mean over channels of |probe batch mean − moving mean| / √(moving var + ε); variance log ratio: mean |log(batch var / moving var)|. Epoch 0 = initializers.", [
      controls,
      heatmap.root,
    ], {dataset: {view: "modes-heatmap"}}),
  );
  const steps = focus.meta.gap_steps[picks.gap];
  heatmap.setData({rows: focus.meta.layers.length, cols: steps.length, values: focus.arrays[picks.gap].data, colLabels: steps, rowLabels: focus.meta.layers});

  const run = runs.find((r) => r.run === picks.run);
  if (!run.layers.some((l) => l.path === layer)) {
    container.append(message(`Run “${run.run}” has no layer “${layer}”.`));
    return;
  }
  if (!run.epochs.includes(picks.step)) picks.step = run.epochs[run.epochs.length - 1];
  const {meta, arrays} = await api.layerStep(run.run, layer, picks.step);
  const channels = Array.from({length: arrays[meta.quantities[0]].data.length}, (_, c) => c);
  const pairs = Object.entries(schema.stat_pairs).map(([moving, measured]) => {
    const series = [{label: `${label(moving)} (inference)`, x: channels, y: arrays[moving]?.data ?? [], color: "#616161"}];
    measured.filter((q) => arrays[q]).forEach((q, k) => {
      series.push({label: `${label(q)} (training mode)`, x: channels, y: arrays[q].data, color: k ? "#2ca02c" : colorOf(run.run)});
    });
    return el("div", {}, [
      el("h4", {text: `${label(moving)} vs batch statistics`}),
      lineChart({xLabel: "channel", yLabel: label(moving), series, points: true}),
    ]);
  });
  container.append(
    card(`Probe batch vs moving statistics, per channel: layer “${layer}”, run “${run.run}”`,
      "What inference normalises with (moving statistics) vs what training mode uses (statistics of the probe batch). Far apart = the two modes disagree.", [
        el("div", {class: "bn-controls"}, [
          field("Epoch", select(meta.steps, picks.step, (v) => ((picks.step = Number(v)), refresh()))),
        ]),
        el("div", {class: "bn-grid"}, pairs),
      ], {dataset: {view: "modes-channels"}}),
  );
}
