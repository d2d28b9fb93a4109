// Entry point of the "BN Inspect" tab: TensorBoard's iframe imports this module and calls
// render(). Holds the Findings panel, the shared run/layer picker and switches between the
// four views. The layer picker lists slots: the layers of the selected runs that are the same
// layer (the plugin's alignment route, bn_inspect.alignment), each with how it was matched.

import {clearCache, api} from "./model.js";
import {el, message, select} from "./dom.js";
import {runColor} from "./colors.js";
import {frozenBadge, nonfiniteBadge} from "./badges.js";
import {findingKey, findingsPanel} from "./panel_findings.js";
import {runPicker} from "./run_picker.js";
import {followTheme} from "./theme.js";
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
// `layer`: the picked slot's name; `pendingLayer`: a run's layer path to pick once the alignment
// is known ({run, path}); `match`: the alignment's mode; `filter`: the run filter's pattern.
const state = {
  overview: null, selected: new Set(), known: new Set(), layer: null, view: null, focus: null, finding: null,
  alignment: null, pendingLayer: null, match: "auto", filter: "",
};
const MATCH_LABELS = {auto: "auto (path, name, position)", path: "identical path only", position: "position only"};

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

/** The slots of the current alignment (empty while there is none). */
function slots() {
  return state.alignment?.slots ?? [];
}

function currentSlot() {
  return slots().find((slot) => slot.name === state.layer) ?? null;
}

/** How a slot was matched, as the picker says it ("" for identical paths). */
function matchText(slot) {
  const runs = Object.keys(slot.layers);
  if (slot.how === "unmatched") return state.selected.size > 1 ? `only in ${runs[0]}` : "";
  return slot.how === "path" ? "" : `matched by ${slot.how}`;
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
  const runs = runPicker({
    runs: state.overview.runs.map((run) => run.run),
    selected: state.selected,
    filter: state.filter,
    colorOf,
    onFilter: (text) => (state.filter = text),
    onSelect: (names, checked, only = false) => {
      if (only) state.selected = new Set(names);
      else for (const name of names) checked ? state.selected.add(name) : state.selected.delete(name);
      draw(app);
    },
  });
  const marks = new Map(slots().map((slot) => [slot.name, layerMarks(slot)]));
  const options = slots().map((slot) => {
    const {frozen, nonfinite} = marks.get(slot.name);
    const parts = [slot.name, matchText(slot), frozen.length ? "frozen" : null, nonfinite.length ? "⚠ non-finite" : null];
    return [slot.name, parts.filter(Boolean).join("  ·  ")];
  });
  const layerSelect = select(options, state.layer, (name) => {
    state.layer = name;
    draw(app);
  }, {dataset: {picker: "layer"}});
  const matchSelect = select(Object.entries(MATCH_LABELS), state.match, (mode) => {
    state.match = mode;
    draw(app);
  }, {dataset: {picker: "match"}, title: "How layers of different runs are matched (bn_inspect.align)"});
  const slot = currentSlot();
  const current = marks.get(state.layer) ?? {frozen: [], nonfinite: []};
  return el("div", {class: "bn-picker"}, [
    runs,
    el("div", {class: "bn-controls"}, [
      el("label", {class: "bn-field"}, [el("span", {class: "bn-picker-title", text: "Layer"}), layerSelect]),
      el("label", {class: "bn-field"}, [el("span", {class: "bn-picker-title", text: "Match"}), matchSelect]),
      slot ? slotNote(slot) : null,
      el("span", {class: "bn-badges", dataset: {picker: "badges"}}, [
        current.frozen.length ? frozenBadge(current.frozen) : null,
        current.nonfinite.length ? nonfiniteBadge(current.nonfinite) : null,
      ]),
    ]),
  ]);
}

/** How the picked slot was matched, with every run's path on hover. */
function slotNote(slot) {
  const paths = Object.entries(slot.layers).map(([run, layer]) => `${run}: ${layer.path} (${layer.how})`);
  const runs = paths.length;
  const text = slot.how === "unmatched"
    ? `unmatched, only in ${Object.keys(slot.layers)[0]}${slot.why ? `: ${slot.why}` : ""}`
    : `${slot.description} · in ${runs} of ${state.selected.size} runs`;
  return el("span", {class: "bn-matched", dataset: {picker: "matched", how: slot.how}, title: paths.join("\n"), text});
}

/** Which selected runs have the slot's layer frozen, and which had non-finite channels in it. */
function layerMarks(slot) {
  const frozen = [];
  const nonfinite = [];
  for (const run of selectedRuns()) {
    const path = slot.layers[run.run]?.path;
    const entry = path === undefined ? null : run.layers.find((l) => l.path === path);
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
    const slot = currentSlot();
    await view.render(pane, {
      runs,
      slots: slots(),
      slot,
      layer: state.layer,
      pathOf: (run) => slot?.layers[run]?.path ?? null,
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

let drawing = 0; // the latest draw; an older one still waiting for its alignment gives up

/** Redraw the tab: ask the alignment of the selected runs, then panel, picker and view. */
async function draw(app) {
  const token = ++drawing;
  for (const pane of app.querySelectorAll(".bn-pane")) pane.dataset.status = "stale";
  if (!state.overview.runs.length) {
    app.replaceChildren(emptyState(app));
    return;
  }
  let problem = null;
  try {
    const names = selectedRuns().map((run) => run.run);
    // The Findings panel asks the same (cached) request once drawn: start it with the alignment.
    if (names.length) api.findings(names, state.match).catch(() => {});
    state.alignment = names.length ? await api.alignment(names, state.match) : null;
  } catch (error) {
    state.alignment = null;
    problem = message(`Could not align the runs' layers: ${error.message}`, "error");
  }
  if (token !== drawing) return;
  pickLayer();
  if (!views().some((view) => view.id === state.view)) state.view = views()[0].id;
  const content = el("main", {class: "bn-view", dataset: {view: state.view}});
  const findings = state.selected.size
    ? findingsPanel({
      runs: selectedRuns().map((run) => run.run),
      viewTitle: (id) => views().find((v) => v.id === id)?.title ?? null,
      onOpen: (finding) => openFinding(app, finding),
      active: state.finding,
      match: state.match,
    })
    : null;
  app.replaceChildren(...[findings, tabs(app), picker(app), problem, content].filter(Boolean));
  drawView(content);
}

/** Keep the picked slot when it still exists; else the slot of a finding's layer, or the first. */
function pickLayer() {
  const pending = state.pendingLayer;
  state.pendingLayer = null;
  if (pending) {
    const slot = slots().find((s) => s.layers[pending.run]?.path === pending.path);
    if (slot) state.layer = slot.name;
  }
  if (!slots().some((slot) => slot.name === state.layer)) state.layer = slots()[0]?.name ?? null;
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
  if (finding.layer) state.pendingLayer = {run: finding.run, path: finding.layer};
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
  // Follow TensorBoard's dark mode; charts read their colours when drawn, so redraw on a switch.
  followTheme([app, host ?? document.body], () => state.overview && draw(app));
  await load(app, options.runs);
}
