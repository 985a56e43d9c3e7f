// Edits, deletions, reactions and read markers through ChatSync (static/sync.js)
// over a fake connection: they are seq'd room events like messages.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ChatSync } from "../../static/sync.js";
import { FakeConnection, settle } from "./fakes.mjs";

async function online(t, welcome = { account: true, rooms: [] }, joined = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const conn = new FakeConnection();
  const sync = new ChatSync(conn, "me");
  const events = [];
  for (const type of ["messages", "changed", "unread"]) sync.addEventListener(type, (e) => events.push([type, e.detail]));
  sync.join("r");
  conn.up({ ...welcome });
  conn.answer("join", {
    type: "joined",
    room: "r",
    members: ["me"],
    last_seq: 2,
    history: [
      { type: "message", seq: 1, name: "ann", text: "one", ts: 1 },
      { type: "message", seq: 2, name: "me", text: "two", ts: 2 },
    ],
    ...joined,
  });
  await settle();
  return { conn, sync, events, room: sync.rooms.get("r") };
}

test("a live edit, reaction and deletion change their message and move the cursor", async (t) => {
  const { conn, events, room } = await online(t);
  events.length = 0;
  conn.push({ type: "edit", room: "r", seq: 3, target: 1, text: "uno", name: "ann", ts: 3 });
  conn.push({ type: "reaction", room: "r", seq: 4, target: 2, emoji: "👍", on: true, name: "ann", ts: 4 });
  conn.push({ type: "delete", room: "r", seq: 5, target: 1, name: "ann", ts: 5 });
  assert.equal(room.lastSeq, 5);
  assert.deepEqual(room.messages.map((m) => [m.seq, m.text, m.deleted, m.reactions]), [
    [1, "", true, []],
    [2, "two", false, [["👍", ["ann"]]]],
  ]);
  assert.deepEqual(events.filter(([type]) => type === "changed").map(([, d]) => d.changed.map((m) => m.seq)), [[1], [2], [1]]);
});

test("an event that skips ahead makes a hole, filled with history after", async (t) => {
  const { conn, room } = await online(t);
  conn.push({ type: "reaction", room: "r", seq: 5, target: 1, emoji: "🎉", on: true, name: "bo", ts: 5 });
  const fill = conn.pending("history")[0];
  assert.deepEqual([fill.after, fill.limit], [2, 200]);
  conn.answer("history", {
    type: "history",
    room: "r",
    messages: [
      { type: "message", seq: 3, name: "bo", text: "three", ts: 3 },
      { type: "edit", seq: 4, target: 3, text: "three!", name: "bo", ts: 4 },
      { type: "reaction", seq: 5, target: 1, emoji: "🎉", on: true, name: "bo", ts: 5 },
    ],
  });
  await settle();
  assert.deepEqual(room.messages.map((m) => [m.seq, m.text, m.reactions.length]), [
    [1, "one", 1],
    [2, "two", 0],
    [3, "three!", 0],
  ]);
  assert.deepEqual(room.holes, []);
});

test("my edit is sent and its reply applied once, though the room's copy comes too", async (t) => {
  const { conn, sync, room } = await online(t);
  const done = sync.edit("r", 2, "deux");
  const frame = conn.answer("edit", { type: "edit", room: "r", seq: 3, target: 2, text: "deux", name: "me", ts: 3 });
  assert.deepEqual([frame.room, frame.seq, frame.text], ["r", 2, "deux"]);
  assert.equal(await done, true);
  conn.push({ type: "edit", room: "r", seq: 3, target: 2, text: "deux", name: "me", ts: 3 });
  assert.equal(room.messages[1].text, "deux");
  assert.equal(room.lastSeq, 3);
  // A refusal comes back as a notice and false.
  const notices = [];
  sync.addEventListener("notice", (e) => notices.push(e.detail.code));
  const refused = sync.react("r", 1, "🙃");
  conn.refuseRequest("react", "bad_request");
  assert.equal(await refused, false);
  assert.deepEqual(notices, ["bad_request"]);
});

test("the server's marker counts unread; reading sends one debounced read frame", async (t) => {
  const { conn, sync } = await online(
    t,
    { account: true, rooms: [{ room: "r", title: "r", visibility: "public", kind: "room", role: "member", read: 0, unread: 1, mentions: 0 }] },
    { read: 0, unread: 1, mentions: 0 },
  );
  assert.deepEqual(sync.unreadOf("r"), { unread: 1, mentions: 0 });
  conn.push({ type: "message", room: "r", seq: 3, name: "ann", text: "hey @me", ts: 3, mentions: ["me"] });
  assert.deepEqual(sync.unreadOf("r"), { unread: 2, mentions: 1 });
  sync.markRead("r");
  sync.markRead("r");
  assert.deepEqual(sync.unreadOf("r"), { unread: 0, mentions: 0 });
  assert.deepEqual(conn.pending("read"), []);
  t.mock.timers.tick(800);
  assert.deepEqual(conn.pending("read").map((f) => f.seq), [3]);
  conn.answer("read", { type: "read", room: "r", seq: 3, unread: 0, mentions: 0 });
  await settle();
  // Another device read further (a message we have not got yet, seq 4).
  conn.push({ type: "read", room: "r", seq: 4, unread: 0, mentions: 0 });
  assert.equal(sync.rooms.get("r").read.marker, 4);
});

test("a guest's marker is the page's own: what was there at the first join is read", async (t) => {
  const { conn, sync } = await online(t, { account: false, guest: true });
  assert.deepEqual(sync.unreadOf("r"), { unread: 0, mentions: 0 });
  conn.push({ type: "message", room: "r", seq: 3, name: "ann", text: "new", ts: 3 });
  assert.deepEqual(sync.unreadOf("r"), { unread: 1, mentions: 0 });
  sync.markRead("r");
  t.mock.timers.tick(1000);
  assert.deepEqual(conn.pending("read"), [], "guests have no server marker");
  assert.deepEqual(sync.unreadOf("r"), { unread: 0, mentions: 0 });
});

test("an account's first visit to a public room: its history is not unread, and the server is told", async (t) => {
  const { conn, sync } = await online(t, { account: true, rooms: [] }, { read: 0, unread: 1, mentions: 0 });
  assert.deepEqual(sync.unreadOf("r"), { unread: 0, mentions: 0 });
  t.mock.timers.tick(800);
  assert.deepEqual(conn.pending("read").map((f) => [f.room, f.seq]), [["r", 2]]);
});

test("reads waiting for their debounce go out at once when flushed (leaving the room or the tab)", async (t) => {
  const { conn, sync } = await online(t, { account: true, rooms: [{ room: "r", title: "r", visibility: "public", kind: "room", role: "member", read: 1, unread: 0, mentions: 0 }] });
  sync.markRead("r");
  assert.deepEqual(conn.pending("read"), []);
  sync.flushReads();
  assert.deepEqual(conn.pending("read").map((f) => f.seq), [2]);
  t.mock.timers.tick(1000);
  assert.equal(conn.pending("read").length, 1, "the debounced send does not repeat it");
});

test("a marker moved while offline is sent again after the resume", async (t) => {
  const { conn, sync } = await online(t, { account: true, rooms: [{ room: "r", title: "r", visibility: "public", kind: "room", role: "member", read: 1, unread: 0, mentions: 0 }] });
  conn.down();
  sync.markRead("r");
  t.mock.timers.tick(800); // the debounced send finds no link
  conn.up({ account: true, rooms: [{ room: "r", title: "r", visibility: "public", kind: "room", role: "member", read: 1, unread: 1, mentions: 0 }] });
  conn.answer("join", { type: "joined", room: "r", members: ["me"], last_seq: 2, history: [], read: 1, unread: 1, mentions: 0 });
  await settle();
  assert.deepEqual(sync.unreadOf("r"), { unread: 0, mentions: 0 });
  t.mock.timers.tick(800);
  assert.deepEqual(conn.pending("read").map((f) => f.seq), [2]);
});
