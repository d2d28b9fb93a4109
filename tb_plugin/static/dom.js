// DOM helpers. Every string goes in as text (textContent / text nodes), never as HTML.

/**
 * Create an element. `props.text` sets textContent, `props.class` the class name,
 * `props.dataset` data attributes, `props.style` an object of styles, `on<event>` listeners; other props become attributes.
 * Children may be nodes or strings (appended as text nodes).
 * Example: el("td", {class: "num", text: runName})
 */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of [].concat(children)) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** A <select> of `options` ([value, label] pairs or plain values), calling onChange(value). */
export function select(options, selected, onChange, props = {}) {
  const node = el("select", props);
  for (const option of options) {
    const [value, label] = Array.isArray(option) ? option : [option, option];
    const item = el("option", {text: label});
    item.value = String(value);
    item.selected = String(value) === String(selected);
    node.append(item);
  }
  node.addEventListener("change", () => onChange(node.value));
  return node;
}

/** A labelled control: "<label> <control>". */
export function field(label, control) {
  return el("label", {class: "bn-field"}, [el("span", {text: label}), control]);
}

/** A card: title, one-line caption, then content. */
export function card(title, caption, content = [], props = {}) {
  return el("section", {class: "bn-card", ...props}, [
    el("h3", {text: title}),
    caption ? el("p", {class: "bn-caption", text: caption}) : null,
    ...[].concat(content),
  ]);
}

/** Short number text: 4 significant digits, "—" when missing. */
export function formatNumber(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e5 || magnitude < 1e-3) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

/** "moving_mean" -> "moving mean". */
export function label(name) {
  return String(name).replaceAll("_", " ");
}

/** A message block (empty states, errors). */
export function message(text, kind = "info") {
  return el("p", {class: `bn-message bn-${kind}`, text});
}
