// The page's room event log (static/events.js), read markers (static/unread.js)
// and search snippets (static/search.js) under `node --test`.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { REACTIONS, ingest, messageActions, reactionList } from "../../static/events.js";
import { snippetParts } from "../../static/search.js";
import { firstUnread, fromServer, markSeen, newReadState, unreadCounts } from "../../static/unread.js";

const msg = (seq, name = "ann", text = `m${seq}`, extra = {}) => ({ type: "message", seq, name, text, ts: seq * 1000, ...extra });
const edit = (seq, target, text, name = "ann") => ({ type: "edit", seq, target, text, name, ts: seq * 1000 });
const del = (seq, target, name = "ann") => ({ type: "delete", seq, target, name, ts: seq * 1000 });
const react = (seq, target, emoji, on, name = "bo") => ({ type: "reaction", seq, target, emoji, on, name, ts: seq * 1000 });
const log = () => ({ messages: [], seqs: new Set() });

test("edits, deletions and reactions change the message they target", () => {
  const room = log();
  ingest(room, [msg(1), msg(2)]);
  const { added, changed } = ingest(room, [edit(3, 1, "fixed"), react(4, 2, "🎉", true), react(5, 2, "👍", true, "cy"), del(6, 2)]);
  assert.deepEqual(added, []);
  assert.deepEqual(changed.map((m) => m.seq), [1, 2]);
  const [first, second] = room.messages;
  assert.equal(first.text, "fixed");
  assert.equal(first.edited, 3000);
  assert.equal(second.deleted, true);
  assert.equal(second.text, "", "a tombstone keeps no text");
  assert.deepEqual(second.reactions, [], "nor reactions");
});

test("reaction chips follow REACTIONS order and count each name once", () => {
  const room = log();
  ingest(room, [msg(1)]);
  ingest(room, [react(2, 1, "👀", true), react(3, 1, "👍", true, "cy"), react(4, 1, "👍", true, "bo")]);
  assert.deepEqual(room.messages[0].reactions, [["👍", ["cy", "bo"]], ["👀", ["bo"]]]);
  ingest(room, [react(5, 1, "👍", false, "cy"), react(6, 1, "👀", false)]);
  assert.deepEqual(room.messages[0].reactions, [["👍", ["bo"]]]);
  assert.deepEqual(reactionList({ "🚀": ["a"], "👎": ["b", "b"], "😄": [] }), [["👎", ["b"]], ["🚀", ["a"]]]);
  assert.equal(REACTIONS.length, 8);
});

test("an event seen twice is applied once: a reaction toggled off stays off", () => {
  const room = log();
  ingest(room, [msg(1), react(2, 1, "👍", true), react(3, 1, "👍", false)]);
  const again = ingest(room, [react(2, 1, "👍", true)]);
  assert.deepEqual(again.changed, []);
  assert.deepEqual(room.messages[0].reactions, []);
});

test("a resume of messages as they are now plus the events after them ends in the server's state", () => {
  // The server holds: 1 edited at 3 then at 5 ("b"), 👍 by bo on at 4, off at 6.
  const room = log();
  const { added } = ingest(room, [
    react(6, 1, "👍", false),
    msg(1, "ann", "b", { edited: 5000 }),
    edit(3, 1, "a"),
    react(4, 1, "👍", true),
    edit(5, 1, "b"),
    msg(2, "bo", "x", { reactions: { "🎉": ["ann"] }, mentions: ["ann"] }),
  ]);
  assert.deepEqual(added.map((m) => m.seq), [1, 2]);
  assert.deepEqual(room.messages.map((m) => [m.seq, m.text, m.reactions]), [
    [1, "b", []],
    [2, "x", [["🎉", ["ann"]]]],
  ]);
  assert.deepEqual(room.messages[1].mentions, ["ann"]);
  assert.deepEqual([...room.seqs].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6]);
});

test("an edit or reaction after a deletion changes nothing; a target not loaded is skipped", () => {
  const room = log();
  ingest(room, [msg(5, "ann", "", { deleted: true })]);
  const { changed } = ingest(room, [edit(6, 5, ""), react(7, 5, "👍", true), edit(8, 2, "older")]);
  assert.deepEqual(changed, []);
  assert.equal(room.messages[0].text, "");
  assert.deepEqual(room.messages.map((m) => m.seq), [5]);
});

test("malformed events are ignored", () => {
  const room = log();
  const { added } = ingest(room, [{ type: "edit", seq: 1, target: "x", text: "a", name: "a" }, { type: "poke", seq: 2, name: "a" }, msg(3)]);
  assert.deepEqual(added.map((m) => m.seq), [3]);
  assert.deepEqual([...room.seqs], [3]);
});

test("the page offers edit and delete on my own messages, delete to moderators, react to guests only in public rooms", () => {
  const mine = { name: "me", guest: false, deleted: false };
  const theirs = { name: "ann", guest: false, deleted: false };
  const ctx = { me: "me", account: true, role: "member", visibility: "private" };
  assert.deepEqual(messageActions(mine, ctx), { edit: true, delete: true, react: true });
  assert.deepEqual(messageActions(theirs, ctx), { edit: false, delete: false, react: true });
  assert.deepEqual(messageActions(theirs, { ...ctx, role: "moderator" }), { edit: false, delete: true, react: true });
  // A guest's message under my name is not mine.
  assert.equal(messageActions({ ...mine, guest: true }, ctx).edit, false);
  const guest = { me: "me", account: false, role: null, visibility: "public" };
  assert.deepEqual(messageActions({ ...mine, guest: true }, guest), { edit: false, delete: false, react: true });
  assert.equal(messageActions(theirs, { ...guest, visibility: "private" }).react, false);
  assert.deepEqual(messageActions({ ...theirs, deleted: true }, ctx), { edit: false, delete: false, react: false });
});

test("the page offers exactly the server's reactions, in its order (chat/core/model.py REACTIONS)", () => {
  const model = readFileSync(new URL("../../chat/core/model.py", import.meta.url), "utf8");
  const line = /^REACTIONS = \((.*)\)$/m.exec(model);
  assert.ok(line, "REACTIONS not found in chat/core/model.py");
  assert.deepEqual([...REACTIONS], [...line[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]));
});

// -- read markers ----------------------------------------------------------

function roomOf(frames) {
  const room = log();
  ingest(room, frames);
  return room;
}

const view = (room, extra = {}) => ({ messages: room.messages, hasOlder: false, me: "me", account: true, ...extra });

test("unread counts messages after the marker, not mine and not deleted; mentions of me apart", () => {
  const room = roomOf([msg(1), msg(2, "me"), msg(3, "ann", "hi @me", { mentions: ["me"] }), msg(4, "bo", "", { deleted: true }), msg(5, "me", "as guest", { guest: true })]);
  const state = fromServer(newReadState(), { read: 1, unread: 99, mentions: 9 }, 5);
  // Everything after the marker is loaded: the page counts for itself.
  assert.deepEqual(unreadCounts(state, view(room)), { unread: 2, mentions: 1 });
  assert.equal(firstUnread(state, view(room)), 3);
  assert.deepEqual(unreadCounts(markSeen(state, 5), view(room)), { unread: 0, mentions: 0 });
  assert.equal(firstUnread(markSeen(state, 5), view(room)), null);
});

test("when messages after the marker are not loaded, the server's figure counts, plus what came since", () => {
  const room = roomOf([msg(100), msg(101, "ann", "@me", { mentions: ["me"] }), msg(102)]);
  const state = fromServer(newReadState(), { read: 10, unread: 90, mentions: 2 }, 101);
  assert.deepEqual(unreadCounts(state, view(room, { hasOlder: true })), { unread: 91, mentions: 2 });
  // A welcome's figures (before the join): nothing is added on top.
  const early = fromServer(newReadState(), { read: 10, unread: 90, mentions: 2 }, Infinity);
  assert.deepEqual(unreadCounts(early, view(room, { hasOlder: true })), { unread: 90, mentions: 2 });
});

test("the marker only moves forward; stale server figures are dropped", () => {
  let state = fromServer(newReadState(), { read: 5, unread: 1, mentions: 0 }, 6);
  state = markSeen(state, 9);
  assert.equal(markSeen(state, 7), state);
  const stale = fromServer(state, { read: 6, unread: 3, mentions: 1 }, 9);
  assert.equal(stale.marker, 9);
  assert.equal(stale.base, null);
  const other = fromServer(state, { read: 12, unread: 0, mentions: 0 }, 12);
  assert.deepEqual(other, { marker: 12, base: { unread: 0, mentions: 0, at: 12 } });
  assert.deepEqual(unreadCounts(newReadState(), view(roomOf([msg(1)]))), { unread: 0, mentions: 0 });
});

// -- search snippets --------------------------------------------------------

test("a snippet's [marks] become marked parts; anything else stays text", () => {
  assert.deepEqual(snippetParts("a [cat] and [dog]s"), [
    { text: "a ", mark: false },
    { text: "cat", mark: true },
    { text: " and ", mark: false },
    { text: "dog", mark: true },
    { text: "s", mark: false },
  ]);
  assert.deepEqual(snippetParts("<b>[x]</b> [] [open"), [
    { text: "<b>", mark: false },
    { text: "x", mark: true },
    { text: "</b> [] [open", mark: false },
  ]);
  assert.deepEqual(snippetParts(""), []);
  assert.deepEqual(snippetParts(undefined), []);
});
