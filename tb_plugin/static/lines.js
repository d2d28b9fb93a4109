// Line charts on the vendored uPlot: series with their own x values, optional percentile bands.

import uPlot from "./vendor/uplot/uPlot.esm.js";
import {withAlpha} from "./colors.js";
import {el} from "./dom.js";
import {themeColor} from "./theme.js";

const toPlain = (values) => Array.from(values, (v) => (Number.isFinite(v) ? v : null));
// Tick steps for an x axis of whole numbers (epochs, channels): never 0.25 of an epoch.
const INTEGER_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];
// Line of the k-th series that sets no `dash`: the first solid, the next ones dashed or dotted,
// so that a series drawn exactly over another (two runs sharing their first epochs) lets it show.
const SERIES_DASHES = [undefined, [10, 5], [3, 4], [12, 4, 3, 4]];

/**
 * A responsive line chart. Each series: {label, x, y, color, dash?, low?, high?}; x/y/low/high
 * are arrays of equal length (typed arrays are fine, NaN is a gap). Without a `dash` key, a
 * series' line is solid, dashed or dotted by its position. With low/high the series
 * gets a shaded band. `points: true` draws markers only (for a categorical x such as channels).
 * The legend shows the values under the cursor.
 * Example:
 *   parent.append(lineChart({xLabel: "epoch", yLabel: "drift", series: [{label: "run", x, y, color}]}));
 */
export function lineChart({xLabel, yLabel, series, height = 230, bandLabels = ["high", "low"], points = false}) {
  const root = el("div", {class: "bn-chart", dataset: {chart: "line", series: String(series.length)}});
  const tables = [];
  const uSeries = [{label: xLabel}];
  const bands = [];
  const bandColumns = [];
  for (const [k, s] of series.entries()) {
    const table = [toPlain(s.x), toPlain(s.y)];
    const style = points
      ? {paths: () => null, points: {show: true, size: s.x.length > 400 ? 3 : 6, width: 0, fill: s.color}}
      : {width: 2, dash: "dash" in s ? s.dash : SERIES_DASHES[k % SERIES_DASHES.length], spanGaps: true, points: {show: s.x.length <= 40, size: 5}};
    uSeries.push({label: s.label, stroke: s.color, ...style});
    if (s.low && s.high) {
      const column = uSeries.length;
      table.push(toPlain(s.high), toPlain(s.low));
      for (const name of bandLabels) {
        uSeries.push({label: `${s.label} ${name}`, stroke: withAlpha(s.color, 0.35), width: 1, spanGaps: true, points: {show: false}});
      }
      bands.push({series: [column, column + 1], fill: withAlpha(s.color, 0.14)});
      bandColumns.push(column, column + 1);
    }
    tables.push(table);
  }
  const data = tables.length ? uPlot.join(tables) : [[]];
  const integerX = data[0].every(Number.isInteger);
  let plot = null;
  new ResizeObserver(() => {
    const width = root.clientWidth;
    if (width === 0) return;
    if (plot) {
      plot.setSize({width, height});
      return;
    }
    const axis = {stroke: themeColor(root, "--bn-axis", "#424242"), grid: {stroke: themeColor(root, "--bn-grid", "#eeeeee")}};
    plot = new uPlot(
      {
        width,
        height,
        series: uSeries,
        bands,
        scales: {x: {time: false}},
        axes: [
          {label: xLabel, labelSize: 20, ...axis, incrs: integerX ? INTEGER_INCRS : undefined},
          {label: yLabel, labelSize: 20, size: 64, ...axis},
        ],
        legend: {live: true, markers: {fill: (_, i) => uSeries[i].stroke}},
      },
      data,
      root,
    );
    const rows = plot.root.querySelectorAll(".u-legend .u-series");
    for (const column of bandColumns) rows[column]?.classList.add("bn-band-legend");
  }).observe(root);
  return root;
}
