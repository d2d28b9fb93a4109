// A canvas heatmap with axes, a colour-scale legend and a hover read-out.
// One pixel per cell in an ImageData, scaled onto the plot: 2048 x 200 cells draw in a few ms.
// NaN and ±inf cells get their own colour (listed in the legend) and never enter the scale;
// cells without a value (a `missing` mask) are grey.

import {MISSING_RGB, NONFINITE_RGB, VIRIDIS_LUT} from "./colors.js";
import {el, formatNumber} from "./dom.js";
import {themeColor} from "./theme.js";

const MARGIN = {top: 10, right: 120, bottom: 44, left: 60};
const EXACT_RANGE_CELLS = 20000; // above this, the colour range is the 0.5-99.5th percentile
const RANGE_SAMPLE = 100000;
const MAX_ROW_LABEL_PX = 200;
const LEGEND_ENTRY_PX = 18;

/** Colour range of `values`: {lo, hi, clipped}; NaN and infinities are ignored. */
function colorRange(values) {
  const step = Math.max(1, Math.floor(values.length / RANGE_SAMPLE));
  const sample = [];
  for (let i = 0; i < values.length; i += step) {
    if (Number.isFinite(values[i])) sample.push(values[i]);
  }
  if (!sample.length) return {lo: 0, hi: 1, clipped: false};
  const sorted = Float64Array.from(sample).sort();
  const n = sorted.length;
  let lo = sorted[0];
  let hi = sorted[n - 1];
  let clipped = false;
  if (values.length > EXACT_RANGE_CELLS) {
    lo = sorted[Math.floor(0.005 * (n - 1))];
    hi = sorted[Math.ceil(0.995 * (n - 1))];
    clipped = lo > sorted[0] || hi < sorted[n - 1];
  }
  if (hi === lo) {
    const pad = Math.abs(lo) * 0.01 || 0.5;
    lo -= pad;
    hi += pad;
  }
  return {lo, hi, clipped};
}

function packedLut() {
  const pack = ([r, g, b]) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0; // little-endian RGBA
  return {colors: Uint32Array.from(VIRIDIS_LUT, pack), missing: pack(MISSING_RGB), nonfinite: pack(NONFINITE_RGB)};
}

const LUT = packedLut();

/**
 * Heatmap of a rows x cols matrix (row-major Float32Array). `missing` (optional, same length,
 * truthy = no value) marks cells drawn grey and listed as `missingLabel`.
 * Example:
 *   const map = new Heatmap({xLabel: "epoch", yLabel: "channel", valueLabel: "moving mean"});
 *   parent.append(map.root);
 *   map.setData({rows: 16, cols: 7, values, colLabels: [0, 1, 2, 3, 4, 5, 6]});
 */
export class Heatmap {
  constructor({xLabel, yLabel, valueLabel, height = 320}) {
    this.labels = {xLabel, yLabel, valueLabel};
    this.height = height;
    this.canvas = el("canvas", {class: "bn-heatmap-canvas"});
    this.tooltip = el("div", {class: "bn-tooltip"});
    this.tooltip.hidden = true;
    this.root = el("div", {class: "bn-heatmap", dataset: {chart: "heatmap"}}, [this.canvas, this.tooltip]);
    this.canvas.addEventListener("mousemove", (event) => this.hover(event));
    this.canvas.addEventListener("mouseleave", () => (this.tooltip.hidden = true));
    new ResizeObserver(() => this.draw()).observe(this.root);
  }

  /** rowLabels: names per row (e.g. layers) or null for row indices (channels). */
  setData({rows, cols, values, colLabels, rowLabels = null, missing = null, missingLabel = "not logged"}) {
    this.data = {rows, cols, values, colLabels, rowLabels, missing, missingLabel};
    this.range = colorRange(values);
    this.counts = {missing: 0, nonfinite: 0};
    this.image = this.paint();
    Object.assign(this.root.dataset, {
      rows: String(rows),
      cols: String(cols),
      missing: String(this.counts.missing),
      nonfinite: String(this.counts.nonfinite),
    });
    this.draw();
  }

  /** Legend entries besides the colour scale: the special colours this map uses. */
  specialEntries() {
    const entries = [];
    if (this.counts.nonfinite) entries.push({rgb: NONFINITE_RGB, text: "NaN / ±inf"});
    if (this.counts.missing) entries.push({rgb: MISSING_RGB, text: this.data.missingLabel});
    return entries;
  }

  paint() {
    const {rows, cols, values, missing} = this.data;
    const image = document.createElement("canvas");
    image.width = Math.max(cols, 1);
    image.height = Math.max(rows, 1);
    const context = image.getContext("2d");
    const imageData = context.createImageData(image.width, image.height);
    const pixels = new Uint32Array(imageData.data.buffer);
    const {lo, hi} = this.range;
    const scale = 255 / (hi - lo);
    for (let i = 0; i < rows * cols; i++) {
      const v = values[i];
      if (missing && missing[i]) {
        pixels[i] = LUT.missing;
        this.counts.missing++;
        continue;
      }
      if (v !== v || v === Infinity || v === -Infinity) {
        pixels[i] = LUT.nonfinite;
        this.counts.nonfinite++;
        continue;
      }
      const k = (v - lo) * scale;
      pixels[i] = LUT.colors[k <= 0 ? 0 : k >= 255 ? 255 : k | 0];
    }
    context.putImageData(imageData, 0, 0);
    return image;
  }

  layout(context, width) {
    const {rowLabels} = this.data;
    let left = MARGIN.left;
    if (rowLabels) {
      context.font = "12px sans-serif";
      const widest = Math.max(...rowLabels.map((name) => context.measureText(String(name)).width), 0);
      left = Math.min(widest, MAX_ROW_LABEL_PX) + 34;
    }
    return {
      x: left,
      y: MARGIN.top,
      w: Math.max(width - left - MARGIN.right, 10),
      h: Math.max(this.height - MARGIN.top - MARGIN.bottom, 10),
    };
  }

  draw() {
    const width = this.root.clientWidth;
    if (!this.data || width === 0) return;
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(this.height * ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${this.height}px`;
    const context = this.canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    this.ink = themeColor(this.root, "--bn-axis", "#424242");
    context.fillStyle = themeColor(this.root, "--bn-surface", "#ffffff");
    context.fillRect(0, 0, width, this.height);
    const plot = (this.plot = this.layout(context, width));
    this.root.dataset.plot = [plot.x, plot.y, plot.w, plot.h].join(" "); // where the cells are, in CSS pixels
    context.imageSmoothingEnabled = false;
    context.drawImage(this.image, plot.x, plot.y, plot.w, plot.h);
    context.strokeStyle = "#9e9e9e";
    context.strokeRect(plot.x - 0.5, plot.y - 0.5, plot.w + 1, plot.h + 1);
    this.drawAxes(context, plot);
    this.drawLegend(context, plot);
    this.root.dataset.drawn = "true";
  }

  drawAxes(context, plot) {
    const {rows, cols, colLabels, rowLabels} = this.data;
    const {xLabel, yLabel} = this.labels;
    context.fillStyle = this.ink;
    context.font = "11px sans-serif";
    context.textAlign = "center";
    context.textBaseline = "top";
    for (const j of tickIndices(cols, Math.max(2, Math.floor(plot.w / 56)))) {
      const x = plot.x + ((j + 0.5) * plot.w) / cols;
      context.fillRect(x, plot.y + plot.h, 1, 4);
      context.fillText(formatTick(colLabels[j]), x, plot.y + plot.h + 6);
    }
    context.textAlign = "right";
    context.textBaseline = "middle";
    const everyRow = rowLabels && rows <= plot.h / 13;
    const rowTicks = everyRow ? [...Array(rows).keys()] : tickIndices(rows, Math.max(2, Math.floor(plot.h / 36)));
    for (const i of rowTicks) {
      const y = plot.y + ((i + 0.5) * plot.h) / rows;
      context.fillRect(plot.x - 4, y, 4, 1);
      const text = rowLabels ? truncate(context, String(rowLabels[i]), MAX_ROW_LABEL_PX) : String(i);
      context.fillText(text, plot.x - 6, y);
    }
    context.font = "12px sans-serif";
    context.textAlign = "center";
    context.textBaseline = "bottom";
    context.fillText(xLabel, plot.x + plot.w / 2, this.height - 4);
    if (!rowLabels) {
      context.save();
      context.translate(14, plot.y + plot.h / 2);
      context.rotate(-Math.PI / 2);
      context.textBaseline = "middle";
      context.fillText(yLabel, 0, 0);
      context.restore();
    }
  }

  drawLegend(context, plot) {
    const {lo, hi, clipped} = this.range;
    const x = plot.x + plot.w + 18;
    const barWidth = 14;
    const entries = this.specialEntries();
    const barHeight = Math.max(plot.h - entries.length * LEGEND_ENTRY_PX, 20);
    for (let i = 0; i < barHeight; i++) {
      const k = Math.round(255 * (1 - i / Math.max(barHeight - 1, 1)));
      const [r, g, b] = VIRIDIS_LUT[k];
      context.fillStyle = `rgb(${r},${g},${b})`;
      context.fillRect(x, plot.y + i, barWidth, 1);
    }
    context.strokeStyle = "#9e9e9e";
    context.strokeRect(x - 0.5, plot.y - 0.5, barWidth + 1, barHeight + 1);
    context.fillStyle = this.ink;
    context.font = "11px sans-serif";
    context.textAlign = "left";
    context.textBaseline = "middle";
    for (const [t, value] of [[0, hi], [0.5, (lo + hi) / 2], [1, lo]]) {
      const y = plot.y + t * barHeight;
      context.fillRect(x + barWidth, y, 3, 1);
      context.fillText(formatNumber(value), x + barWidth + 5, y);
    }
    entries.forEach(({rgb, text}, k) => {
      const y = plot.y + barHeight + 6 + k * LEGEND_ENTRY_PX;
      context.fillStyle = `rgb(${rgb.join(",")})`;
      context.fillRect(x, y, barWidth, 12);
      context.strokeRect(x - 0.5, y - 0.5, barWidth + 1, 13);
      context.fillStyle = this.ink;
      context.fillText(text, x + barWidth + 5, y + 6);
    });
    context.save();
    context.translate(x + barWidth + 74, plot.y + barHeight / 2);
    context.rotate(-Math.PI / 2);
    context.textAlign = "center";
    context.font = "12px sans-serif";
    context.fillText(this.labels.valueLabel + (clipped ? " (clipped to p0.5–p99.5)" : ""), 0, 0);
    context.restore();
  }

  hover(event) {
    if (!this.plot || !this.data) return;
    const box = this.canvas.getBoundingClientRect();
    const px = event.clientX - box.left;
    const py = event.clientY - box.top;
    const {x, y, w, h} = this.plot;
    const {rows, cols, values, colLabels, rowLabels, missing, missingLabel} = this.data;
    if (px < x || py < y || px >= x + w || py >= y + h) {
      this.tooltip.hidden = true;
      return;
    }
    const col = Math.min(cols - 1, Math.floor(((px - x) / w) * cols));
    const row = Math.min(rows - 1, Math.floor(((py - y) / h) * rows));
    const {xLabel, yLabel, valueLabel} = this.labels;
    const index = row * cols + col;
    const value = missing && missing[index] ? missingLabel : formatValue(values[index]);
    this.tooltip.textContent = [
      `${yLabel}: ${rowLabels ? rowLabels[row] : row}`,
      `${xLabel}: ${formatTick(colLabels[col])}`,
      `${valueLabel}: ${value}`,
    ].join("\n");
    this.tooltip.style.left = `${Math.min(px + 14, box.width - 200)}px`;
    this.tooltip.style.top = `${py + 14}px`;
    this.tooltip.hidden = false;
  }
}

/** Indices 0, step, 2 step, ... with a round step (1, 2, 5, 10, 20, 50, ...) giving at most ~`wanted` ticks. */
function tickIndices(count, wanted) {
  let step = 1;
  for (let scale = 1; step * wanted < count; scale *= 10) {
    step = [1, 2, 5].map((m) => m * scale).find((s) => s * wanted >= count) ?? 10 * scale;
  }
  const ticks = [];
  for (let i = 0; i < count; i += step) ticks.push(i);
  return ticks;
}

/** A cell's value as text; NaN and infinities by name. */
function formatValue(value) {
  if (value !== value) return "NaN";
  if (value === Infinity || value === -Infinity) return value > 0 ? "inf" : "-inf";
  return formatNumber(value);
}

function formatTick(value) {
  return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(2) : String(value);
}

function truncate(context, text, maxWidth) {
  if (context.measureText(text).width <= maxWidth) return text;
  let cut = text;
  while (cut.length > 1 && context.measureText(`…${cut}`).width > maxWidth) cut = cut.slice(1);
  return `…${cut}`;
}
