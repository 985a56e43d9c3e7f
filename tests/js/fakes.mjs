// Test doubles for the page's modules under `node --test`: a Connection that
// records requests and lets the test answer them, and an in-memory Storage.

import { Disconnected, RequestError } from "../../static/connection.js";

/** localStorage's interface over a Map. */
export class MemoryStorage {
  #items = new Map();

  get length() {
    return this.#items.size;
  }

  key(i) {
    return [...this.#items.keys()][i] ?? null;
  }

  getItem(key) {
    return this.#items.has(key) ? this.#items.get(key) : null;
  }

  setItem(key, value) {
    this.#items.set(key, String(value));
  }

  removeItem(key) {
    this.#items.delete(key);
  }
}

/**
 * Stands in for connection.js's Connection: `requests` holds every request
 * not answered yet, in the order sent; the test settles them with ack(),
 * refuse() or drop().
 */
export class FakeConnection extends EventTarget {
  online = false;
  requests = []; // {frame, resolve, reject}
  sent = []; // every frame, answered or not, in the order sent
  #seq = new Map(); // room -> last seq handed out

  request(frame) {
    this.sent.push(frame);
    return new Promise((resolve, reject) => {
      if (!this.online) {
        reject(new Disconnected());
        return;
      }
      this.requests.push({ frame, resolve, reject });
    });
  }

  send(frame) {
    this.sent.push(frame);
    return this.online;
  }

  /** The welcome: the page (re)joins its rooms. `extra`: more welcome fields (account, rooms...). */
  up(extra = {}) {
    this.online = true;
    this.dispatchEvent(new CustomEvent("welcome", { detail: { type: "welcome", name: "me", ...extra } }));
  }

  /** A frame the server sends unasked (removed, invited, role, message...). */
  push(frame) {
    this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
  }

  /** Pending requests of one type, oldest first (their frames). */
  pending(type) {
    return this.requests.filter((r) => r.frame.type === type).map((r) => r.frame);
  }

  /** Answer the oldest pending request of `type` with `reply` (its ref added). */
  answer(type, reply) {
    const { frame, resolve } = this.#take(type);
    resolve({ ...reply, ref: frame.ref });
    return frame;
  }

  /** Refuse the oldest pending request of `type` with an error code. */
  refuseRequest(type, code) {
    const { frame, reject } = this.#take(type);
    reject(new RequestError({ type: "error", code, message: `${code} (test)`, ref: frame.ref }));
    return frame;
  }

  /** The link drops: every open request fails with Disconnected. */
  down() {
    this.online = false;
    const open = this.requests.splice(0);
    for (const r of open) r.reject(new Disconnected());
    this.dispatchEvent(new CustomEvent("down", { detail: {} }));
  }

  /** Pending says, as [room, text] pairs, in the order they went out. */
  says() {
    return this.requests.filter((r) => r.frame.type === "say").map((r) => r.frame);
  }

  #take(type) {
    const i = this.requests.findIndex((r) => r.frame.type === type);
    if (i < 0) throw new Error(`no pending ${type}`);
    return this.requests.splice(i, 1)[0];
  }

  /** Answer the oldest pending join. */
  joined(lastSeq = 0) {
    const { frame, resolve } = this.#take("join");
    resolve({ type: "joined", room: frame.room, members: ["me"], last_seq: lastSeq, history: [], ref: frame.ref });
  }

  /** Store the oldest pending say and acknowledge it; returns the stored message. */
  ack() {
    const { frame, resolve } = this.#take("say");
    const seq = (this.#seq.get(frame.room) ?? 0) + 1;
    this.#seq.set(frame.room, seq);
    const message = { type: "message", room: frame.room, seq, name: "me", text: frame.text, ts: 1, ref: frame.ref };
    resolve(message);
    return message;
  }

  /** Refuse the oldest pending say with an error code. */
  refuse(code) {
    const { frame, reject } = this.#take("say");
    reject(new RequestError({ type: "error", code, message: `${code} (test)`, ref: frame.ref }));
    return frame;
  }
}

/** Let every settled promise's callbacks run. */
export function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}
