// The Findings panel on top of every view: what bn_inspect.doctor finds in the selected runs,
// grouped by severity with counts; each finding shows its title, run, layer, evidence figures
// and fix, and clicking it opens the view, run and layer that show it. The same finding in
// several runs (same check, same aligned layer slot) is one entry "… in N runs", expandable to
// each run's finding: a sweep of 200 runs does not repeat it 200 times.

import {api} from "./model.js";
import {el, formatNumber, label, message} from "./dom.js";

const TITLES = {error: "Errors", warning: "Warnings", info: "Info"};
const open = new Set(["error"]); // severity groups shown expanded; kept across redraws
const openShared = new Set(); // keys of the shared findings shown expanded

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

/** The groups of one severity as /findings sends them (bn_inspect.doctor.group_findings: the
 * same check on the same aligned layer slot), each with its findings, in the answer's order. */
function clusters(answer, severity) {
  return answer.groups
    .filter((group) => group.severity === severity)
    .map((group) => ({
      key: [group.severity, group.id, group.slot ?? ""].join("\u0000"),
      where: group.slot ?? "",
      findings: group.findings.map((i) => answer.findings[i]),
    }));
}

/** "runs a, b, c" — the first few only when there are many. */
function runsText(runs, shown = 6) {
  const more = runs.length > shown ? ` … and ${runs.length - shown} more` : "";
  return `runs ${runs.slice(0, shown).join(", ")}${more}`;
}

/** One entry for a finding shared by several runs, expandable to each run's finding. */
function sharedItem({key, where, findings}, context) {
  const [first] = findings;
  const sameTitle = findings.every((f) => f.title === first.title);
  const target = context.viewTitle(first.view);
  const details = el("details", {class: "bn-finding-shared", dataset: {finding: first.id, slot: where, runs: String(findings.length)}}, [
    el("summary", {}, [
      el("div", {class: "bn-finding-summary"}, [
        el("div", {class: "bn-finding-head"}, [
          el("span", {class: `bn-severity bn-${first.severity}`, text: first.severity}),
          el("span", {class: "bn-finding-title", text: sameTitle ? first.title : `${first.title} (in ${first.run}; figures differ by run)`}),
          el("span", {class: "bn-runs-count", text: `in ${findings.length} runs`}),
          target ? el("span", {class: "bn-finding-view", text: `→ ${target}`}) : null,
        ]),
        el("div", {class: "bn-finding-where", text: [where ? `layer ${where}` : "whole run", runsText(findings.map((f) => f.run))].join(" · ")}),
        el("div", {class: "bn-fix"}, [el("span", {class: "bn-fix-key", text: "Fix"}), first.fix]),
      ]),
    ]),
    el("ul", {class: "bn-finding-runs"}, findings.map((finding) => findingItem(finding, context))),
  ]);
  details.open = openShared.has(key) || findings.some((f) => findingKey(f) === context.active);
  details.addEventListener("toggle", () => (details.open ? openShared.add(key) : openShared.delete(key)));
  return el("li", {class: "bn-finding-cluster"}, [details]);
}

function group(severity, items, answer, context) {
  const entries = clusters(answer, severity).map((cluster) =>
    cluster.findings.length > 1 ? sharedItem(cluster, context) : findingItem(cluster.findings[0], context));
  const details = el("details", {class: "bn-findings-group", dataset: {severity}}, [
    el("summary", {}, [
      el("span", {class: `bn-severity bn-${severity}`, text: String(items.length)}),
      `${TITLES[severity] ?? severity}`,
    ]),
    el("ul", {}, entries),
  ]);
  details.open = open.has(severity);
  details.addEventListener("toggle", () => (details.open ? open.add(severity) : open.delete(severity)));
  return details;
}

/**
 * The panel for `runs` (names); it fills in when the /findings answer arrives.
 * `viewTitle(id)` names a view (null when the tab has none), `onOpen(finding)` opens it,
 * `active` is the findingKey of the finding opened last, `match` how the runs' layers are aligned
 * (the groups of findings shared by several runs follow it).
 */
export function findingsPanel({runs, viewTitle, onOpen, active, match = "auto"}) {
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
  api.findings(runs, match).then((answer) => {
    const context = {viewTitle, onOpen, active};
    const groups = answer.severities
      .map((severity) => [severity, answer.findings.filter((f) => f.severity === severity)])
      .filter(([, items]) => items.length);
    counts.replaceChildren(...answer.severities.map((severity) =>
      el("span", {class: `bn-count bn-${severity}`, dataset: {severity}, text: `${answer.counts[severity]} ${TITLES[severity]?.toLowerCase() ?? severity}`})));
    body.replaceChildren(...(groups.length
      ? groups.map(([severity, items]) => group(severity, items, answer, context))
      : [el("p", {class: "bn-caption", text: "No findings: nothing in the selected runs needs a fix."})]));
    const opened = body.querySelector(".bn-finding.bn-active");
    const list = opened?.closest(".bn-findings-group > ul");
    if (list) list.scrollTop = opened.offsetTop - list.offsetTop - 4;
  }).catch((error) => {
    body.replaceChildren(message(`Could not check the runs: ${error.message}`, "error"));
  }).finally(() => {
    root.dataset.status = "ready";
  });
  return root;
}
