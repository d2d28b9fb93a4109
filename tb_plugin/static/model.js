// Fetching and decoding the plugin's data routes (see tb_plugin/payload.py for the format).

const BASE = new URL("./", import.meta.url);
const cache = new Map();

function routeUrl(route, params) {
  const url = new URL(route, BASE);
  for (const [key, value] of params) url.searchParams.append(key, String(value));
  return url.toString();
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).error || detail;
    } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response;
}

/**
 * Decode a binary payload: uint32 header length N, N bytes of JSON header, float32 arrays.
 * Returns {meta, arrays} with arrays[name] = {data: Float32Array, shape: number[]}.
 */
function decodePayload(buffer) {
  const headerLength = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength)));
  const start = 4 + headerLength;
  const arrays = {};
  for (const [name, {offset, shape}] of Object.entries(header.arrays)) {
    const length = shape.reduce((a, b) => a * b, 1);
    arrays[name] = {data: new Float32Array(buffer, start + offset, length), shape};
  }
  return {meta: header.meta, arrays};
}

function cached(url, load) {
  if (!cache.has(url)) {
    const promise = load(url);
    promise.catch(() => cache.delete(url));
    cache.set(url, promise);
  }
  return cache.get(url);
}

const getJson = (route, params = []) =>
  cached(routeUrl(route, params), async (url) => (await fetchOk(url)).json());
const getPayload = (route, params = []) =>
  cached(routeUrl(route, params), async (url) => decodePayload(await (await fetchOk(url)).arrayBuffer()));

/** Forget every fetched answer (the Reload button). */
export function clearCache() {
  cache.clear();
}

export const api = {
  runs: () => getJson("runs"),
  series: (run, layer, quantity, timeline) =>
    getPayload("series", [["run", run], ["layer", layer], ["quantity", quantity], ["timeline", timeline]]),
  compare: (runs, layer) => getPayload("compare", [...runs.map((run) => ["run", run]), ["layer", layer]]),
  modes: (run) => getPayload("modes", [["run", run]]),
  layerStep: (run, layer, step) =>
    getPayload("layer_step", [["run", run], ["layer", layer], ["step", step]]),
  findings: (runs) => getJson("findings", runs.map((run) => ["run", run])),
};
