// The notebook widget's front end: the BN Inspect tab itself (tb_plugin/static), whose module
// sources the kernel sends in the `_sources` trait. anywidget imports this one module from an
// object URL, where the tab's relative imports ("./model.js") cannot resolve; so each source
// becomes an object URL of its own, dependencies first, with its relative specifiers rewritten
// to their URLs. The tab draws in a shadow root holding its stylesheets, so its styles and the
// notebook's leave each other alone, and asks its data through the widget's messages.

const ENTRY = "index.js";
const MODEL = "model.js";
const TRANSPORT = "transport.js";
// `from "./x.js"`, `import "./x.js"`, `import("./x.js")`: the specifiers to rewrite.
const RELATIVE_SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s*)(["'])(\.\.?\/[^"'\n]+)\2/g;

/** The path of `specifier` relative to the module at `path` (both relative to static/). */
export function resolvePath(path, specifier) {
  return new URL(specifier, `file:///${path}`).pathname.slice(1);
}

/**
 * Object URLs of `entry` and every module it imports, from `sources` (path -> source text).
 * Returns a Map path -> URL; throws naming a module that imports a missing one, or a cycle.
 */
export function link(sources, entry) {
  const urls = new Map();
  const linking = new Set();
  function urlOf(path, importer) {
    if (urls.has(path)) return urls.get(path);
    if (!(path in sources)) throw new Error(`${importer} imports ${path}, which the kernel did not send`);
    if (linking.has(path)) throw new Error(`import cycle through ${path}: object URLs cannot link it`);
    linking.add(path);
    const code = sources[path].replace(RELATIVE_SPECIFIER, (_, keyword, quote, specifier) =>
      `${keyword}${quote}${urlOf(resolvePath(path, specifier), path)}${quote}`);
    linking.delete(path);
    urls.set(path, URL.createObjectURL(new Blob([code], {type: "text/javascript"})));
    return urls.get(path);
  }
  urlOf(entry, "the widget");
  return urls;
}

const PAGE_CLASS = "bn-page"; // the element standing for the tab's page body in the shadow root

/** A stylesheet of the tab for a shadow root: rules for the document go to the shadow host
 * (`:root`) and to the element that holds the tab (`body`). */
export function scopedCss(css) {
  return css
    .replace(/(^|[\s,}]):root(?=[\s,{])/g, "$1:host")
    .replace(/(^|[\s,}])body(?=[\s,{.])/g, `$1.${PAGE_CLASS}`);
}

async function render({model, el}) {
  const sources = model.get("_sources");
  const urls = link(sources, ENTRY);
  const {useTransport} = await import(urls.get(MODEL));
  const {widgetTransport} = await import(urls.get(TRANSPORT));
  const transport = widgetTransport(model);
  useTransport(transport);
  const tab = await import(urls.get(ENTRY));

  const host = document.createElement("div");
  host.className = "bn-inspect-widget";
  const shadow = host.attachShadow({mode: "open"});
  for (const sheet of tab.STYLESHEETS) {
    const style = document.createElement("style");
    style.textContent = scopedCss(sources[resolvePath(ENTRY, sheet)]);
    shadow.append(style);
  }
  const root = document.createElement("div");
  root.className = PAGE_CLASS;
  shadow.append(root);
  el.append(host);
  await tab.render(root, model.get("_options"));
  return () => {
    transport.close();
    for (const url of urls.values()) URL.revokeObjectURL(url);
  };
}

export default {render};
