// Light or dark, as TensorBoard shows itself: its page toggles the `dark-mode` class on its
// body, and the tab's iframe is same-origin, so that class is readable from here. In JupyterLab
// (where the notebook widget draws in the page itself) its `data-jp-theme-light` attribute on the
// body decides. Elsewhere (other notebooks, a cross-origin host) the system's
// `prefers-color-scheme` does.

const DARK_CLASS = "bn-dark";

/** TensorBoard's page around this frame, or null when there is none or it cannot be read. */
function hostBody() {
  try {
    if (window.parent === window) return null;
    return window.parent.document.body;
  } catch (_) {
    return null; // cross-origin parent
  }
}

/** JupyterLab's page when the tab draws in it (the notebook widget), else null. */
function labBody() {
  return document.body?.dataset.jpThemeLight !== undefined ? document.body : null;
}

/** Whether the tab should be dark now. */
export function isDark() {
  const body = hostBody();
  if (body) return body.classList.contains("dark-mode");
  const lab = labBody();
  if (lab) return lab.dataset.jpThemeLight === "false";
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
}

/**
 * Keep `elements` (the tab's root, and the iframe's body when the tab owns the page) in the
 * host's theme, calling `onChange()` after each switch so that canvases redraw in its colours.
 */
export function followTheme(elements, onChange) {
  let dark = null;
  const apply = () => {
    const now = isDark();
    if (now === dark) return;
    const first = dark === null;
    dark = now;
    for (const element of elements) element.classList.toggle(DARK_CLASS, dark);
    if (!first) onChange();
  };
  apply();
  const body = hostBody() ?? labBody();
  if (body) new MutationObserver(apply).observe(body, {attributes: true, attributeFilter: ["class", "data-jp-theme-light"]});
  window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", apply);
}

/** A colour of the current theme: the CSS custom property `name` (e.g. "--bn-axis") as seen
 * from `element`, or `fallback` when it is not set. */
export function themeColor(element, name, fallback) {
  return getComputedStyle(element).getPropertyValue(name).trim() || fallback;
}
