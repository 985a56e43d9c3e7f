/**
 * The rooms this page is in, kept in step with the server over a Connection.
 *
 * It joins rooms and, after every reconnect, rejoins them with `since` so that
 * exactly the missed messages come back; it fills the holes that a truncated
 * resume or a `gap` frame leaves; it keeps each room's messages ordered and
 * unique by seq; and it owns the outbox: says that the server has not yet
 * acknowledged, resent with their original ref after a reconnect, which the
 * server recognizes, so a retry never posts a message twice.
 *
 * No DOM here. app.js listens to these events (CustomEvent, data in `detail`):
 *   messages  {room, added, mode}  new messages, ascending; mode says where from:
 *             "initial" (first join), "live", "resume", "fill" (a hole) or "older"
 *   members   {room}               the member list changed
 *   typing    {room}               someone started or stopped typing
 *   outbox    {room}               a pending message was added, acked or failed
 *   older     {room}               loading older messages started or ended
 *   rooms     {}                   the set of joined rooms changed
 *   directory {}                   the list of all rooms arrived
 *   notice    {code, message}      an error worth telling the user
 */

import { Disconnected, RequestError, TimedOut, newRef } from "./connection.js";

export const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** What the user typed, as the server will name the room: "#Lobby " -> "lobby". */
export function normalizeRoom(raw) {
  return raw.trim().replace(/^#/, "").toLowerCase();
}

// One scroll-up fetches the server's default page: a screen or two of text.
const OLDER_PAGE = 50;
// Filling a hole uses the server's largest page: the fewest round trips.
const FILL_PAGE = 200;
// Typers send `typing` every ~2 s; showing a name for 5 s outlives one lost or
// late beat without leaving a stale "is typing" long after they stopped.
export const TYPING_SHOW_MS = 5000;
// ... and we tell others at most this often, which is what they expect.
const TYPING_EVERY_MS = 2000;
// A rate-limited say is retried this many times, a second more each time,
// before it is shown as failed: a burst usually drains within seconds.
const SAY_RETRIES = 5;
// How often the list of all rooms is refreshed; member counts are a hint.
const DIRECTORY_EVERY_MS = 30_000;
// A rate-limited join (reconnecting with many rooms) is retried after this.
const JOIN_RETRY_MS = 1500;

function isMessage(m) {
  return (
    m !== null &&
    typeof m === "object" &&
    Number.isInteger(m.seq) &&
    typeof m.name === "string" &&
    typeof m.text === "string" &&
    typeof m.ts === "number"
  );
}

function maxSeq(messages) {
  return messages.length ? messages[messages.length - 1].seq : undefined;
}

/** One joined room: its messages, members, typers and outbox. */
export class Room {
  constructor(name) {
    this.name = name;
    this.messages = []; // ascending by seq, no duplicates
    this.seqs = new Set();
    this.members = new Set();
    this.typing = new Map(); // name -> epoch ms until which to show it
    this.outbox = []; // {ref, text, state: "sending" | "failed", error, tries}
    this.live = false; // joined on the current connection
    this.synced = false; // joined at least once: lastSeq means something
    // The newest seq up to which nothing is missing (except `holes`): a
    // resume asks for everything after it.
    this.lastSeq = 0;
    this.holes = []; // [{from, to}] seq ranges known to be missing
    this.hasOlder = false;
    this.loadingOlder = false;
    this.filling = false;
    this.lastTypingSent = 0;
  }

  get firstSeq() {
    return this.messages.length ? this.messages[0].seq : this.lastSeq + 1;
  }

  /** Where a resume must start: before the first hole, else after the newest message. */
  get resumeSince() {
    return this.holes.reduce((since, hole) => Math.min(since, hole.from - 1), this.lastSeq);
  }

  /** Add messages we do not have yet; returns those added, ascending. */
  insert(messages) {
    const added = [];
    for (const m of messages) {
      if (!isMessage(m) || this.seqs.has(m.seq)) continue;
      const msg = { seq: m.seq, name: m.name, text: m.text, ts: m.ts };
      this.seqs.add(msg.seq);
      added.push(msg);
      if (!this.messages.length || msg.seq > this.messages[this.messages.length - 1].seq) {
        this.messages.push(msg); // the usual case: a live message at the end
      } else {
        let lo = 0;
        let hi = this.messages.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (this.messages[mid].seq < msg.seq) lo = mid + 1;
          else hi = mid;
        }
        this.messages.splice(lo, 0, msg);
      }
    }
    return added.sort((a, b) => a.seq - b.seq);
  }

  /** Names typing now, excluding expired ones. */
  typers(now = Date.now()) {
    return [...this.typing].filter(([, until]) => until > now).map(([name]) => name);
  }
}

export class ChatSync extends EventTarget {
  constructor(conn, me) {
    super();
    this.conn = conn;
    this.me = me;
    this.rooms = new Map(); // name -> Room, in join order
    this.directory = []; // [{room, members, last_seq}] from the server
    this.focus = null; // the room on screen: rejoined first after a reconnect
    this.directoryTimer = 0;

    conn.addEventListener("welcome", (e) => this.#online(e.detail));
    conn.addEventListener("down", () => this.#offline());
    conn.addEventListener("frame", (e) => this.#frame(e.detail));
  }

  // -- what the page asks for ---------------------------------------------

  /** Join (or create) a room. Returns the Room; throws RangeError for a bad name. */
  join(rawName) {
    const name = normalizeRoom(rawName);
    if (!ROOM_RE.test(name)) {
      throw new RangeError("Room names use a-z, 0-9, - and _, start with a letter or digit, 64 at most.");
    }
    let room = this.rooms.get(name);
    if (room === undefined) {
      room = new Room(name);
      this.rooms.set(name, room);
      this.#emit("rooms", {});
      if (this.conn.online) this.#sendJoin(room);
    }
    return room;
  }

  leave(name) {
    const room = this.rooms.get(name);
    if (room === undefined) return;
    this.rooms.delete(name);
    room.live = false;
    this.conn
      .request({ type: "leave", room: name })
      .then(() => this.refreshDirectory())
      .catch(() => {
        // Offline: the server dropped us from every room with the socket already.
      });
    this.#emit("rooms", {});
  }

  /** Queue a message; it is sent now if the room is live, else once it is again. */
  say(roomName, text) {
    const room = this.rooms.get(roomName);
    if (room === undefined) return;
    const entry = { ref: newRef("s"), text, state: "sending", error: null, tries: 0, inFlight: false };
    room.outbox.push(entry);
    // Others stop showing us as typing when this message lands, so the next
    // keystroke must announce it again at once, not up to 2 s later.
    room.lastTypingSent = 0;
    this.#emit("outbox", { room });
    if (room.live) this.#transmit(room, entry);
  }

  retry(roomName, ref) {
    const room = this.rooms.get(roomName);
    const entry = room?.outbox.find((e) => e.ref === ref);
    if (entry === undefined) return;
    entry.state = "sending";
    entry.error = null;
    entry.tries = 0;
    this.#emit("outbox", { room });
    if (room.live) this.#transmit(room, entry);
  }

  discard(roomName, ref) {
    const room = this.rooms.get(roomName);
    if (room === undefined) return;
    room.outbox = room.outbox.filter((e) => e.ref !== ref || e.inFlight);
    this.#emit("outbox", { room });
  }

  /** Tell the room we are typing, at most every TYPING_EVERY_MS. */
  typing(roomName) {
    const room = this.rooms.get(roomName);
    const now = Date.now();
    if (room === undefined || !room.live || now - room.lastTypingSent < TYPING_EVERY_MS) return;
    room.lastTypingSent = now;
    // A typing frame is best effort: the "typing" ref lets #frame drop its errors.
    this.conn.send({ type: "typing", room: roomName, ref: "typing" });
  }

  /** Fetch the page of messages before the oldest one we have. */
  async loadOlder(roomName) {
    const room = this.rooms.get(roomName);
    if (room === undefined || !room.live || !room.hasOlder || room.loadingOlder) return;
    room.loadingOlder = true;
    this.#emit("older", { room });
    try {
      const reply = await this.conn.request({ type: "history", room: room.name, before: room.firstSeq, limit: OLDER_PAGE });
      const messages = Array.isArray(reply.messages) ? reply.messages : [];
      const added = room.insert(messages);
      // seq counts from 1, so the first message is the last one there is.
      room.hasOlder = messages.length > 0 && room.firstSeq > 1;
      if (added.length) this.#emit("messages", { room, added, mode: "older" });
    } catch (err) {
      if (!(err instanceof Disconnected)) this.#emit("notice", { code: err.code, message: err.message });
    } finally {
      room.loadingOlder = false;
      this.#emit("older", { room });
    }
  }

  refreshDirectory() {
    this.conn
      .request({ type: "rooms" })
      .then((reply) => {
        if (Array.isArray(reply.rooms)) {
          this.directory = reply.rooms;
          this.#emit("directory", {});
        }
      })
      .catch(() => {
        // Refreshed again on the next tick or reconnect; nothing to tell the user.
      });
  }

  // -- the link --------------------------------------------------------------

  #online(welcome) {
    if (typeof welcome.name === "string") this.me = welcome.name;
    // The room on screen first: it is the one the user is waiting for.
    const rooms = [...this.rooms.values()].sort((a, b) => (b.name === this.focus) - (a.name === this.focus));
    for (const room of rooms) this.#sendJoin(room);
    this.refreshDirectory();
    clearInterval(this.directoryTimer);
    this.directoryTimer = setInterval(() => this.refreshDirectory(), DIRECTORY_EVERY_MS);
  }

  #offline() {
    clearInterval(this.directoryTimer);
    for (const room of this.rooms.values()) {
      room.live = false;
      // Typing notices are not replayed: a stale "is typing" would stay forever.
      if (room.typing.size) {
        room.typing.clear();
        this.#emit("typing", { room });
      }
    }
  }

  #sendJoin(room) {
    const frame = { type: "join", room: room.name };
    const since = room.synced ? room.resumeSince : undefined;
    if (since !== undefined) frame.since = since;
    this.conn
      .request(frame)
      .then((reply) => this.#joined(room, reply, since))
      .catch((err) => {
        if (this.rooms.get(room.name) !== room) return; // left meanwhile
        if (err instanceof Disconnected) return; // rejoined on the next welcome
        // Over the rate, or the server's store (Redis) away for a moment: the
        // room is still wanted, so ask again rather than forget it.
        if (err instanceof RequestError && (err.code === "rate_limited" || err.code === "unavailable")) {
          setTimeout(() => this.conn.online && !room.live && this.rooms.get(room.name) === room && this.#sendJoin(room), JOIN_RETRY_MS);
          return;
        }
        if (err instanceof TimedOut) {
          this.#emit("notice", { code: err.code, message: `Joining #${room.name} is taking long; retrying after reconnect.` });
          return;
        }
        // bad_room, too_many_rooms...: this room cannot be joined.
        this.rooms.delete(room.name);
        this.#emit("rooms", {});
        this.#emit("notice", { code: err.code, message: err.message });
      });
  }

  #joined(room, reply, since) {
    if (this.rooms.get(room.name) !== room) return; // left while joining
    room.live = true;
    room.members = new Set(Array.isArray(reply.members) ? reply.members : []);
    const history = (Array.isArray(reply.history) ? reply.history : []).filter(isMessage);
    const lastSeq = Number.isInteger(reply.last_seq) ? reply.last_seq : 0;

    if (since !== undefined && lastSeq < since) {
      // The server has fewer messages than we saw: its history was reset (a
      // new or in-memory database). Start over, or its new seq 1, 2... would
      // be hidden as duplicates of the old ones.
      room.messages = [];
      room.seqs.clear();
      room.holes = [];
      since = undefined;
    }
    if (since === undefined) {
      // First join: the newest messages; anything older is one scroll away.
      const added = room.insert(history);
      room.lastSeq = Math.max(lastSeq, maxSeq(history) ?? 0);
      room.hasOlder = room.firstSeq > 1;
      room.synced = true;
      this.#emit("messages", { room, added, mode: "initial" });
    } else {
      // A resume: `history` is everything after `since`, unless truncated.
      const top = maxSeq(history) ?? since;
      room.holes = [];
      if (reply.truncated && lastSeq > top) room.holes.push({ from: top + 1, to: lastSeq });
      room.lastSeq = Math.max(room.lastSeq, top, lastSeq);
      const added = room.insert(history);
      if (added.length) this.#emit("messages", { room, added, mode: "resume" });
    }
    this.#emit("members", { room });

    // Messages typed while we were away go out now, in the order they were typed.
    for (const entry of room.outbox) {
      if (entry.state === "sending" && !entry.inFlight) this.#transmit(room, entry);
    }
    this.#fillHoles(room);
  }

  /** Fetch each missing range with `history` `after`, page by page, until it is closed. */
  async #fillHoles(room) {
    if (room.filling) return;
    room.filling = true;
    try {
      while (room.holes.length && room.live) {
        const hole = room.holes[0];
        const reply = await this.conn.request({ type: "history", room: room.name, after: hole.from - 1, limit: FILL_PAGE });
        const messages = (Array.isArray(reply.messages) ? reply.messages : []).filter(isMessage);
        const added = room.insert(messages);
        if (added.length) this.#emit("messages", { room, added, mode: "fill" });
        const top = maxSeq(messages);
        if (top !== undefined) hole.from = Math.max(hole.from, top + 1);
        // A short page means the server has nothing more in this range.
        if (top === undefined || hole.from > hole.to || messages.length < FILL_PAGE) room.holes.shift();
      }
    } catch (err) {
      // Offline: the resume after the reconnect starts before the hole.
      if (!(err instanceof Disconnected)) this.#emit("notice", { code: err.code, message: err.message });
    } finally {
      room.filling = false;
    }
  }

  #transmit(room, entry) {
    entry.state = "sending";
    entry.inFlight = true;
    this.conn
      .request({ type: "say", room: room.name, text: entry.text, ref: entry.ref })
      .then((message) => {
        entry.inFlight = false;
        this.#message(message); // the acknowledgement is our own copy of the message
      })
      .catch((err) => {
        entry.inFlight = false;
        if (err instanceof Disconnected) return; // resent after the rejoin
        if (err instanceof RequestError && err.code === "rate_limited" && entry.tries < SAY_RETRIES) {
          entry.tries += 1;
          setTimeout(() => {
            if (room.live && room.outbox.includes(entry) && entry.state === "sending" && !entry.inFlight) {
              this.#transmit(room, entry);
            }
          }, 1000 * entry.tries);
          return;
        }
        entry.state = "failed";
        entry.error = err.message;
        this.#emit("outbox", { room });
      });
  }

  // -- frames nobody asked for ------------------------------------------------

  #frame(frame) {
    switch (frame.type) {
      case "message":
        this.#message(frame);
        break;
      case "presence":
        this.#presence(frame);
        break;
      case "typing": {
        const room = this.rooms.get(frame.room);
        if (room === undefined || typeof frame.name !== "string" || frame.name === this.me) return;
        room.typing.set(frame.name, Date.now() + TYPING_SHOW_MS);
        this.#emit("typing", { room });
        break;
      }
      case "gap": {
        // The server tells us it could not deliver from_seq..to_seq: fetch them.
        const room = this.rooms.get(frame.room);
        if (room === undefined || !Number.isInteger(frame.from_seq) || !Number.isInteger(frame.to_seq)) return;
        room.holes.push({ from: frame.from_seq, to: frame.to_seq });
        room.lastSeq = Math.max(room.lastSeq, frame.to_seq);
        this.#fillHoles(room);
        break;
      }
      case "error":
        // Typing is best effort; its errors (rate_limited...) would only be noise.
        if (frame.ref === "typing") return;
        // A say whose request timed out may still fail later: show it on the message.
        if (this.#failOutbox(frame)) return;
        this.#emit("notice", { code: frame.code, message: frame.message });
        break;
      default:
        // left, pong, late replies to requests that timed out: nothing to do.
        break;
    }
  }

  #message(frame) {
    if (!isMessage(frame)) return;
    const room = this.rooms.get(frame.room);
    if (room === undefined) return;
    if (typeof frame.ref === "string") {
      const before = room.outbox.length;
      room.outbox = room.outbox.filter((e) => e.ref !== frame.ref);
      if (room.outbox.length !== before) this.#emit("outbox", { room });
    }
    // Live messages come in seq order without gaps; should one ever skip
    // ahead, fetch what it skipped rather than lose it quietly.
    if (room.synced && frame.seq > room.lastSeq + 1) {
      room.holes.push({ from: room.lastSeq + 1, to: frame.seq - 1 });
      this.#fillHoles(room);
    }
    room.lastSeq = Math.max(room.lastSeq, frame.seq);
    if (room.typing.delete(frame.name)) this.#emit("typing", { room });
    const added = room.insert([frame]);
    if (added.length) this.#emit("messages", { room, added, mode: "live" });
  }

  #presence(frame) {
    const room = this.rooms.get(frame.room);
    if (room === undefined || typeof frame.name !== "string") return;
    if (frame.event === "join") room.members.add(frame.name);
    else if (frame.event === "leave") {
      room.members.delete(frame.name);
      if (room.typing.delete(frame.name)) this.#emit("typing", { room });
    }
    this.#emit("members", { room });
  }

  #failOutbox(frame) {
    if (typeof frame.ref !== "string") return false;
    for (const room of this.rooms.values()) {
      const entry = room.outbox.find((e) => e.ref === frame.ref);
      if (entry !== undefined) {
        entry.state = "failed";
        entry.error = frame.message;
        this.#emit("outbox", { room });
        return true;
      }
    }
    return false;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
