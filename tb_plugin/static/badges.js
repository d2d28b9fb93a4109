// Badges marking layers that need attention: frozen (inference mode in training) and layers
// with non-finite moving statistics. The tooltip (title) explains each.

import {el} from "./dom.js";

export const FROZEN_TEXT = "frozen · inference mode in training";
const FROZEN_TIP =
  "trainable=False: this BatchNormalization normalises with its moving statistics during training too and never " +
  "updates them (the fine-tuning trap). Right for a frozen pretrained backbone whose statistics fit the new data; " +
  "otherwise set trainable=True and recompile, or call bn_inspect.recalibrate.";

/** Badge for a layer frozen in `runNames` (all runs shown when empty). */
export function frozenBadge(runNames = []) {
  const where = runNames.length ? `In run(s): ${runNames.join(", ")}. ` : "";
  return el("span", {class: "bn-badge bn-badge-frozen", title: where + FROZEN_TIP, dataset: {badge: "frozen"}, text: FROZEN_TEXT});
}

/** Short text for a layer's non-finite summary ({max, first_step, last}). */
export function nonfiniteText(summary) {
  return `${summary.max} (from epoch ${summary.first_step})`;
}

/** Warning badge for a layer whose moving statistics had non-finite channels, per run:
 * `items` = [{run, summary}]. */
export function nonfiniteBadge(items) {
  const worst = Math.max(...items.map(({summary}) => summary.max));
  const detail = items
    .map(({run, summary}) => `run ${run}: ${summary.max} channel(s), first at epoch ${summary.first_step}, ${summary.last} at the last`)
    .join("; ");
  return el("span", {
    class: "bn-badge bn-badge-warn",
    title: `NaN/inf moving mean or NaN/inf/negative moving variance (${detail}). Inference through these channels is NaN or undefined.`,
    dataset: {badge: "nonfinite"},
    text: `⚠ ${worst} non-finite channel${worst === 1 ? "" : "s"}`,
  });
}
