/**
 * Read markers and unread counts. Pure: no DOM, no network.
 *
 * An account's marker lives on the server (`read` frames; `welcome.rooms[]`
 * and `joined` carry `read`, `unread`, `mentions`), so every device agrees.
 * A guest has no server marker: the page keeps one of its own, starting at
 * the newest seq when the room is first joined (what was there before is not
 * news to someone who just walked in).
 *
 * The count is the server's wherever the page cannot see all of it: when
 * every message after the marker is loaded, the page counts them itself
 * (deletions, its own messages and messages that arrived since all come
 * out right); otherwise it is the server's figure plus the messages that
 * arrived after the seq the figure was given at.
 */

import { isMine } from "./events.js";

/** A room's reading position: marker null until the server (or a first join) says. */
export function newReadState() {
  return { marker: null, base: null };
}

/**
 * The server's word on a room: `frame` has `read`, `unread`, `mentions`;
 * `at` is the newest seq the figures cover (a `joined`'s last_seq; Infinity
 * when nothing newer can have been counted yet). The marker only moves
 * forward; figures that come with an older marker than ours are stale.
 */
export function fromServer(state, frame, at) {
  if (!Number.isInteger(frame?.read)) return state;
  const marker = state.marker === null ? frame.read : Math.max(state.marker, frame.read);
  if (frame.read < marker) return { ...state, marker };
  const unread = Number.isInteger(frame.unread) ? frame.unread : 0;
  const mentions = Number.isInteger(frame.mentions) ? frame.mentions : 0;
  return { marker, base: { unread, mentions, at } };
}

/** The user has seen up to `seq`: the marker moves there (forward only). */
export function markSeen(state, seq) {
  if (state.marker !== null && seq <= state.marker) return state;
  return { marker: seq, base: null };
}

function counts(msg, me, account) {
  if (msg.deleted || isMine(msg, me, account)) return null;
  return msg.mentions.includes(me);
}

/**
 * Unread messages and mentions of a room: `messages` ascending, `hasOlder`
 * whether older ones exist that are not loaded.
 */
export function unreadCounts(state, { messages, hasOlder, me, account }) {
  if (state.marker === null) return { unread: 0, mentions: 0 };
  const firstSeq = messages.length ? messages[0].seq : Infinity;
  const complete = !hasOlder || state.marker >= firstSeq - 1 || state.base === null;
  const from = complete ? state.marker : Math.max(state.marker, state.base.at);
  let unread = complete ? 0 : state.base.unread;
  let mentions = complete ? 0 : state.base.mentions;
  for (let i = messages.length - 1; i >= 0 && messages[i].seq > from; i--) {
    const mention = counts(messages[i], me, account);
    if (mention === null) continue;
    unread += 1;
    if (mention) mentions += 1;
  }
  return { unread, mentions };
}

/** The first message after the marker that someone else wrote: where "new since you left" goes. */
export function firstUnread(state, { messages, me, account }) {
  if (state.marker === null) return null;
  for (const msg of messages) {
    if (msg.seq > state.marker && counts(msg, me, account) !== null) return msg.seq;
  }
  return null;
}

/** Does this message name me (and so deserve a highlight, and maybe a notification)? */
export function mentionsMe(msg, me) {
  return !msg.deleted && msg.mentions.includes(me);
}
