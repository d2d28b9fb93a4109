// How the tab reaches its data routes (listed in tb_plugin/plugin.py, answered by tb_plugin/routes.py).
// A transport has two methods, each taking a route name and [name, value] parameter pairs:
//   json(route, params)    -> Promise of the parsed JSON answer
//   binary(route, params)  -> Promise of an ArrayBuffer (the format of tb_plugin/payload.py)
// and rejects with Error("<status>: <message>") when the route refuses the request.
// httpTransport: TensorBoard's HTTP routes. widgetTransport: the notebook widget's messages
// (bn_inspect.notebook), answered by the kernel without any server.

/** TensorBoard's routes, relative to `base` (the plugin's URL). */
export function httpTransport(base) {
  async function get(route, params) {
    const url = new URL(route, base);
    for (const [key, value] of params) url.searchParams.append(key, String(value));
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
  return {
    json: async (route, params) => (await get(route, params)).json(),
    binary: async (route, params) => (await get(route, params)).arrayBuffer(),
  };
}

const REQUEST = "bn-inspect:request";
const ANSWER = "bn-inspect:answer";

/**
 * Messages of an anywidget `model`: sends {type: REQUEST, id, route, params, binary} and
 * expects {type: ANSWER, id, json} or {type: ANSWER, id, binary: true} with the payload as
 * its first buffer, or {type: ANSWER, id, status, error}. Several views of one widget share
 * its messages: each keeps to the ids it sent. `close()` stops listening.
 */
export function widgetTransport(model) {
  const pending = new Map();
  const prefix = Math.random().toString(36).slice(2);
  let counter = 0;
  const onMessage = (message, buffers) => {
    if (message?.type !== ANSWER || !pending.has(message.id)) return;
    const {resolve, reject} = pending.get(message.id);
    pending.delete(message.id);
    if (message.error !== undefined) reject(new Error(`${message.status}: ${message.error}`));
    else if (message.binary) resolve(ownBuffer(buffers[0]));
    else resolve(message.json);
  };
  model.on("msg:custom", onMessage);
  function request(route, params, binary) {
    const id = `${prefix}-${++counter}`;
    return new Promise((resolve, reject) => {
      pending.set(id, {resolve, reject});
      model.send({type: REQUEST, id, route, binary, params: params.map(([key, value]) => [key, String(value)])});
    });
  }
  return {
    json: (route, params) => request(route, params, false),
    binary: (route, params) => request(route, params, true),
    close: () => model.off("msg:custom", onMessage),
  };
}

/** A buffer of a widget message (a DataView or an ArrayBuffer) as an ArrayBuffer of its own,
 * so float32 arrays inside it start at offsets relative to the payload. */
function ownBuffer(buffer) {
  if (buffer instanceof ArrayBuffer) return buffer;
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
}
