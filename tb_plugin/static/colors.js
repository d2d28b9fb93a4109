// Colours: a qualitative palette for runs, and the viridis colour scale for heatmaps.

export const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
];

export function runColor(index) {
  return PALETTE[index % PALETTE.length];
}

/** `#rrggbb` with an alpha in [0, 1] as `rgba(...)`. */
export function withAlpha(hex, alpha) {
  const value = parseInt(hex.slice(1), 16);
  return `rgba(${value >> 16}, ${(value >> 8) & 255}, ${value & 255}, ${alpha})`;
}

// Viridis, sampled at 9 evenly spaced points (matplotlib's values).
const VIRIDIS = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];

/** 256-entry lookup table of [r, g, b] for t in [0, 1]. */
export const VIRIDIS_LUT = Array.from({length: 256}, (_, i) => {
  const t = (i / 255) * (VIRIDIS.length - 1);
  const lo = Math.min(Math.floor(t), VIRIDIS.length - 2);
  const f = t - lo;
  return VIRIDIS[lo].map((c, k) => Math.round(c + f * (VIRIDIS[lo + 1][k] - c)));
});

export const MISSING_RGB = [224, 224, 224]; // no value: not logged / not measured
export const NONFINITE_RGB = [233, 30, 99]; // NaN or ±inf: outside viridis, so never mistaken for a value
