// View 2, "Epochs": one run and layer over its epochs — channel x epoch heatmap, per-epoch
// drift, and a per-channel comparison of two epochs.

import {Heatmap} from "./heatmap.js";
import {lineChart} from "./lines.js";
import {api} from "./model.js";
import {card, el, field, label, message, select} from "./dom.js";

const picks = {run: null, quantity: null, timeline: null, epochA: null, epochB: null, stepsOf: null};

function transpose(values, steps, channels) {
  const out = new Float32Array(values.length);
  for (let s = 0; s < steps; s++) {
    for (let c = 0; c < channels; c++) out[c * steps + s] = values[s * channels + c];
  }
  return out;
}

function column(values, channels, step) {
  return values.subarray(step * channels, (step + 1) * channels);
}

/** Picks a finding points at: its run, its quantity and, as epoch B, its epoch. */
function applyFocus(focus, schema) {
  if (!focus) return;
  picks.run = focus.run;
  if (focus.quantity) picks.quantity = focus.quantity;
  picks.timeline = schema.timelines.epoch;
  if (focus.step !== null && focus.step !== undefined) [picks.epochB, picks.stepsOf] = [focus.step, schema.timelines.epoch];
}

export async function renderEpochs(container, {runs, layer: slotName, pathOf, schema, refresh, colorOf, focus}) {
  applyFocus(focus, schema);
  if (!runs.some((r) => r.run === picks.run)) picks.run = runs[0].run;
  const run = runs.find((r) => r.run === picks.run);
  const layer = pathOf(run.run);  // this run's layer of the picked slot
  const entry = run.layers.find((l) => l.path === layer);
  const runPicker = field("Run", select(runs.map((r) => r.run), picks.run, (v) => ((picks.run = v), refresh()), {dataset: {control: "run"}}));
  if (!entry) {
    container.append(el("div", {class: "bn-controls"}, [runPicker]), message(`Run “${run.run}” has no layer in slot “${slotName}”.`));
    return;
  }
  const quantities = schema.channel_quantities.filter((q) => entry.quantities.includes(q));
  if (!quantities.includes(picks.quantity)) picks.quantity = quantities[0];
  const { epoch: EPOCH, batch: BATCH } = schema.timelines;
  const canBatch = entry.batch_quantities.includes(picks.quantity) && Boolean(run.config?.steps_per_epoch);
  const timeline = canBatch && picks.timeline === BATCH ? BATCH : EPOCH;
  const controls = el("div", {class: "bn-controls"}, [
    runPicker,
    field("Quantity", select(quantities.map((q) => [q, label(q)]), picks.quantity, (v) => ((picks.quantity = v), refresh()), {dataset: {control: "quantity"}})),
    canBatch
      ? field("Steps", select([[EPOCH, "epoch ends"], [BATCH, "within epochs"]], timeline, (v) => ((picks.timeline = v), refresh()), {dataset: {control: "timeline"}}))
      : null,
  ]);
  container.append(controls);

  const {meta, arrays} = await api.series(run.run, layer, picks.quantity, timeline);
  const steps = meta.steps.length;
  const channels = meta.channels;
  const values = arrays.values.data;
  const epochs = Array.from(arrays.epochs?.data ?? meta.steps);
  const what = label(picks.quantity);
  const xLabel = timeline === BATCH ? "epoch (within-epoch points)" : "epoch";

  const heatmap = new Heatmap({xLabel, yLabel: "channel", valueLabel: what, height: Math.min(520, Math.max(260, channels * 6))});
  container.append(
    card(
      `${what} — channels × epochs`,
      (timeline === BATCH
        ? "Logged every few batches (x = fraction of epochs done). Hover a cell for channel, epoch and value."
        : "Step 0 is the state before training (the initializers); step k the state after epoch k. Hover a cell for its value.") +
        (entry.frozen ? " This layer is frozen in this run (inference mode in training): it has no batch statistics (NaN)." : ""),
      [heatmap.root],
      {dataset: {view: "epochs-heatmap"}},
    ),
  );
  heatmap.setData({rows: channels, cols: steps, values: transpose(values, steps, channels), colLabels: epochs});

  const drift = arrays.drift.data;
  container.append(
    card(
      `Drift of ${what}`,
      "RMS over channels of the change since the previous logged step: how far the statistics still move. " +
        "It falls as training settles and the initializer's weight momentumᵗ fades.",
      [lineChart({xLabel, yLabel: `Δ ${what} (RMS)`, series: [{label: run.run, x: epochs.slice(1), y: drift.slice(1), color: colorOf(run.run)}]})],
    ),
  );

  const stepIndex = new Map(meta.steps.map((s, i) => [s, i]));
  if (picks.stepsOf !== timeline || !stepIndex.has(picks.epochA)) picks.epochA = meta.steps[0];
  if (picks.stepsOf !== timeline || !stepIndex.has(picks.epochB)) picks.epochB = meta.steps[steps - 1];
  picks.stepsOf = timeline;
  const stepOptions = meta.steps.map((s, i) => [s, timeline === BATCH ? `${epochs[i].toFixed(2)} (step ${s})` : String(s)]);
  const channelAxis = Array.from({length: channels}, (_, c) => c);
  const a = column(values, channels, stepIndex.get(picks.epochA));
  const b = column(values, channels, stepIndex.get(picks.epochB));
  const pickers = el("div", {class: "bn-controls"}, [
    field("Epoch A", select(stepOptions, picks.epochA, (v) => ((picks.epochA = Number(v)), refresh()))),
    field("Epoch B", select(stepOptions, picks.epochB, (v) => ((picks.epochB = Number(v)), refresh()))),
  ]);
  container.append(
    card(
      "Epoch A vs epoch B, per channel",
      `${what} of every channel at two epochs (A = 0 shows the initializers).`,
      [pickers, lineChart({
        xLabel: "channel",
        yLabel: what,
        points: true,
        series: [
          {label: `epoch ${picks.epochA}`, x: channelAxis, y: a, color: "#9e9e9e"},
          {label: `epoch ${picks.epochB}`, x: channelAxis, y: b, color: colorOf(run.run)},
        ],
      })],
    ),
  );
}
