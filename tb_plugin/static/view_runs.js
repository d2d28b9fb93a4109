// View 1, "Runs & configurations": one row per run, then runs x BN layers with their config,
// grouped by aligned layer slot (whatever each run named its layer); cells that differ between
// the runs within a slot are highlighted, frozen layers and layers with non-finite moving
// statistics carry a badge.

import {frozenBadge, nonfiniteBadge, nonfiniteText} from "./badges.js";
import {card, el, formatNumber} from "./dom.js";

function initializerText(record) {
  if (!record) return "—";
  const args = Object.entries(record.config || {})
    .filter(([, value]) => value !== null)
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`);
  return `${record.class_name}(${args.join(", ")})`;
}

function epochsText(epochs) {
  if (!epochs.length) return "0";
  return `${epochs.length} (${epochs[0]}–${epochs[epochs.length - 1]})`;
}

const RUN_COLUMNS = [
  ["Run", (run) => run.run],
  ["Model", (run) => run.config?.model_name ?? "—"],
  ["Backend · Keras", (run) => (run.config ? `${run.config.backend} · ${run.config.keras_version}` : "—")],
  ["Batch size", (run) => run.config?.batch_size ?? "—"],
  ["Steps / epoch", (run) => run.config?.steps_per_epoch ?? "—"],
  ["Epochs logged", (run) => epochsText(run.epochs)],
  ["Replicas", (run) => run.config?.replicas ?? "—"],
  ["Probe samples", (run) => run.config?.probe_samples || "none"],
  ["Train/inference gap (mean |Δ| at last epoch)", (run) => formatNumber(run.output_gap?.mean_abs)],
];

// Columns of the layer table that come from the layer's config (compared across runs).
const CONFIG_COLUMNS = [
  ["Channels", (c) => c.channels],
  ["Momentum", (c) => c.momentum],
  ["Epsilon", (c) => c.epsilon],
  ["Axis", (c) => c.axis],
  ["Trainable", (c) => c.trainable],
  ["Synchronized", (c) => c.synchronized],
  ["gamma init", (c) => initializerText(c.gamma_initializer)],
  ["beta init", (c) => initializerText(c.beta_initializer)],
  ["moving mean init", (c) => initializerText(c.moving_mean_initializer)],
  ["moving variance init", (c) => initializerText(c.moving_variance_initializer)],
];

// Rows of the layer table drawn at once; the rest follow, a chunk per frame, so the table of a
// sweep (hundreds of runs x layers) shows its top, and the tab answers clicks, before it is whole.
const FIRST_ROWS = 100;
const ROWS_PER_FRAME = 200;

/** Append `rows` to `tbody`: the first `first` now, the others over the next frames. */
function appendRows(tbody, rows, first) {
  tbody.append(...rows.slice(0, first));
  let next = first;
  const more = () => {
    if (next >= rows.length) return;
    tbody.append(...rows.slice(next, next + ROWS_PER_FRAME));
    next += ROWS_PER_FRAME;
    requestAnimationFrame(more);
  };
  requestAnimationFrame(more);
}

function table(headers, rows, props) {
  return el("div", {class: "bn-table-wrap"}, [
    el("table", {class: "bn-table", ...props}, [
      el("thead", {}, [el("tr", {}, headers.map((h) => el("th", {text: h})))]),
      el("tbody", {}, rows),
    ]),
  ]);
}

// How a layer came into its slot, as the table says it.
const HOW = {path: "same path", name: "by name", position: "by position", unmatched: "unmatched"};

export function renderRuns(container, {runs, slots, focus}) {
  // A finding opened here marks its run's row and its layer's row (every layer: a run-level one).
  const focused = (run, layer = null) => Boolean(focus) && focus.run === run && (!layer || !focus.layer || focus.layer === layer);
  const runRows = runs.map((run) =>
    el("tr", {class: focused(run.run) ? "bn-focus-row" : "", dataset: {run: run.run}}, RUN_COLUMNS.map(([, value]) => el("td", {text: value(run)}))),
  );
  container.append(
    card("Runs", "One row per selected run. Epoch 0 is the state before training: the initializers.", [
      table(RUN_COLUMNS.map(([h]) => h), runRows, {dataset: {table: "runs"}}),
    ]),
  );

  const layerRows = [];
  for (const slot of slots) {
    const entries = runs
      .map((run) => ({run, layer: slot.layers[run.run]}))
      .filter(({layer}) => layer)
      .map(({run, layer}) => ({run, layer, entry: run.layers.find((l) => l.path === layer.path)}))
      .filter(({entry}) => entry);
    const texts = entries.map(({entry}) => CONFIG_COLUMNS.map(([, value]) => (entry.config ? String(value(entry.config)) : "—")));
    const differs = CONFIG_COLUMNS.map((_, k) => new Set(texts.map((t) => t[k])).size > 1);
    entries.forEach(({run, layer, entry}, i) => {
      const cells = [
        el("td", {class: "bn-layer"}, [
          layer.path,
          entry.frozen ? frozenBadge() : null,
          entry.nonfinite ? nonfiniteBadge([{run: run.run, summary: entry.nonfinite}]) : null,
        ]),
        el("td", {text: run.run}),
        el("td", {class: "bn-matched", dataset: {column: "matched"}, title: slot.why ?? slot.description, text: HOW[layer.how] ?? layer.how}),
        ...texts[i].map((text, k) => el("td", {class: differs[k] ? "bn-differs" : "", text})),
        el("td", {class: entry.nonfinite ? "bn-num bn-bad" : "bn-num", dataset: {column: "nonfinite"}, text: entry.nonfinite ? nonfiniteText(entry.nonfinite) : "0"}),
        el("td", {class: "bn-num", text: formatNumber(entry.last_residual_init_weight)}),
      ];
      const classes = [i === 0 ? "bn-group-start" : "", focused(run.run, layer.path) ? "bn-focus-row" : ""];
      layerRows.push(el("tr", {class: classes.join(" ").trim(), dataset: {run: run.run, layer: layer.path, slot: slot.name}}, cells));
    });
  }
  const headers = ["Layer", "Run", "Matched", ...CONFIG_COLUMNS.map(([h]) => h), "Non-finite channels (max)", "Initializer weight left (momentumᵗ)"];
  const layerTable = table(headers, [], {dataset: {table: "layers"}});
  const focusedRow = layerRows.findIndex((row) => row.classList.contains("bn-focus-row"));
  appendRows(layerTable.querySelector("tbody"), layerRows, Math.max(FIRST_ROWS, focusedRow + 1));
  container.append(
    card(
      "BatchNormalization layers × runs",
      "One group of rows per layer slot: the layers of the runs taken as the same layer (Matched: same path, by name " +
        "without Keras' numbering, or by position among layers of equal width). " +
        "Highlighted cells differ between the runs within a slot (e.g. default vs Constant(0.5) initializers). " +
        "Initializer weight left: the share of the moving statistics still made of the initializer after the last epoch. " +
        "Hover a badge for what it means.",
      [layerTable],
    ),
  );
  container.querySelector("table[data-table=layers] .bn-focus-row")?.scrollIntoView({block: "center"});
}
