/**
 * Search results, pure: the server marks the matched words of a snippet with
 * "[" and "]" in plain text; the page shows them as <mark> elements built with
 * textContent (view.js), never as HTML.
 */

/** "a [cat] sat" -> [{text: "a ", mark: false}, {text: "cat", mark: true}, {text: " sat", mark: false}]. */
export function snippetParts(snippet) {
  const parts = [];
  const push = (text, mark) => {
    if (text === "") return;
    const last = parts[parts.length - 1];
    if (last !== undefined && last.mark === mark) last.text += text;
    else parts.push({ text, mark });
  };
  let rest = typeof snippet === "string" ? snippet : "";
  while (rest !== "") {
    const open = rest.indexOf("[");
    const close = open < 0 ? -1 : rest.indexOf("]", open + 1);
    if (open < 0 || close < 0) {
      // No (complete) mark left: the rest is plain text, brackets and all.
      push(rest, false);
      break;
    }
    push(rest.slice(0, open), false);
    const inner = rest.slice(open + 1, close);
    // "[]" marks nothing: keep it as typed.
    if (inner === "") push("[]", false);
    else push(inner, true);
    rest = rest.slice(close + 1);
  }
  return parts;
}

/** A search frame for the words typed, scoped to one room or not; null when there is nothing to look for. */
export function searchFrame(raw, room = null) {
  const q = raw.trim();
  if (q === "") return null;
  const frame = { type: "search", q };
  if (room !== null) frame.room = room;
  return frame;
}

/** Well-formed hits only: a room, a seq, a name, a time and a snippet. */
export function hits(reply) {
  const results = Array.isArray(reply?.results) ? reply.results : [];
  return results.filter(
    (h) =>
      h !== null &&
      typeof h === "object" &&
      typeof h.room === "string" &&
      Number.isInteger(h.seq) &&
      typeof h.name === "string" &&
      typeof h.ts === "number" &&
      typeof h.snippet === "string",
  );
}
