"""The JavaScript installed once in every sandbox context: NodeDrop's expression globals and the Code
node's wrapper, written against the behaviour of NodeDrop's resolver and BunVMService, then a freeze of
every built-in and of the global object, so that code cannot change what later code in the same
context (a later execution, too) sees."""

PRELUDE = r"""
(function () {
  "use strict";
  const parse = JSON.parse, stringify = JSON.stringify;
  const compiled = new Map();
  const MAX_COMPILED = 512;

  // NodeDrop's console inside expressions and Code nodes prints nothing anywhere we could read it.
  const quiet = () => {};
  const console = Object.freeze({ log: quiet, warn: quiet, error: quiet, info: quiet, debug: quiet });

  function pad(n) { return n.toString().padStart(2, "0"); }
  function formatDate(d, format) {
    return format.replace("yyyy", d.getFullYear().toString()).replace("MM", pad(d.getMonth() + 1))
      .replace("dd", pad(d.getDate())).replace("HH", pad(d.getHours()))
      .replace("mm", pad(d.getMinutes())).replace("ss", pad(d.getSeconds()));
  }
  function shifted(d, duration, sign) {
    const r = new Date(d);
    if (duration.days) r.setDate(r.getDate() + duration.days * sign);
    if (duration.hours) r.setHours(r.getHours() + duration.hours * sign);
    if (duration.minutes) r.setMinutes(r.getMinutes() + duration.minutes * sign);
    return { toISO: () => r.toISOString(), toISODate: () => r.toISOString().split("T")[0] };
  }
  function moment(d, withShift) {
    const m = { toISO: () => d.toISOString(), toISODate: () => d.toISOString().split("T")[0],
                toFormat: (f) => formatDate(d, f) };
    if (withShift) { m.plus = (x) => shifted(d, x, 1); m.minus = (x) => shifted(d, x, -1); }
    return m;
  }
  const DateTime = Object.freeze({ now: () => moment(new Date(), true), fromISO: (s) => moment(new Date(s), false) });

  function compile(expression) {
    let fn = compiled.get(expression);
    if (fn === undefined) {
      fn = new Function("$json", "$node", "$vars", "$workflow", "$execution", "console", "DateTime",
        '"use strict";\n' +
        "const $itemIndex = 0, $now = new Date().toISOString(), $today = $now.split('T')[0];\n" +
        "const isExecuted = (n) => { try { return $node[n] !== undefined && $node[n] !== null; }" +
        " catch (e) { return false; } };\n" +
        "const hasData = (n) => { try { const d = $node[n]; if (d === undefined || d === null) return false;" +
        " if (Array.isArray(d)) return d.length > 0; if (typeof d === 'object') return Object.keys(d).length > 0;" +
        " return true; } catch (e) { return false; } };\n" +
        "const getNodeData = (n, dflt = null) => { try { const d = $node[n];" +
        " return (d !== undefined && d !== null) ? d : dflt; } catch (e) { return dflt; } };\n" +
        "const firstExecuted = (names) => { if (!Array.isArray(names)) return null; for (const n of names) {" +
        " if ($node[n] !== undefined && $node[n] !== null) return $node[n]; } return null; };\n" +
        "return (" + expression + "\n);");
      if (compiled.size >= MAX_COMPILED) compiled.clear();
      compiled.set(expression, fn);
    }
    return fn;
  }

  function isLimit(e) {
    if (e === null || typeof e !== "object") return false;
    const text = String(e.message);
    return (e instanceof RangeError && text.includes("call stack")) || text.includes("out of memory");
  }

  // One expression: the answer is JSON {k, v}. k "u": undefined or null (NodeDrop treats both as not
  // resolved), "t": String(result) starts with "{{" (also not resolved), "v": a value, "e": it threw.
  function evaluate(expression, json, node, execution) {
    let result;
    try {
      result = compile(expression)(parse(json), node === null ? {} : parse(node), {}, {},
                                   parse(execution), console, DateTime);
    } catch (e) {
      // Running out of stack or memory is the sandbox's limit, not the expression's error: let it reach
      // Python, which fails the node, instead of leaving the text as NodeDrop does for errors.
      if (isLimit(e)) throw e;
      return stringify({ k: "e", v: String(e && e.message !== undefined ? e.message : e) });
    }
    if (result === undefined || result === null) return '{"k":"u"}';
    if (typeof result === "object" && typeof result.toISO === "function") {
      return stringify({ k: "v", v: result.toISO() });
    }
    if (String(result).startsWith("{{")) return '{"k":"t"}';
    if (typeof result === "function" || typeof result === "symbol" || typeof result === "bigint")
      return stringify({ k: "v", v: String(result) });
    return stringify({ k: "v", v: result });
  }

  // The Code node: NodeDrop runs the code as the body of an async function (sloppy mode) with `items`
  // (the items' json) in scope. The answer is read by Python after the job queue has run.
  let pending = null;
  function startCode(code, items) {
    pending = { done: false };
    const state = pending;
    let promise;
    try {
      const body = "return (async function () {\n" + code + "\n})();";
      promise = new Function("items", "console", body)(parse(items), console);
    } catch (e) {
      state.done = true; state.error = errorText(e);
      return;
    }
    promise.then((value) => { state.done = true; state.value = value; },
                 (e) => { state.done = true; state.error = errorText(e); });
  }
  function errorText(e) {
    return (e !== null && typeof e === "object" && e.message) ? String(e.message) : "Unknown execution error";
  }
  function codeResult() {
    const state = pending;
    if (state === null || !state.done) return '{"k":"p"}';
    pending = null;
    if (state.error !== undefined) return stringify({ k: "e", v: state.error });
    if (state.value === undefined) return '{"k":"u"}';
    return stringify({ k: "v", v: state.value });
  }

  const api = Object.freeze({ evaluate, startCode, codeResult });
  Object.defineProperty(globalThis, "__nd", { value: api, writable: false, configurable: false, enumerable: false });

  // Freeze every built-in reachable from the global object, so that no expression or Code node can
  // change Object.prototype, JSON.parse, Array.prototype.map, ... for the code that runs after it.
  const seen = new Set();
  function freeze(value) {
    if ((typeof value !== "object" && typeof value !== "function") || value === null || seen.has(value)) return;
    seen.add(value);
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) {
      const d = Object.getOwnPropertyDescriptor(value, key);
      if (d === undefined) continue;
      if ("value" in d) freeze(d.value);
      if (d.get) freeze(d.get);
      if (d.set) freeze(d.set);
    }
    freeze(Object.getPrototypeOf(value));
  }
  for (const key of Reflect.ownKeys(globalThis)) {
    if (key !== "globalThis") freeze(globalThis[key]);
  }
  // The context outlives executions: no global may be added or replaced either.
  Object.freeze(globalThis);
  freeze(Object.getPrototypeOf(function* () {}));
  freeze(Object.getPrototypeOf(async function () {}));
  freeze(Object.getPrototypeOf(async function* () {}));
})();
"""
