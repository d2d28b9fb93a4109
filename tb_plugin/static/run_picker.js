// The run list of the picker, made for sweeps of hundreds of runs: a filter by regular
// expression as in TensorBoard's own run selector (case-insensitive, an invalid pattern gets a
// message), buttons that select all, none or only the runs shown, and a list that scrolls in a
// box of its own so that it never pushes the views off screen. Colours come from the caller.

import {el} from "./dom.js";

/** The regular expression of `text` (case-insensitive), or {error} when it is not one. */
export function runFilter(text) {
  if (!text) return {test: () => true};
  try {
    const pattern = new RegExp(text, "i");
    return {test: (name) => pattern.test(name)};
  } catch (error) {
    return {error: error.message};
  }
}

/**
 * The run list. `runs`: every run name, in order; `selected`: a Set of names; `filter`: the
 * pattern typed so far; `colorOf(name)`; `onFilter(text)` remembers the pattern (the list
 * updates itself, nothing redraws); `onSelect(names, checked, only)` changes the selection
 * (`only`: those names become the whole selection).
 */
export function runPicker({runs, selected, filter, colorOf, onFilter, onSelect}) {
  const labels = runs.map((name) => {
    const box = el("input", {type: "checkbox"});
    box.checked = selected.has(name);
    box.addEventListener("change", () => onSelect([name], box.checked));
    return el("label", {class: "bn-run", dataset: {run: name}, title: name}, [
      box,
      el("span", {class: "bn-swatch", style: {background: colorOf(name)}}),
      el("span", {text: name}),
    ]);
  });
  const note = el("span", {class: "bn-filter-note", dataset: {picker: "filter-note"}});
  const input = el("input", {
    type: "search",
    placeholder: "Filter runs (regex)",
    "aria-label": "Filter runs by regular expression",
    dataset: {picker: "run-filter"},
  });
  input.value = filter;
  const shown = () => labels.filter((label) => !label.hidden).map((label) => label.dataset.run);
  const button = (text, picker, action) =>
    el("button", {type: "button", text, dataset: {picker}, onclick: () => action(shown())});
  const buttons = [
    button("All", "select-shown", (names) => onSelect(names, true)),
    button("None", "unselect-shown", (names) => onSelect(names, false)),
    button("Only these", "only-shown", (names) => onSelect(names, true, true)),
  ];
  buttons[0].title = "Select every run shown";
  buttons[1].title = "Unselect every run shown";
  buttons[2].title = "Select the runs shown and unselect all others";

  const apply = () => {
    const filterNow = runFilter(input.value);
    input.classList.toggle("bn-invalid", Boolean(filterNow.error));
    for (const button of buttons) button.disabled = Boolean(filterNow.error);
    if (filterNow.error) {
      for (const label of labels) label.hidden = false;
      note.className = "bn-filter-note bn-error";
      note.textContent = `Invalid regular expression: ${filterNow.error}`;
      return;
    }
    for (const label of labels) label.hidden = !filterNow.test(label.dataset.run);
    note.className = "bn-filter-note";
    const count = shown().length;
    note.textContent = `${count} of ${runs.length} run${runs.length === 1 ? "" : "s"} shown · ${selected.size} selected`;
  };
  input.addEventListener("input", () => {
    onFilter(input.value);
    apply();
  });
  apply();
  return el("div", {class: "bn-picker-runs"}, [
    el("div", {class: "bn-run-tools"}, [el("span", {class: "bn-picker-title", text: "Runs"}), input, ...buttons, note]),
    el("div", {class: "bn-runs bn-run-list", dataset: {picker: "runs"}}, labels),
  ]);
}
