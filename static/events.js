/**
 * A room's event log, applied to its messages. Pure: no DOM, no network.
 *
 * Every change to a room takes the room's next seq (docs/protocol.md): a
 * `message`, an `edit` of one, a `delete`, a `reaction` toggled. Scrollback
 * (`before`) and a fresh join give messages as they are now (`edited`,
 * `deleted`, `reactions`); live frames, resumes and `after` pages give every
 * event in seq order. Applying the events of a batch in seq order, after its
 * messages, always ends in the state the server holds: an edit sets the text
 * it carries, a reaction says which way it went (`on`) rather than "flip",
 * so an event that the message as it is now already reflects changes nothing.
 */

// chat/core/model.py REACTIONS, in its order: chips are shown in this order.
export const REACTIONS = Object.freeze(["👍", "👎", "😄", "🎉", "😕", "❤️", "🚀", "👀"]);

const KINDS = new Set(["message", "edit", "delete", "reaction"]);

const isName = (v) => typeof v === "string";

/** The kind of a wire event; history entries of an older server carry no type: messages. */
export function kindOf(frame) {
  return frame?.type === undefined ? "message" : frame.type;
}

/** Is `frame` a well-formed room event (message, edit, delete, reaction)? */
export function isEvent(frame) {
  if (frame === null || typeof frame !== "object" || !Number.isInteger(frame.seq) || frame.seq < 1) return false;
  const kind = kindOf(frame);
  if (!KINDS.has(kind) || !isName(frame.name)) return false;
  if (kind === "message") return typeof frame.text === "string" && typeof frame.ts === "number";
  if (!Number.isInteger(frame.target)) return false;
  if (kind === "edit") return typeof frame.text === "string";
  if (kind === "reaction") return typeof frame.emoji === "string" && typeof frame.on === "boolean";
  return true;
}

/** The wire's `{emoji: [names]}` as `[[emoji, [names]], ...]` in REACTIONS order, empty ones left out. */
export function reactionList(wire) {
  if (wire === null || typeof wire !== "object") return [];
  const entries = Array.isArray(wire) ? wire : Object.entries(wire);
  const byEmoji = new Map();
  for (const entry of entries) {
    if (!Array.isArray(entry) || typeof entry[0] !== "string" || !Array.isArray(entry[1])) continue;
    const names = entry[1].filter(isName);
    if (names.length) byEmoji.set(entry[0], [...new Set(names)]);
  }
  return ordered(byEmoji);
}

function ordered(byEmoji) {
  const rank = (e) => {
    const i = REACTIONS.indexOf(e);
    return i < 0 ? REACTIONS.length : i;
  };
  return [...byEmoji].sort((a, b) => rank(a[0]) - rank(b[0]));
}

/** A message frame as the page keeps it. */
export function toMessage(m) {
  const deleted = m.deleted === true;
  return {
    seq: m.seq,
    name: m.name,
    text: deleted ? "" : m.text,
    ts: m.ts,
    guest: m.guest === true,
    edited: typeof m.edited === "number" ? m.edited : null,
    deleted,
    reactions: deleted ? [] : reactionList(m.reactions),
    mentions: Array.isArray(m.mentions) ? m.mentions.filter(isName) : [],
  };
}

/**
 * Apply one edit, delete or reaction event to the message it targets (in
 * place). Returns whether anything on screen changed.
 */
export function applyEvent(msg, event) {
  const kind = kindOf(event);
  if (kind === "delete") {
    if (msg.deleted) return false;
    msg.deleted = true;
    msg.text = "";
    msg.reactions = [];
    return true;
  }
  if (msg.deleted) return false; // an edit or reaction that lost the race with the deletion
  if (kind === "edit") {
    const edited = typeof event.ts === "number" ? event.ts : (msg.edited ?? msg.ts);
    if (msg.text === event.text && msg.edited !== null) return false;
    msg.text = event.text;
    msg.edited = edited;
    return true;
  }
  if (kind === "reaction") {
    const byEmoji = new Map(msg.reactions.map(([e, names]) => [e, [...names]]));
    const names = byEmoji.get(event.emoji) ?? [];
    const has = names.includes(event.name);
    if (has === event.on) return false;
    const next = event.on ? [...names, event.name] : names.filter((n) => n !== event.name);
    if (next.length) byEmoji.set(event.emoji, next);
    else byEmoji.delete(event.emoji);
    msg.reactions = ordered(byEmoji);
    return true;
  }
  return false;
}

/** Binary search for the index where a message of `seq` is or belongs. */
export function indexOfSeq(messages, seq) {
  let lo = 0;
  let hi = messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (messages[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function findMessage(messages, seq) {
  const i = indexOfSeq(messages, seq);
  return messages[i]?.seq === seq ? messages[i] : undefined;
}

/**
 * Take a batch of wire events into a room's log: `log` has `messages`
 * (ascending by seq, no duplicates) and `seqs` (every seq taken in, events
 * included, so that a repeated event is never applied twice). Messages go in
 * first, then the other events in seq order. Returns the messages added
 * (ascending) and the messages already shown that changed (ascending).
 * Events whose target is not loaded change nothing: when that message is
 * fetched later, it comes as it is now.
 */
export function ingest(log, frames) {
  const fresh = [];
  for (const f of frames) {
    if (!isEvent(f) || log.seqs.has(f.seq)) continue;
    log.seqs.add(f.seq);
    fresh.push(f);
  }
  fresh.sort((a, b) => a.seq - b.seq);
  const added = [];
  for (const f of fresh) {
    if (kindOf(f) !== "message") continue;
    const msg = toMessage(f);
    added.push(msg);
    const messages = log.messages;
    if (!messages.length || msg.seq > messages[messages.length - 1].seq) messages.push(msg);
    else messages.splice(indexOfSeq(messages, msg.seq), 0, msg);
  }
  const changed = new Set();
  for (const f of fresh) {
    if (kindOf(f) === "message") continue;
    const msg = findMessage(log.messages, f.target);
    if (msg !== undefined && applyEvent(msg, f)) changed.add(msg);
  }
  const isNew = new Set(added);
  return {
    added,
    changed: [...changed].filter((m) => !isNew.has(m)).sort((a, b) => a.seq - b.seq),
  };
}

/** Is `msg` one the viewer sent (accounts and guests are different people, even by one name)? */
export function isMine(msg, me, account) {
  return msg.name === me && msg.guest !== account;
}

/** What the page offers on a message: edit, delete, react (the server decides; policy.py). */
export function messageActions(msg, { me, account, role, visibility }) {
  if (msg.deleted) return { edit: false, delete: false, react: false };
  const own = account && isMine(msg, me, account);
  return {
    edit: own,
    delete: own || (account && (role === "owner" || role === "moderator")),
    react: account || visibility === "public",
  };
}
