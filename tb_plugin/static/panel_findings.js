// The Findings panel on top of every view: what bn_inspect.doctor finds in the selected runs,
// grouped by severity with counts; each finding shows its title, run, layer, evidence figures
// and fix, and clicking it opens the view, run and layer that show it.

import {api} from "./model.js";
import {el, formatNumber, label, message} from "./dom.js";

const TITLES = {error: "Errors", warning: "Warnings", info: "Info"};
const open = new Set(["error"]); // severity groups shown expanded; kept across redraws

function evidenceText(value) {
  if (Array.isArray(value)) return value.map(evidenceText).join(", ") || "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") return formatNumber(value);
  return value === null || value === undefined ? "—" : String(value);
}

/** Stable key of a finding (to mark the one opened last). */
export function findingKey(finding) {
  return [finding.id, finding.run, finding.layer ?? ""].join("\u0000");
}

function findingItem(finding, {viewTitle, onOpen, active}) {
  const where = [`run ${finding.run}`, finding.layer ? `layer ${finding.layer}` : "whole run"];
  const target = viewTitle(finding.view);
  const item = el("li", {
    class: findingKey(finding) === active ? "bn-finding bn-active" : "bn-finding",
    tabindex: "0",
    role: "button",
    title: target ? `Open “${target}” for this run and layer` : null,
    dataset: {finding: finding.id, severity: finding.severity, run: finding.run, layer: finding.layer ?? "", view: finding.view},
    onclick: () => onOpen(finding),
    onkeydown: (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onOpen(finding);
      }
    },
  }, [
    el("div", {class: "bn-finding-head"}, [
      el("span", {class: `bn-severity bn-${finding.severity}`, text: finding.severity}),
      el("span", {class: "bn-finding-title", text: finding.title}),
      target ? el("span", {class: "bn-finding-view", text: `→ ${target}`}) : null,
    ]),
    el("div", {class: "bn-finding-where", text: where.join(" · ")}),
    el("div", {class: "bn-evidence"}, Object.entries(finding.evidence).map(([key, value]) =>
      el("span", {class: "bn-figure"}, [el("span", {class: "bn-figure-key", text: label(key)}), evidenceText(value)]))),
    el("div", {class: "bn-fix"}, [el("span", {class: "bn-fix-key", text: "Fix"}), finding.fix]),
  ]);
  return item;
}

function group(severity, items, context) {
  const details = el("details", {class: "bn-findings-group", dataset: {severity}}, [
    el("summary", {}, [
      el("span", {class: `bn-severity bn-${severity}`, text: String(items.length)}),
      `${TITLES[severity] ?? severity}`,
    ]),
    el("ul", {}, items.map((finding) => findingItem(finding, context))),
  ]);
  details.open = open.has(severity);
  details.addEventListener("toggle", () => (details.open ? open.add(severity) : open.delete(severity)));
  return details;
}

/**
 * The panel for `runs` (names); it fills in when the /findings answer arrives.
 * `viewTitle(id)` names a view (null when the tab has none), `onOpen(finding)` opens it,
 * `active` is the findingKey of the finding opened last.
 */
export function findingsPanel({runs, viewTitle, onOpen, active}) {
  const body = el("div", {class: "bn-findings-body", text: "Checking the selected runs…"});
  const counts = el("span", {class: "bn-findings-counts"});
  const root = el("section", {class: "bn-findings", dataset: {panel: "findings", status: "loading"}}, [
    el("div", {class: "bn-findings-header"}, [
      el("h3", {text: "Findings"}),
      counts,
      el("span", {class: "bn-caption", text: "bn_inspect.doctor on the selected runs: click a finding to open the view that shows it."}),
    ]),
    body,
  ]);
  api.findings(runs).then((answer) => {
    const context = {viewTitle, onOpen, active};
    const groups = answer.severities
      .map((severity) => [severity, answer.findings.filter((f) => f.severity === severity)])
      .filter(([, items]) => items.length);
    counts.replaceChildren(...answer.severities.map((severity) =>
      el("span", {class: `bn-count bn-${severity}`, dataset: {severity}, text: `${answer.counts[severity]} ${TITLES[severity]?.toLowerCase() ?? severity}`})));
    body.replaceChildren(...(groups.length
      ? groups.map(([severity, items]) => group(severity, items, context))
      : [el("p", {class: "bn-caption", text: "No findings: nothing in the selected runs needs a fix."})]));
    const opened = body.querySelector(".bn-finding.bn-active");
    if (opened) opened.parentElement.scrollTop = opened.offsetTop - opened.parentElement.offsetTop - 4;
  }).catch((error) => {
    body.replaceChildren(message(`Could not check the runs: ${error.message}`, "error"));
  }).finally(() => {
    root.dataset.status = "ready";
  });
  return root;
}
