// Accounts' rooms in the page (static/rooms.js, static/sync.js) under `node --test`:
// the room list from welcome and invited, DMs apart, removal, roles, and
// which controls the page offers to whom.
// Run: node --test tests/js/

import assert from "node:assert/strict";
import { test } from "node:test";

import { allowed, memberRows, roomInfo, roomLabel, sidebarLists } from "../../static/rooms.js";
import { ChatSync } from "../../static/sync.js";
import { FakeConnection, settle } from "./fakes.mjs";

const PRIV = "~abcdefghijklmnopqrst";
const DM = "~dmdmdmdmdmdmdmdmdmdm";
const GONE = "~gonegonegonegonegone";

const team = { room: PRIV, title: "Team", visibility: "private", kind: "room", role: "owner" };
const dmWithAnn = { room: DM, title: "", visibility: "private", kind: "dm", role: "member", people: ["me", "ann"] };

/** A page signed in as the account "me", online, with `rooms` in its welcome. */
function accountPage(t, rooms, remembered = []) {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const conn = new FakeConnection();
  const sync = new ChatSync(conn, "me");
  for (const id of remembered) sync.join(id);
  conn.up({ account: true, admin: false, guest: false, rooms });
  return { conn, sync };
}

test("an account's rooms from welcome are all joined; a remembered private room not listed is dropped", (t) => {
  const { conn, sync } = accountPage(t, [team, dmWithAnn], ["lobby", GONE]);
  assert.deepEqual([...sync.rooms.keys()].sort(), [DM, PRIV, "lobby"].sort());
  assert.deepEqual(conn.pending("join").map((f) => f.room).sort(), [DM, PRIV, "lobby"].sort());
  assert.ok(!conn.sent.some((f) => f.room === GONE), "no join for a room we were removed from while away");
  assert.equal(sync.account, true);
  assert.equal(sync.rooms.get(PRIV).info.role, "owner");
});

test("DMs get a list of their own, titled by the other people; public rooms not joined are offered", (t) => {
  const { sync } = accountPage(t, [team, dmWithAnn]);
  sync.join("lobby");
  const infos = [...sync.rooms.values()].map((r) => r.info);
  const lists = sidebarLists(infos, [
    { room: "lobby", members: 2 },
    { room: "garden", members: 1 },
    { room: PRIV, visibility: "private" },
  ]);
  assert.deepEqual(lists.rooms.map((i) => roomLabel(i, "me")), ["Team", "# lobby"]);
  assert.deepEqual(lists.dms.map((i) => roomLabel(i, "me")), ["ann"]);
  assert.deepEqual(lists.others.map((r) => r.room), ["garden"]);
});

test("invited: the room appears and is joined at once", async (t) => {
  const { conn, sync } = accountPage(t, []);
  let changes = 0;
  sync.addEventListener("rooms", () => changes++);
  conn.push({ type: "invited", room: dmWithAnn });
  assert.ok(sync.rooms.has(DM));
  assert.equal(roomLabel(sync.rooms.get(DM).info, "me"), "ann");
  assert.deepEqual(conn.pending("join").map((f) => f.room), [DM]);
  assert.ok(changes > 0);
  // Brought in by someone else: its first messages are news (unread), unlike a room we open.
  assert.equal(sync.rooms.get(DM).fresh, true);
  sync.join("lobby");
  assert.equal(sync.rooms.get("lobby").fresh, false);
});

test("removed: the room empties and leaves the list at once, and is never rejoined", async (t) => {
  const { conn, sync } = accountPage(t, [team]);
  conn.answer("join", { type: "joined", room: PRIV, members: ["me", "ann"], last_seq: 1, history: [{ seq: 1, name: "ann", text: "hi", ts: 1 }], role: "member" });
  await settle();
  const room = sync.rooms.get(PRIV);
  assert.equal(room.messages.length, 1);
  sync.say(PRIV, "unsent");
  const seen = [];
  sync.addEventListener("removed", (e) => seen.push([e.detail.room.name, e.detail.reason, sync.rooms.has(PRIV)]));
  conn.push({ type: "removed", room: PRIV, reason: "banned" });
  assert.deepEqual(seen, [[PRIV, "banned", false]]);
  assert.equal(room.messages.length, 0);
  assert.equal(room.outbox.length, 0);
  // A message that raced the removal is not shown.
  conn.push({ type: "message", room: PRIV, seq: 2, name: "ann", text: "late", ts: 2 });
  assert.equal(room.messages.length, 0);
  // After a reconnect, no join for it.
  conn.down();
  conn.sent.length = 0;
  conn.up({ account: true, rooms: [] });
  assert.ok(!conn.sent.some((f) => f.room === PRIV));
});

test("a role frame about me changes my role in the room; about others, the member list", async (t) => {
  const { conn, sync } = accountPage(t, [{ ...team, role: "member" }]);
  conn.answer("join", { type: "joined", room: PRIV, members: ["me"], last_seq: 0, history: [], role: "member" });
  await settle();
  conn.answer("members", { type: "members", room: PRIV, members: [{ name: "me", role: "member" }, { name: "boss", role: "owner" }] });
  await settle();
  const room = sync.rooms.get(PRIV);
  assert.deepEqual([...room.roster], [["me", "member"], ["boss", "owner"]]);
  conn.push({ type: "role", room: PRIV, name: "me", role: "moderator" });
  assert.equal(room.info.role, "moderator");
  assert.equal(room.roster.get("me"), "moderator");
  conn.push({ type: "role", room: PRIV, name: "boss", role: "owner" });
  assert.equal(room.info.role, "moderator");
});

test("create sends create then join; the room's title and my role come from `created`", async (t) => {
  const { conn, sync } = accountPage(t, []);
  const made = sync.create("  Plans ", "private");
  assert.deepEqual(conn.pending("create").map(({ room, visibility }) => [room, visibility]), [["Plans", "private"]]);
  conn.answer("create", { type: "created", room: PRIV, title: "Plans", visibility: "private", kind: "room", role: "owner" });
  const room = await made;
  assert.equal(room.name, PRIV);
  assert.equal(roomLabel(room.info, "me"), "Plans");
  assert.equal(room.info.role, "owner");
  assert.deepEqual(conn.pending("join").map((f) => f.room), [PRIV]);
  await assert.rejects(sync.create("Not A Name!", "public"), RangeError);
});

test("a DM is asked for by name and joined from `created`", async (t) => {
  const { conn, sync } = accountPage(t, []);
  const started = sync.dm(["ann"]);
  assert.deepEqual(conn.pending("dm").map((f) => f.to), [["ann"]]);
  conn.answer("dm", { type: "created", room: DM, title: "", visibility: "private", kind: "dm", role: "member", people: ["me", "ann"] });
  const room = await started;
  assert.equal(room.info.kind, "dm");
  assert.deepEqual(conn.pending("join").map((f) => f.room), [DM]);
});

test("an account leaves a room for good (remove itself); a guest only stops listening", async (t) => {
  const { conn, sync } = accountPage(t, [{ ...team, role: "member" }]);
  sync.leave(PRIV);
  assert.deepEqual(conn.pending("remove").map(({ room, name }) => [room, name]), [[PRIV, "me"]]);
  assert.ok(!sync.rooms.has(PRIV));

  const guestConn = new FakeConnection();
  const guest = new ChatSync(guestConn, "me");
  guest.join("lobby");
  guestConn.up({ account: false, guest: true, rooms: [] });
  guest.leave("lobby");
  assert.deepEqual(guestConn.pending("leave").map((f) => f.room), ["lobby"]);
});

for (const code of ["not_found", "forbidden"]) {
  test(`a join refused as ${code} drops the room with a notice, and no retry`, async (t) => {
    const { conn, sync } = accountPage(t, [], ["gated"]);
    const notices = [];
    sync.addEventListener("notice", (e) => notices.push(e.detail.code));
    conn.refuseRequest("join", code);
    await settle();
    assert.ok(!sync.rooms.has("gated"));
    assert.deepEqual(notices, [code]);
    t.mock.timers.tick(60_000);
    assert.deepEqual(conn.pending("join"), []);
  });
}

test("guest messages keep their mark", async (t) => {
  const { conn, sync } = accountPage(t, [], ["lobby"]);
  conn.answer("join", { type: "joined", room: "lobby", members: ["me"], last_seq: 1, history: [{ seq: 1, name: "visitor", text: "hey", ts: 1, guest: true }] });
  await settle();
  const room = sync.rooms.get("lobby");
  assert.equal(room.messages[0].guest, true);
  assert.ok(room.guests.has("visitor"));
  conn.push({ type: "message", room: "lobby", seq: 2, name: "ann", text: "hi", ts: 2 });
  assert.equal(room.messages[1].guest, false);
});

test("controls offered follow the room rules: guests none, owners all, moderators below their rank", () => {
  const base = { account: true, kind: "room", visibility: "private" };
  assert.equal(allowed("dm", { ...base, account: false }), false);
  assert.equal(allowed("invite", { ...base, account: false, myRole: "owner" }), false);
  assert.equal(allowed("dm", { ...base, target: "member" }), true);
  assert.equal(allowed("dm", { ...base, targetGuest: true }), false);
  assert.equal(allowed("dm", { ...base, self: true }), false);
  assert.equal(allowed("invite", { ...base, myRole: "moderator" }), true);
  assert.equal(allowed("invite", { ...base, myRole: "member" }), false);
  assert.equal(allowed("invite", { ...base, visibility: "public", myRole: "owner" }), false);
  assert.equal(allowed("remove", { ...base, myRole: "moderator", target: "member" }), true);
  assert.equal(allowed("remove", { ...base, myRole: "moderator", target: "moderator" }), false);
  assert.equal(allowed("ban", { ...base, myRole: "owner", target: "moderator" }), true);
  assert.equal(allowed("ban", { ...base, myRole: "member", target: "member" }), false);
  assert.equal(allowed("unban", { ...base, myRole: "moderator", target: "banned" }), true);
  assert.equal(allowed("moderator", { ...base, myRole: "owner", target: "member" }), true);
  assert.equal(allowed("moderator", { ...base, myRole: "moderator", target: "member" }), false);
  assert.equal(allowed("member", { ...base, myRole: "owner", target: "moderator" }), true);
  assert.equal(allowed("remove", { ...base, kind: "dm", myRole: "member", target: "member" }), false);
  assert.equal(allowed("remove", { ...base, myRole: "moderator", targetGuest: true }), true);
});

test("member rows: me first, then by rank; guests online marked; banned apart", () => {
  const { members, banned } = memberRows({
    roster: new Map([["zed", "member"], ["boss", "owner"], ["me", "moderator"], ["troll", "banned"]]),
    online: new Set(["me", "zed", "visitor"]),
    guests: new Set(["visitor"]),
    me: "me",
  });
  assert.deepEqual(members.map((r) => [r.name, r.role, r.online, r.guest]), [
    ["me", "moderator", true, false],
    ["boss", "owner", false, false],
    ["zed", "member", true, false],
    ["visitor", null, true, true],
  ]);
  assert.deepEqual(banned.map((r) => r.name), ["troll"]);
});

test("roomInfo keeps what a frame leaves out, and a private id is private", () => {
  const info = roomInfo(PRIV);
  assert.equal(info.visibility, "private");
  const joined = roomInfo(PRIV, { title: "Team", role: "member" }, info);
  assert.equal(joined.title, "Team");
  assert.equal(roomInfo(PRIV, { type: "joined" }, joined).role, "member");
  assert.equal(roomLabel(roomInfo("lobby"), "me"), "# lobby");
});

test("members not marked as accounts show as guests, in joined and in presence", async (t) => {
  const { conn, sync } = accountPage(t, [], ["lobby"]);
  conn.answer("join", { type: "joined", room: "lobby", members: ["ann", "me", "visitor"], accounts: ["ann", "me"], last_seq: 0, history: [] });
  await settle();
  const room = sync.rooms.get("lobby");
  assert.deepEqual([...room.guests].sort(), ["visitor"]);
  conn.push({ type: "presence", room: "lobby", event: "join", name: "drifter" });
  conn.push({ type: "presence", room: "lobby", event: "join", name: "bob", account: true });
  assert.ok(room.guests.has("drifter"));
  assert.ok(!room.guests.has("bob"));
  const { members } = memberRows({ roster: room.roster, online: room.members, guests: room.guests, me: "me" });
  assert.equal(members.find((r) => r.name === "drifter").guest, true);
  assert.equal(members.find((r) => r.name === "bob").guest, false);
});

test("a busy room's presence comes as one frame of changes, applied in order", async (t) => {
  const { conn, sync } = accountPage(t, [], ["lobby"]);
  conn.answer("join", { type: "joined", room: "lobby", members: ["ann", "me", "gone"], accounts: ["ann", "me"], last_seq: 0, history: [] });
  await settle();
  const room = sync.rooms.get("lobby");
  let told = 0;
  sync.addEventListener("members", () => told++);
  conn.push({
    type: "presence",
    room: "lobby",
    changes: [
      { event: "join", name: "drifter" },
      { event: "join", name: "bob", account: true },
      { event: "leave", name: "gone" },
      { event: "leave", name: "drifter" },
    ],
  });
  assert.deepEqual([...room.members].sort(), ["ann", "bob", "me"]);
  assert.ok(!room.guests.has("bob"));
  assert.equal(told, 1); // one frame, one redraw
});
