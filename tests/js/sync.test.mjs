// The page's outbox (static/sync.js, static/pending.js) under `node --test`:
// order of says on every retry path, and messages kept across a reload.
// Run: node --test tests/js/

import assert from "node:assert/strict";
import { test } from "node:test";

import { PendingStore } from "../../static/pending.js";
import { ChatSync } from "../../static/sync.js";
import { FakeConnection, MemoryStorage, settle } from "./fakes.mjs";

/** A page online in room "r", with its outbox kept in `storage`. */
async function page(t, storage = new MemoryStorage()) {
  // Fake timers: retries and the directory refresh run only when the test says.
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const conn = new FakeConnection();
  const sync = new ChatSync(conn, "me", new PendingStore(storage, "me"));
  sync.join("r");
  sync.restorePending();
  conn.up();
  conn.joined();
  await settle();
  return { conn, sync, storage };
}

/** Acknowledge says one by one until none is in flight; the texts stored, in order. */
async function drain(conn) {
  const stored = [];
  while (conn.says().length) {
    stored.push(conn.ack().text);
    await settle();
  }
  return stored;
}

const texts = (frames) => frames.map((f) => f.text);

test("says go out one at a time, each after the one before is stored", async (t) => {
  const { conn, sync } = await page(t);
  for (const text of ["m0", "m1", "m2", "m3"]) sync.say("r", text);
  assert.deepEqual(texts(conn.says()), ["m0"]);
  assert.deepEqual(await drain(conn), ["m0", "m1", "m2", "m3"]);
  assert.equal(sync.rooms.get("r").outbox.length, 0);
});

for (const code of ["unavailable", "rate_limited"]) {
  test(`a say answered ${code} is sent again, same ref, before anything typed after it`, async (t) => {
    const { conn, sync } = await page(t);
    for (const text of ["m0", "m1", "m2"]) sync.say("r", text);
    assert.equal(conn.ack().text, "m0");
    await settle();
    const refused = conn.refuse(code);
    assert.equal(refused.text, "m1");
    await settle();
    assert.deepEqual(conn.says(), [], "nothing overtakes the refused say while it waits");
    const room = sync.rooms.get("r");
    assert.deepEqual(room.outbox.map((e) => [e.text, e.state]), [["m1", "sending"], ["m2", "sending"]]);

    // Refused again: the wait doubles, and m2 still waits.
    t.mock.timers.tick(250);
    await settle();
    assert.deepEqual(conn.says().map((f) => [f.text, f.ref]), [["m1", refused.ref]]);
    conn.refuse(code);
    await settle();
    t.mock.timers.tick(499);
    await settle();
    assert.deepEqual(conn.says(), []);
    t.mock.timers.tick(1);
    await settle();
    assert.deepEqual(await drain(conn), ["m1", "m2"]);
  });
}

test("a say that got no answer in time is sent again with its ref, then the rest", async (t) => {
  const { conn, sync } = await page(t);
  sync.say("r", "m0");
  sync.say("r", "m1");
  const first = conn.says()[0];
  conn.refuse("timeout");
  await settle();
  t.mock.timers.tick(250);
  await settle();
  assert.equal(conn.says()[0].ref, first.ref);
  assert.deepEqual(await drain(conn), ["m0", "m1"]);
});

test("after a reconnect the outbox goes out again from its oldest entry, in order", async (t) => {
  const { conn, sync } = await page(t);
  for (const text of ["m0", "m1", "m2"]) sync.say("r", text);
  assert.equal(conn.ack().text, "m0");
  await settle();
  const lost = conn.says()[0]; // m1: in flight when the link drops
  conn.down();
  await settle();
  sync.say("r", "m3"); // typed while offline
  conn.up();
  assert.deepEqual(conn.says(), [], "nothing is said before the room is joined again");
  conn.joined(1);
  await settle();
  assert.deepEqual(conn.says().map((f) => [f.text, f.ref]), [["m1", lost.ref]]);
  assert.deepEqual(await drain(conn), ["m1", "m2", "m3"]);
});

test("a reconnect during a retry's wait sends the head at once after the rejoin", async (t) => {
  const { conn, sync } = await page(t);
  sync.say("r", "m0");
  sync.say("r", "m1");
  conn.refuse("unavailable");
  await settle();
  conn.down();
  conn.up();
  conn.joined();
  await settle();
  assert.deepEqual(texts(conn.says()), ["m0"]);
  assert.deepEqual(await drain(conn), ["m0", "m1"]);
});

test("a say refused for good is shown failed and the rest go on; retry sends it last", async (t) => {
  const { conn, sync } = await page(t);
  for (const text of ["m0", "too long", "m2"]) sync.say("r", text);
  conn.ack();
  await settle();
  conn.refuse("too_long");
  await settle();
  assert.deepEqual(texts(conn.says()), ["m2"]);
  conn.ack();
  await settle();
  const room = sync.rooms.get("r");
  assert.deepEqual(room.outbox.map((e) => [e.text, e.state, e.error]), [["too long", "failed", "too_long (test)"]]);
  sync.retry("r", room.outbox[0].ref);
  await settle();
  assert.deepEqual(texts(conn.says()), ["too long"]);
});

test("every unacknowledged say is in storage until its acknowledgement, and no longer", async (t) => {
  const { conn, sync, storage } = await page(t);
  sync.say("r", "m0");
  sync.say("r", "m1");
  const saved = () => new PendingStore(storage, "me").load().map((e) => e.text);
  assert.deepEqual(saved(), ["m0", "m1"]);
  conn.ack();
  await settle();
  assert.deepEqual(saved(), ["m1"]);
  conn.ack();
  await settle();
  assert.deepEqual(saved(), []);
});

test("a reloaded page sends what the last one left unacknowledged, same refs, in order", async (t) => {
  const storage = new MemoryStorage();
  const before = await page(t, storage);
  for (let i = 0; i < 5; i++) before.sync.say("r", `m${i}`);
  before.conn.ack();
  await settle();
  const inFlight = before.conn.says()[0]; // m1: maybe stored, its answer lost with the page
  const refs = before.sync.rooms.get("r").outbox.map((e) => e.ref);
  before.conn.down();
  t.mock.timers.reset();

  const after = await page(t, storage);
  const room = after.sync.rooms.get("r");
  assert.deepEqual(room.outbox.map((e) => [e.text, e.state]), [["m1", "sending"], ["m2", "sending"], ["m3", "sending"], ["m4", "sending"]]);
  assert.deepEqual(room.outbox.map((e) => e.ref), refs);
  assert.deepEqual(after.conn.says().map((f) => [f.text, f.ref]), [["m1", inFlight.ref]]);
  // Typed after the reload: goes after the restored ones.
  after.sync.say("r", "m5");
  assert.deepEqual(await drain(after.conn), ["m1", "m2", "m3", "m4", "m5"]);
  assert.deepEqual(new PendingStore(storage, "me").load(), []);
});

test("restored messages join their room, and a failed one stays failed", async (t) => {
  const storage = new MemoryStorage();
  const earlier = new PendingStore(storage, "me");
  earlier.put({ room: "elsewhere", ref: "s-1", text: "hi there", order: earlier.nextOrder(), failed: false, error: null });
  earlier.put({ room: "r", ref: "s-2", text: "too long", order: earlier.nextOrder(), failed: true, error: "too long" });
  const { conn, sync } = await page(t, storage);
  assert.deepEqual([...sync.rooms.keys()], ["r", "elsewhere"]);
  assert.deepEqual(sync.rooms.get("r").outbox.map((e) => e.state), ["failed"]);
  assert.deepEqual(conn.says(), []); // not before #elsewhere is joined
  conn.joined();
  await settle();
  assert.deepEqual(conn.says().map((f) => [f.room, f.text, f.ref]), [["elsewhere", "hi there", "s-1"]]);
});

test("leaving a room or discarding a message forgets it in storage too", async (t) => {
  const { conn, sync, storage } = await page(t);
  sync.join("other");
  sync.say("r", "sent");
  sync.say("r", "dropped");
  sync.say("other", "left behind");
  conn.refuse("too_long");
  await settle();
  conn.refuse("too_long");
  await settle();
  const dropped = sync.rooms.get("r").outbox[1];
  sync.discard("r", dropped.ref);
  sync.leave("other");
  assert.deepEqual(new PendingStore(storage, "me").load().map((e) => e.text), ["sent"]);
});

test("over the rate the wait stops growing at a second; a store outage waits longer", async (t) => {
  const { conn, sync } = await page(t);
  sync.say("r", "m0");
  sync.say("r", "m1");
  const waits = {};
  for (const code of ["rate_limited", "unavailable"]) {
    for (let i = 0; i < 6; i++) {
      conn.refuse(code);
      await settle();
      // Count the wait until the next try, in steps of 50 ms.
      let waited = 0;
      while (conn.says().length === 0) {
        t.mock.timers.tick(50);
        waited += 50;
        await settle();
      }
      (waits[code] ??= []).push(waited);
    }
    conn.ack(); // m0 stored at last; m1 starts its own count
    await settle();
  }
  assert.deepEqual(waits, {
    rate_limited: [250, 500, 1000, 1000, 1000, 1000],
    unavailable: [250, 500, 1000, 2000, 4000, 8000],
  });
});

test("a late acknowledgement of a try that timed out ends the wait: the next goes out at once", async (t) => {
  const { conn, sync } = await page(t);
  sync.say("r", "m0");
  sync.say("r", "m1");
  const first = conn.says()[0];
  conn.refuse("timeout");
  await settle();
  // The answer to the first try arrives after all, as a frame nobody awaits.
  conn.dispatchEvent(
    new CustomEvent("frame", { detail: { type: "message", room: "r", seq: 1, name: "me", text: "m0", ts: 1, ref: first.ref } }),
  );
  await settle();
  assert.deepEqual(texts(conn.says()), ["m1"]);
  assert.deepEqual(sync.rooms.get("r").messages.map((m) => m.text), ["m0"]);
});

test("no typing notice while our own says are still going out", async (t) => {
  const { conn, sync } = await page(t);
  const typingFrames = () => conn.sent.filter((f) => f.type === "typing").length;
  sync.say("r", "m0");
  sync.typing("r");
  assert.equal(typingFrames(), 0);
  conn.ack();
  await settle();
  sync.typing("r");
  assert.equal(typingFrames(), 1);
});
