// Asking the plugin's data routes (through a transport, see transport.js) and decoding their
// answers (see tb_plugin/payload.py for the format).

import {httpTransport} from "./transport.js";

let transport = null;
const cache = new Map();

/** Answer every data request through `replacement` (see transport.js) instead of TensorBoard's
 * HTTP routes; the notebook widget passes its messages. */
export function useTransport(replacement) {
  transport = replacement;
  cache.clear();
}

function current() {
  // Resolved on first use: under the notebook widget, import.meta.url is an object URL.
  transport ??= httpTransport(new URL("./", import.meta.url));
  return transport;
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

function cached(route, params, load) {
  const key = JSON.stringify([route, params]);
  if (!cache.has(key)) {
    const promise = load(route, params);
    promise.catch(() => cache.delete(key));
    cache.set(key, promise);
  }
  return cache.get(key);
}

const getJson = (route, params = []) => cached(route, params, (r, p) => current().json(r, p));
const getPayload = (route, params = []) =>
  cached(route, params, async (r, p) => decodePayload(await current().binary(r, p)));

/** Forget every fetched answer (the Reload button). */
export function clearCache() {
  cache.clear();
}

export const api = {
  runs: () => getJson("runs"),
  series: (run, layer, quantity, timeline) =>
    getPayload("series", [["run", run], ["layer", layer], ["quantity", quantity], ["timeline", timeline]]),
  compare: (runs, layer) => getPayload("compare", [...runs.map((run) => ["run", run]), ["layer", layer]]),
  // One aligned slot across runs: `pairs` = [[run, its layer path], ...].
  compareSlot: (pairs) => getPayload("compare", pairs.flatMap(([run, path]) => [["run", run], ["layer", path]])),
  alignment: (runs, match) => getJson("alignment", [...runs.map((run) => ["run", run]), ["match", match]]),
  modes: (run) => getPayload("modes", [["run", run]]),
  layerStep: (run, layer, step) =>
    getPayload("layer_step", [["run", run], ["layer", layer], ["step", step]]),
  findings: (runs, match) => getJson("findings", [...runs.map((run) => ["run", run]), ["match", match]]),
};
