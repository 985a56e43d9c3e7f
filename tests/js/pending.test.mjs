// static/pending.js under `node --test`: what the browser's storage keeps.

import assert from "node:assert/strict";
import { test } from "node:test";

import { PendingStore } from "../../static/pending.js";
import { MemoryStorage } from "./fakes.mjs";

const entry = (store, ref, text, room = "r") => ({ room, ref, text, order: store.nextOrder(), failed: false, error: null });

test("entries load in the order they were typed, whatever order the keys are in", () => {
  const storage = new MemoryStorage();
  const store = new PendingStore(storage, "ann");
  const a = entry(store, "s-z", "first");
  const b = entry(store, "s-a", "second");
  store.put(b);
  store.put(a);
  assert.deepEqual(new PendingStore(storage, "ann").load().map((e) => e.text), ["first", "second"]);
});

test("orders keep increasing within a millisecond and after a reload", () => {
  const storage = new MemoryStorage();
  const store = new PendingStore(storage, "ann");
  const first = store.nextOrder(1000);
  const second = store.nextOrder(1000);
  assert.ok(second > first);
  store.put({ room: "r", ref: "s-1", text: "x", order: second });
  // A clock that went back: the next page still orders after what it loaded.
  const reloaded = new PendingStore(storage, "ann");
  reloaded.load();
  assert.ok(reloaded.nextOrder(999) > second);
});

test("each name has its own entries, even one that is a prefix of another", () => {
  const storage = new MemoryStorage();
  const a = new PendingStore(storage, "a");
  const ab = new PendingStore(storage, "a:b");
  a.put(entry(a, "s-1", "from a"));
  ab.put(entry(ab, "s-2", "from a:b"));
  assert.deepEqual(a.load().map((e) => e.text), ["from a"]);
  assert.deepEqual(ab.load().map((e) => e.text), ["from a:b"]);
  a.clear();
  assert.deepEqual(a.load(), []);
  assert.deepEqual(ab.load().map((e) => e.text), ["from a:b"]);
});

test("the page's other keys are never read as entries, whatever the name", () => {
  const storage = new MemoryStorage();
  // app.js keeps the rooms of the name "pending:x:s-1" under this key.
  storage.setItem("chat:v1:pending:x:s-1", JSON.stringify({ rooms: ["lobby"], current: "lobby" }));
  assert.deepEqual(new PendingStore(storage, "x").load(), []);
  assert.equal(storage.length, 1);
});

test("a garbled entry is dropped, the others are kept", () => {
  const storage = new MemoryStorage();
  const store = new PendingStore(storage, "ann");
  store.put(entry(store, "s-1", "kept"));
  storage.setItem("chat:pending:v1:ann:s-2", "{not json");
  storage.setItem("chat:pending:v1:ann:s-3", JSON.stringify({ room: "r", text: "no ref" }));
  assert.deepEqual(store.load().map((e) => e.text), ["kept"]);
  assert.equal(storage.length, 1);
});

test("removed entries are gone; a failed one keeps its error", () => {
  const storage = new MemoryStorage();
  const store = new PendingStore(storage, "ann");
  store.put(entry(store, "s-1", "gone"));
  store.put({ ...entry(store, "s-2", "refused"), failed: true, error: "too long" });
  store.remove("s-1");
  assert.deepEqual(store.load().map((e) => [e.text, e.failed, e.error]), [["refused", true, "too long"]]);
});

test("without storage (disabled by the browser) nothing is kept and nothing throws", () => {
  const store = new PendingStore(null, "ann");
  assert.equal(store.put(entry(store, "s-1", "x")), false);
  assert.deepEqual(store.load(), []);
  store.remove("s-1");
  store.clear();
});

test("a full storage refuses the entry without throwing", () => {
  const storage = new MemoryStorage();
  storage.setItem = () => {
    throw new Error("QuotaExceededError");
  };
  const store = new PendingStore(storage, "ann");
  assert.equal(store.put(entry(store, "s-1", "x")), false);
});
