// Offering member names after `@` (static/mentions.js) under `node --test`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { complete, mentionAt, suggest } from "../../static/mentions.js";

test("the partial name at the caret after an @", () => {
  assert.deepEqual(mentionAt("hi @bo", 6), { start: 3, query: "bo" });
  assert.deepEqual(mentionAt("@", 1), { start: 0, query: "" });
  assert.deepEqual(mentionAt("hi @bo there", 6), { start: 3, query: "bo" });
  assert.equal(mentionAt("mail a@b", 8), null, "an address is not a mention");
  assert.equal(mentionAt("hi @bo, there", 13), null);
  assert.equal(mentionAt("hi bo", 5), null);
});

test("names that fit, me left out, a few at most", () => {
  const names = ["bob", "Bodo", "alice", "me", "bob", "bea", "bert", "bill", "boris"];
  assert.deepEqual(suggest(names, "bo", "me"), ["bob", "Bodo", "boris"]);
  assert.deepEqual(suggest(names, "", "me", 3), ["alice", "bea", "bert"]);
  assert.deepEqual(suggest(names, "m", "me"), []);
});

test("picking a name replaces the partial and leaves the caret after it", () => {
  const text = "hi @bo how are you";
  const at = mentionAt(text, 6);
  assert.deepEqual(complete(text, at, 6, "bob"), { text: "hi @bob how are you", caret: 8 });
  assert.deepEqual(complete("@a", mentionAt("@a", 2), 2, "alice"), { text: "@alice ", caret: 7 });
});
