// Entry point of the "BN Inspect" tab: TensorBoard's iframe imports this module and calls
// render(). Holds the Findings panel, the shared run/layer picker and switches between the
// four views.

import {clearCache, api} from "./model.js";
import {el, message, select} from "./dom.js";
import {runColor} from "./colors.js";
import {frozenBadge, nonfiniteBadge} from "./badges.js";
import {findingKey, findingsPanel} from "./panel_findings.js";
import {renderRuns} from "./view_runs.js";
import {renderEpochs} from "./view_epochs.js";
import {renderCompare} from "./view_compare.js";
import {renderModes} from "./view_modes.js";

// How each view draws, by its id. The ids, their order and titles come from the plugin's schema
// summary (`schema.views`): they are the ids bn_inspect.doctor's findings point at.
const RENDERERS = {runs: renderRuns, epochs: renderEpochs, compare: renderCompare, modes: renderModes};
const MAX_DEFAULT_RUNS = 8;

// `focus`: what the finding opened last points at ({run, quantity, step}), applied once by the
// view it opens; `finding`: its key, to mark it in the panel.
const state = {overview: null, selected: new Set(), known: new Set(), layer: null, view: null, focus: null, finding: null};

function addStylesheet(path) {
  document.head.append(el("link", {rel: "stylesheet", href: new URL(path, import.meta.url).toString()}));
}

/** The tab's views in order: `{id, title, render}`. */
function views() {
  return state.overview.schema.views.map((view) => ({...view, render: RENDERERS[view.id]}));
}

function selectedRuns() {
  return state.overview.runs.filter((run) => state.selected.has(run.run));
}

/** Layer paths of the selected runs, in model order of the first run that has each. */
function layersOf(runs) {
  const paths = [];
  for (const run of runs) {
    for (const layer of run.layers) if (!paths.includes(layer.path)) paths.push(layer.path);
  }
  return paths;
}

function colorOf(runName) {
  return runColor(state.overview.runs.findIndex((run) => run.run === runName));
}

function emptyState(app) {
  return el("div", {class: "bn-empty", dataset: {state: "empty"}}, [
    el("h2", {text: "No bn-inspect data in this logdir"}),
    el("p", {text: "Add the callback to model.fit, one log directory per run, then point TensorBoard at their parent:"}),
    el("pre", {text:
      "from bn_inspect import BatchNormInspector\n\n" +
      "model.fit(x, y, epochs=10, callbacks=[\n" +
      "    BatchNormInspector(\"logs/run1\", probe_data=x[:64]),\n" +
      "])\n\n" +
      "# then: tensorboard --logdir logs"}),
    el("button", {class: "bn-reload", text: "Reload", onclick: () => load(app)}),
  ]);
}

function picker(app) {
  const runs = state.overview.runs.map((run) => {
    const box = el("input", {type: "checkbox"});
    box.checked = state.selected.has(run.run);
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(run.run);
      else state.selected.delete(run.run);
      draw(app);
    });
    return el("label", {class: "bn-run", dataset: {run: run.run}}, [
      box,
      el("span", {class: "bn-swatch", style: {background: colorOf(run.run)}}),
      el("span", {text: run.run}),
    ]);
  });
  const layers = layersOf(selectedRuns());
  if (!layers.includes(state.layer)) state.layer = layers[0] ?? null;
  const marks = new Map(layers.map((path) => [path, layerMarks(path)]));
  const options = layers.map((path) => {
    const {frozen, nonfinite} = marks.get(path);
    return [path, [path, frozen.length ? "frozen" : null, nonfinite.length ? "⚠ non-finite" : null].filter(Boolean).join("  ·  ")];
  });
  const layerSelect = select(options, state.layer, (path) => {
    state.layer = path;
    draw(app);
  }, {dataset: {picker: "layer"}});
  const current = marks.get(state.layer) ?? {frozen: [], nonfinite: []};
  return el("div", {class: "bn-picker"}, [
    el("div", {class: "bn-runs"}, [el("span", {class: "bn-picker-title", text: "Runs"}), ...runs]),
    el("label", {class: "bn-field"}, [el("span", {class: "bn-picker-title", text: "Layer"}), layerSelect]),
    el("span", {class: "bn-badges", dataset: {picker: "badges"}}, [
      current.frozen.length ? frozenBadge(current.frozen) : null,
      current.nonfinite.length ? nonfiniteBadge(current.nonfinite) : null,
    ]),
  ]);
}

/** Which selected runs have `path` frozen, and which had non-finite channels in it. */
function layerMarks(path) {
  const frozen = [];
  const nonfinite = [];
  for (const run of selectedRuns()) {
    const entry = run.layers.find((l) => l.path === path);
    if (entry?.frozen) frozen.push(run.run);
    if (entry?.nonfinite) nonfinite.push({run: run.run, summary: entry.nonfinite});
  }
  return {frozen, nonfinite};
}

function tabs(app) {
  const buttons = views().map((view) =>
    el("button", {
      class: view.id === state.view ? "bn-tab bn-active" : "bn-tab",
      dataset: {view: view.id},
      text: view.title,
      onclick: () => {
        state.view = view.id;
        draw(app);
      },
    }),
  );
  const reload = el("button", {class: "bn-reload", text: "Reload", onclick: () => load(app)});
  return el("nav", {class: "bn-tabs"}, [...buttons, reload]);
}

/** Render the current view into a fresh pane of `content`; a refresh replaces the pane, so
 * an answer arriving late only ever lands in a detached pane. */
async function drawView(content) {
  const pane = el("div", {class: "bn-pane", dataset: {status: "loading"}});
  content.replaceChildren(pane);
  const runs = selectedRuns();
  if (!runs.length) {
    pane.append(message("Select at least one run."));
    pane.dataset.status = "ready";
    return;
  }
  const view = views().find((v) => v.id === state.view);
  const started = performance.now();
  const focus = state.focus;
  state.focus = null;
  try {
    await view.render(pane, {
      runs,
      layers: layersOf(runs),
      layer: state.layer,
      schema: state.overview.schema,
      refresh: () => drawView(content),
      colorOf,
      focus,
    });
  } catch (error) {
    pane.append(message(`Could not load this view: ${error.message}`, "error"));
  }
  markFocus(pane, focus);
  pane.dataset.status = "ready";
  measureShown(view.id, started);
}

/** Record the time from starting a view to its first frame drawn (charts draw in
 * ResizeObserver callbacks, before that frame paints) as the performance measure
 * "bn-inspect:<view id>"; bench/frontend.py reads it. */
function measureShown(id, start) {
  requestAnimationFrame(() => setTimeout(() => performance.measure(`bn-inspect:${id}`, {start}), 0));
}

function draw(app) {
  app.replaceChildren();
  if (!state.overview.runs.length) {
    app.append(emptyState(app));
    return;
  }
  if (!views().some((view) => view.id === state.view)) state.view = views()[0].id;
  const content = el("main", {class: "bn-view", dataset: {view: state.view}});
  const findings = state.selected.size
    ? findingsPanel({
      runs: selectedRuns().map((run) => run.run),
      viewTitle: (id) => views().find((v) => v.id === id)?.title ?? null,
      onOpen: (finding) => openFinding(app, finding),
      active: state.finding,
    })
    : null;
  app.append(...[findings, tabs(app), picker(app), content].filter(Boolean));
  drawView(content);
}

/** Outline the chart of the quantity a finding points at, and bring it into view. */
function markFocus(pane, focus) {
  if (!focus?.quantity) return;
  const chart = pane.querySelector(`[data-quantity="${CSS.escape(focus.quantity)}"]`);
  if (!chart) return;
  chart.classList.add("bn-focused");
  chart.scrollIntoView({block: "nearest"});
}

/** Show what a finding points at: its view, with its run selected and its layer picked. */
function openFinding(app, finding) {
  if (views().some((v) => v.id === finding.view)) state.view = finding.view;
  state.selected.add(finding.run);
  if (finding.layer) state.layer = finding.layer;
  state.focus = {run: finding.run, layer: finding.layer, quantity: finding.quantity, step: finding.step};
  state.finding = findingKey(finding);
  draw(app);
}

async function load(app, onlyRuns = null) {
  clearCache();
  try {
    state.overview = await api.runs();
  } catch (error) {
    app.replaceChildren(message(`Could not load bn-inspect runs: ${error.message}`, "error"));
    return;
  }
  // Runs seen for the first time are selected, as TensorBoard does, up to MAX_DEFAULT_RUNS.
  const names = state.overview.runs.map((run) => run.run);
  if (onlyRuns) {
    state.selected = new Set(onlyRuns);
    state.known = new Set(names);
  }
  state.selected = new Set([...state.selected].filter((name) => names.includes(name)));
  for (const name of names.filter((n) => !state.known.has(n))) {
    if (state.selected.size < MAX_DEFAULT_RUNS) state.selected.add(name);
  }
  state.known = new Set(names);
  draw(app);
}

// The tab's stylesheets, relative to this module (the notebook widget adopts the same files).
export const STYLESHEETS = ["./vendor/uplot/uPlot.min.css", "./style.css"];

/**
 * Called by TensorBoard once the tab's iframe has loaded this module (no arguments), or by the
 * notebook widget (bn_inspect.notebook) with the element to draw in, which has its stylesheets
 * already, and `options`: `view` (the view to open first) and `runs` (the runs to select; the
 * others start unselected).
 */
export async function render(host = null, options = {}) {
  if (!host) STYLESHEETS.forEach(addStylesheet);
  if (options.view) state.view = options.view;  // checked against the views once they are known
  const app = el("div", {class: "bn-app"});
  (host ?? document.body).append(app);
  await load(app, options.runs);
}
