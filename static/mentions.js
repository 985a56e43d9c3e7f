/**
 * Offering member names while typing `@`: which partial name is at the caret,
 * which names fit it, and the text once one is picked. Pure: no DOM.
 *
 * A mention ends where the server's does (chat/core/changes.py _MENTION): at
 * white space, `@` or punctuation.
 */

const PARTIAL = /(^|[\s(])@([^\s@,.:;!?()[\]{}<>"']{0,32})$/u;

/** The "@partial" being typed just before `caret`: {start (of the @), query}, or null. */
export function mentionAt(text, caret) {
  const match = PARTIAL.exec(text.slice(0, caret));
  if (match === null) return null;
  return { start: caret - match[2].length - 1, query: match[2] };
}

/** Up to `limit` of `names` starting with `query` (any case), me left out, by name. */
export function suggest(names, query, me, limit = 5) {
  const q = query.toLowerCase();
  return [...new Set(names)]
    .filter((n) => n !== me && n.toLowerCase().startsWith(q))
    .sort((a, b) => a.localeCompare(b))
    .slice(0, limit);
}

/** `text` with the partial at `at` (mentionAt) replaced by "@name ", and where the caret goes. */
export function complete(text, at, caret, name) {
  const head = `${text.slice(0, at.start)}@${name} `;
  const tail = text.slice(caret).replace(/^ /, "");
  return { text: head + tail, caret: head.length };
}
