// View 4, "Training vs inference": per run, the model-output gap, EMA staleness and replica
// spread over epochs; for one run, where in the network the modes diverge (layer × epoch: probe
// gaps next to EMA staleness), per-channel statistics at an epoch, and its replicas.

import {pairCharts} from "./channel_pairs.js";
import {gapHeatmapCard} from "./gap_heatmap.js";
import {lineChart} from "./lines.js";
import {api} from "./model.js";
import {card, el, field, label, message, select} from "./dom.js";
import {replicasCard} from "./panel_replicas.js";
import {stalenessChannelsCard, stalenessHeatmapCard} from "./panel_staleness.js";

const picks = {run: null, gap: null, stalenessGap: null, step: null, populationStep: null, replicaStep: null};

/** Series of one per-run curve: the plain scalar `tag`, or column 0 of the output gap. */
function runCurves(answers, colorOf, tag = null) {
  return answers
    .filter(({meta}) => (tag ? tag in meta.scalar_steps : meta.output_gap_steps.length))
    .map(({meta, arrays}) => {
      if (tag) return {label: meta.run, x: meta.scalar_steps[tag], y: arrays[tag].data, color: colorOf(meta.run)};
      const gap = arrays.output_gap;
      return {
        label: meta.run,
        x: meta.output_gap_steps,
        y: Array.from({length: gap.shape[0]}, (_, i) => gap.data[i * gap.shape[1]]),
        color: colorOf(meta.run),
      };
    });
}

/** Run-level curves over epochs: output gap, and max staleness / replica spread where logged. */
function runCharts(answers, schema, colorOf) {
  const [meanField] = schema.output_gap_fields;
  const noisy = answers.filter(({meta}) => meta.probe_has_dropout).map(({meta}) => meta.run);
  const caption = noisy.length
    ? `Mean |training-mode − inference-mode output| on the fixed probe batch. Dropout/noise layers in ${noisy.join(", ")} make training-mode outputs random, so part of that gap is noise.`
    : "Mean |training-mode − inference-mode output| on the fixed probe batch. No Dropout or noise layer: the gap comes from BatchNormalization (batch vs moving statistics).";
  const charts = [
    card("Model output: training vs inference mode", caption, [
      lineChart({xLabel: "epoch", yLabel: `output gap (${label(meanField)})`, series: runCurves(answers, colorOf)}),
    ], {dataset: {chart: "output-gap"}}),
  ];
  const staleness = runCurves(answers, colorOf, schema.staleness_scalar);
  if (staleness.length) {
    charts.push(card("EMA staleness: worst layer", "Largest population mean gap over the layers: how far the moving means are from the reference data's, in standard deviations.", [
      lineChart({xLabel: "epoch", yLabel: "max population mean gap", series: staleness}),
    ], {dataset: {chart: "max-staleness"}}));
  }
  const replicas = runCurves(answers, colorOf, schema.replica_scalar);
  if (replicas.length) {
    charts.push(card("Replica spread: worst layer", "Largest replica mean-spread gap over the layers: how far apart the replicas' batch means are, in batch standard deviations.", [
      lineChart({xLabel: "epoch", yLabel: "max replica mean spread", series: replicas}),
    ], {dataset: {chart: "max-replica-spread"}}));
  }
  return charts.length > 1 ? el("div", {class: "bn-grid bn-grid-auto"}, charts) : charts[0];
}

/** Picks a finding points at: its run, and its quantity and epoch where this view shows them. */
function applyFocus(focus, schema) {
  if (!focus) return;
  picks.run = focus.run;
  if (schema.probe_gaps.includes(focus.quantity)) picks.gap = focus.quantity;
  if (schema.staleness_gaps.includes(focus.quantity)) picks.stalenessGap = focus.quantity;
  if (focus.step !== null && focus.step !== undefined) picks.step = picks.populationStep = picks.replicaStep = focus.step;
}

export async function renderModes(container, {runs, layer: slotName, pathOf, schema, refresh, colorOf, focus}) {
  applyFocus(focus, schema);
  const answers = await Promise.all(runs.map((r) => api.modes(r.run)));
  const withData = answers.filter(({meta}) => meta.output_gap_steps.length || Object.keys(meta.gap_steps).length);
  if (!withData.length) {
    container.append(message(
      "No probe data in the selected runs. Pass a fixed batch to the callback, e.g. " +
      "BatchNormInspector(log_dir, probe_data=x_train[:64]), to compare training and inference mode.",
    ));
    return;
  }
  container.append(runCharts(withData, schema, colorOf));

  if (!withData.some(({meta}) => meta.run === picks.run)) picks.run = withData[0].meta.run;
  const focusAnswer = withData.find(({meta}) => meta.run === picks.run);
  container.append(el("div", {class: "bn-controls bn-focus"}, [
    field("Run", select(withData.map(({meta}) => meta.run), picks.run, (v) => ((picks.run = v), refresh()), {dataset: {control: "run"}})),
    el("span", {class: "bn-caption", text: "The charts below show this run, and the layer picked above."}),
  ]));
  const probe = gapHeatmapCard({
    answer: focusAnswer,
    quantities: schema.probe_gaps,
    picked: picks.gap,
    onPick: (value) => ((picks.gap = value), refresh()),
    title: "Probe: where training and inference mode diverge, layer × epoch",
    caption: "Mean over channels of |probe batch mean − moving mean| / √(moving var + ε); variance log ratio: mean |log(batch var / moving var)|. Epoch 0 = initializers.",
    view: "modes-heatmap",
    frozenUnmeasured: true,
  }) ?? card("Probe: layer × epoch", null, [message(`Run “${picks.run}” logged no probe.`)], {dataset: {view: "modes-heatmap"}});
  container.append(el("div", {class: "bn-grid"}, [probe, stalenessHeatmapCard(focusAnswer, schema, picks, refresh)]));

  const run = runs.find((r) => r.run === picks.run);
  const layer = pathOf(run.run);  // this run's layer of the picked slot
  const entry = run.layers.find((l) => l.path === layer);
  if (!entry) {
    container.append(message(`Run “${run.run}” has no layer in slot “${slotName}”.`));
    return;
  }
  if (!run.epochs.includes(picks.step)) picks.step = run.epochs[run.epochs.length - 1];
  const answer = await api.layerStep(run.run, layer, picks.step);
  const title = `Probe batch vs moving statistics, per channel: layer “${layer}”, run “${run.run}”`;
  if (entry.frozen) {
    container.append(card(title, null, [message(
      `Layer “${layer}” is frozen in run “${run.run}” (inference mode in training): it normalises with its moving ` +
      "statistics in both modes, so it has no batch statistics to compare.",
    )], {dataset: {view: "modes-channels"}}));
  } else if (Object.values(schema.stat_pairs).some((q) => answer.arrays[q])) {
    container.append(
      card(title, "What inference normalises with (moving statistics) vs what training mode uses (statistics of the probe batch). Far apart = the two modes disagree.", [
        el("div", {class: "bn-controls"}, [
          field("Epoch", select(answer.meta.steps, picks.step, (v) => ((picks.step = Number(v)), refresh()), {dataset: {control: "step"}})),
        ]),
        pairCharts(answer.arrays, schema.stat_pairs, "training mode", colorOf(run.run)),
      ], {dataset: {view: "modes-channels"}}),
    );
  }
  const population = await stalenessChannelsCard({run: run.run, layer, schema, picks, refresh, answer, color: colorOf(run.run)});
  const replicas = await replicasCard({answer: focusAnswer, run: run.run, layer, schema, picks, refresh, channelAnswer: answer});
  container.append(...[population, replicas].filter(Boolean));
}
