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
 * Says keep the order they were typed in, per room, on every path: a room has
 * at most one say in flight, and the next goes out only once the server has
 * stored the one before. A say the server could not take (`unavailable`,
 * `rate_limited`, no answer) is sent again, same ref, after a short wait, and
 * everything typed after it waits behind it; after a reconnect the room's
 * outbox goes out again from its oldest entry. Sending several at once would
 * be faster, but then a later say could be stored while an earlier one is
 * being refused, and nothing could put them back in order.
 *
 * With a PendingStore (pending.js) every entry is also kept in the browser's
 * storage from the moment it is typed until its acknowledgement arrives, so
 * that a reload sends it again (restorePending) instead of losing it.
 *
 * No DOM here. app.js listens to these events (CustomEvent, data in `detail`):
 *   messages  {room, added, mode}  new messages, ascending; mode says where from:
 *             "initial" (first join), "live", "resume", "fill" (a hole) or "older"
 *   changed   {room, changed}      messages already held were edited, deleted or
 *                                  reacted to (events.js), ascending
 *   unread    {room}               the read marker or the unread counts moved
 *   members   {room}               the member list changed
 *   typing    {room}               someone started or stopped typing
 *   outbox    {room}               a pending message was added, acked or failed
 *   older     {room}               loading older messages started or ended
 *   rooms     {}                   the set of joined rooms changed, or a room's
 *                                  title, role or people
 *   directory {}                   the list of all rooms arrived
 *   removed   {room, reason}       we were removed from a room ("removed",
 *                                  "banned") or left it ("left"): it is gone
 *   roster    {room}               the room's members and their roles changed
 *   notice    {code, message}      an error worth telling the user
 *
 * A room is known by its id: a public room's name, or a server-made id
 * ("~" and 20 letters) for private rooms and DMs. `room.info` holds what the
 * server said about it (title, visibility, kind, my role, a DM's people).
 * Accounts have durable memberships: `welcome` lists them, and the page
 * joins every one, so that each device shows the same rooms.
 */

import { Disconnected, RequestError, TimedOut, newRef } from "./connection.js";
import { ingest, isEvent } from "./events.js";
import { ROOM_RE, TITLE_MAX_CHARS, isRoomId, normalizeRoom, roomInfo } from "./rooms.js";
import { fromServer, markSeen, newReadState, unreadCounts } from "./unread.js";

export { ROOM_RE, normalizeRoom };

// One scroll-up fetches the server's default page: a screen or two of text.
const OLDER_PAGE = 50;
// Filling a hole uses the server's largest page: the fewest round trips.
const FILL_PAGE = 200;
// Typers send `typing` every ~2 s; showing a name for 5 s outlives one lost or
// late beat without leaving a stale "is typing" long after they stopped.
export const TYPING_SHOW_MS = 5000;
// ... and we tell others at most this often, which is what they expect.
const TYPING_EVERY_MS = 2000;
// A say the server could not take now is sent again after this, doubling per
// try up to SAY_RETRY_MAX_MS, and never given up: the rate bucket refills
// within a fraction of a second, a store or Redis failover takes seconds, and
// the cap keeps a long outage down to one frame per room every few seconds.
const SAY_RETRY_BASE_MS = 250;
const SAY_RETRY_MAX_MS = 8000;
// ... except over the rate, where waiting longer than a second gains nothing:
// at any --rate of 1 frame/s or more a second refills the bucket by a frame.
const RATE_RETRY_MAX_MS = 1000;
// Answers that mean "not now" rather than "never": the say is sent again.
const SAY_RETRY_CODES = new Set(["rate_limited", "unavailable", "timeout"]);
// How often the list of all rooms is refreshed; member counts are a hint.
const DIRECTORY_EVERY_MS = 30_000;
// A rate-limited join (reconnecting with many rooms) is retried after this.
const JOIN_RETRY_MS = 1500;
// Reading moves the marker often (every message seen while at the bottom);
// the server hears of it once things settle.
const READ_DEBOUNCE_MS = 800;
// A search result opens this many messages of context above its message.
const CONTEXT_BEFORE = 25;
// ... fetched in pages of this size; a message further back than this many
// pages is too far to bring the whole log between it and now onto the page.
const CONTEXT_PAGES = 25;

function maxSeq(messages) {
  return messages.length ? messages[messages.length - 1].seq : undefined;
}

/** One joined room: its messages, members, typers and outbox. */
export class Room {
  constructor(name, info = undefined) {
    this.name = name; // the room's id
    this.info = info ?? roomInfo(name);
    this.roster = new Map(); // account name -> role, from the server's `members`
    this.guests = new Set(); // names seen as guests here (their messages say so)
    this.rosterLoading = false;
    this.rosterAgain = false;
    this.messages = []; // ascending by seq, no duplicates
    this.seqs = new Set();
    this.members = new Set();
    this.typing = new Map(); // name -> epoch ms until which to show it
    // Says not yet acknowledged, in the order typed:
    // {ref, text, order, state: "sending" | "failed", error, tries}
    this.outbox = [];
    this.sending = null; // the outbox entry whose say is in flight: one at a time
    this.retryTimer = 0; // set while the head waits to be sent again
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
    // Added by someone else while we are here (`invited`): its first
    // messages count as unread.
    this.fresh = false;
    // Where the reader stopped (unread.js): the account's server marker, or
    // the page's own for a guest.
    this.read = newReadState();
    this.readTimer = 0;
    // One of the account's rooms before this page joined it (welcome,
    // invited): its server marker means something. A public room joined for
    // the first time has none yet: its history is not news.
    this.listed = false;
  }

  get firstSeq() {
    return this.messages.length ? this.messages[0].seq : this.lastSeq + 1;
  }

  /** Where a resume must start: before the first hole, else after the newest message. */
  get resumeSince() {
    return this.holes.reduce((since, hole) => Math.min(since, hole.from - 1), this.lastSeq);
  }

  /**
   * Take in events we do not have yet (events.js ingest): returns the
   * messages added and the ones held that changed, each ascending.
   */
  ingest(events) {
    const result = ingest(this, events);
    for (const msg of result.added) if (msg.guest) this.guests.add(msg.name);
    return result;
  }

  /** Add messages we do not have yet; returns those added, ascending. */
  insert(messages) {
    return this.ingest(messages).added;
  }

  /** Names typing now, excluding expired ones. */
  typers(now = Date.now()) {
    return [...this.typing].filter(([, until]) => until > now).map(([name]) => name);
  }
}

export class ChatSync extends EventTarget {
  /** `pending`: a PendingStore that keeps the outbox across reloads, or null. */
  constructor(conn, me, pending = null) {
    super();
    this.conn = conn;
    this.me = me;
    this.pending = pending;
    this.rooms = new Map(); // name -> Room, in join order
    this.directory = []; // [{room, members, last_seq}] from the server
    this.focus = null; // the room on screen: rejoined first after a reconnect
    this.directoryTimer = 0;
    // Who we are, from `welcome`: an account (durable rooms, DMs, moderation),
    // a site admin, or a guest. Before the first welcome: none of them.
    this.account = false;
    this.admin = false;
    this.guest = false;

    conn.addEventListener("welcome", (e) => this.#online(e.detail));
    conn.addEventListener("down", () => this.#offline());
    conn.addEventListener("frame", (e) => this.#frame(e.detail));
  }

  // -- what the page asks for ---------------------------------------------

  /** Join (or create) a room. Returns the Room; throws RangeError for a bad name. */
  join(rawName, info = undefined) {
    const name = normalizeRoom(rawName);
    if (!isRoomId(name)) {
      throw new RangeError("Room names use a-z, 0-9, - and _, start with a letter or digit, 64 at most.");
    }
    let room = this.rooms.get(name);
    if (room !== undefined && info !== undefined) {
      room.info = roomInfo(name, info, room.info);
      this.#emit("rooms", {});
    }
    if (room === undefined) {
      room = new Room(name, info === undefined ? undefined : roomInfo(name, info));
      this.rooms.set(name, room);
      this.#emit("rooms", {});
      if (this.conn.online) this.#sendJoin(room);
    }
    return room;
  }

  leave(name) {
    const room = this.rooms.get(name);
    if (room === undefined) return;
    this.#forget(room);
    // A member leaves for good (every device): removing oneself. A guest, or
    // an account in a room it has no standing in, only stops listening.
    const durable = this.account && room.info.role !== null && room.info.role !== "owner";
    const frame = durable ? { type: "remove", room: name, name: this.me } : { type: "leave", room: name };
    this.conn
      .request(frame)
      .then(() => this.refreshDirectory())
      .catch(() => {
        // Offline: the server dropped us from every room with the socket already.
      });
    this.#emit("rooms", {});
  }

  /**
   * Queue a message. It is saved (with a PendingStore) before anything goes
   * out, and sent once the room is live and every say typed before it in
   * this room is stored.
   */
  say(roomName, text) {
    const room = this.rooms.get(roomName);
    if (room === undefined) return;
    const entry = { ref: newRef("s"), text, order: this.#nextOrder(), state: "sending", error: null, tries: 0 };
    room.outbox.push(entry);
    this.#save(room, entry);
    // Others stop showing us as typing when this message lands, so the next
    // keystroke must announce it again at once, not up to 2 s later.
    room.lastTypingSent = 0;
    this.#emit("outbox", { room });
    this.#pump(room);
  }

  /**
   * Put back the messages a previous page (a reload, a crash, a closed tab)
   * saved but never saw acknowledged, in the order typed, joining their rooms
   * if need be. They go out with their original refs once the rooms are live.
   */
  restorePending() {
    if (this.pending === null) return;
    for (const saved of this.pending.load()) {
      let room;
      try {
        room = this.join(saved.room);
      } catch {
        this.pending.remove(saved.ref); // a room name no longer valid
        continue;
      }
      if (room.outbox.some((e) => e.ref === saved.ref)) continue;
      room.outbox.push({
        ref: saved.ref,
        text: saved.text,
        order: saved.order,
        state: saved.failed ? "failed" : "sending",
        error: saved.error,
        tries: 0,
      });
      this.#emit("outbox", { room });
      this.#pump(room);
    }
  }

  /** Send a failed message again: it now comes after everything typed so far. */
  retry(roomName, ref) {
    const room = this.rooms.get(roomName);
    const entry = room?.outbox.find((e) => e.ref === ref);
    if (entry === undefined || entry.state !== "failed") return;
    entry.state = "sending";
    entry.error = null;
    entry.tries = 0;
    entry.order = this.#nextOrder();
    room.outbox = [...room.outbox.filter((e) => e !== entry), entry];
    this.#save(room, entry);
    this.#emit("outbox", { room });
    this.#pump(room);
  }

  discard(roomName, ref) {
    const room = this.rooms.get(roomName);
    const entry = room?.outbox.find((e) => e.ref === ref);
    // One in flight may be stored any moment: it is not the user's to take back.
    if (entry === undefined || entry === room.sending) return;
    room.outbox = room.outbox.filter((e) => e !== entry);
    this.pending?.remove(ref);
    this.#emit("outbox", { room });
    this.#pump(room);
  }

  /** Tell the room we are typing, at most every TYPING_EVERY_MS. */
  typing(roomName) {
    const room = this.rooms.get(roomName);
    const now = Date.now();
    if (room === undefined || !room.live || now - room.lastTypingSent < TYPING_EVERY_MS) return;
    // Not while our own messages are still going out: the notice would only
    // take a frame of the rate limit from them, and the others will see
    // those messages land anyway. The next keystroke after them announces it.
    if (room.outbox.some((e) => e.state === "sending")) return;
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

  // -- reading, changing messages, searching ---------------------------------

  /** Unread messages and mentions of a room (unread.js). */
  unreadOf(roomName) {
    const room = this.rooms.get(roomName);
    if (room === undefined) return { unread: 0, mentions: 0 };
    return unreadCounts(room.read, { messages: room.messages, hasOlder: room.hasOlder, me: this.me, account: this.account });
  }

  /**
   * The user has seen the room up to its newest event: the marker moves at
   * once here, and an account's server hears of it after READ_DEBOUNCE_MS
   * (one frame for a burst of messages read as they come).
   */
  markRead(roomName) {
    const room = this.rooms.get(roomName);
    if (room === undefined || !room.synced) return;
    const before = room.read;
    room.read = markSeen(room.read, room.lastSeq);
    if (room.read === before) return;
    this.#emit("unread", { room });
    this.#sendRead(room);
  }

  /**
   * Send the read markers still waiting for their debounce now: the user
   * moved to another room or away from the tab, and a reload or another
   * device must find the marker where they left it.
   */
  flushReads() {
    for (const room of this.rooms.values()) {
      if (room.readTimer === 0) continue;
      clearTimeout(room.readTimer);
      room.readTimer = 0;
      this.#readNow(room);
    }
  }

  /** Tell the server where an account's marker is now, once reading settles. */
  #sendRead(room) {
    if (!this.account || room.readTimer !== 0) return;
    room.readTimer = setTimeout(() => {
      room.readTimer = 0;
      this.#readNow(room);
    }, READ_DEBOUNCE_MS);
  }

  #readNow(room) {
    if (this.rooms.get(room.name) !== room || room.read.marker === null) return;
    this.conn
      .request({ type: "read", room: room.name, seq: room.read.marker })
      // The reply's `seq` is the marker as the server holds it now.
      .then((reply) => this.#serverRead(room, { ...reply, read: reply.seq }, room.lastSeq))
      .catch(() => {
        // Offline or refused: the next read (or the next visit) says it again.
      });
  }

  /** Edit my message `seq`; resolves once the edit is stored (and applied here). */
  edit(roomName, seq, text) {
    return this.#change({ type: "edit", room: roomName, seq, text });
  }

  /** Delete message `seq` (mine, or anyone's as an owner or moderator). */
  deleteMessage(roomName, seq) {
    return this.#change({ type: "delete", room: roomName, seq });
  }

  /** Toggle my reaction `emoji` on message `seq`. */
  react(roomName, seq, emoji) {
    return this.#change({ type: "react", room: roomName, seq, emoji });
  }

  async #change(frame) {
    try {
      // The reply is the stored event, which also goes to the room: taken in
      // once, whichever copy comes first.
      this.#message(await this.conn.request(frame));
      return true;
    } catch (err) {
      this.#emit("notice", { code: err.code, message: err.message });
      return false;
    }
  }

  /** Search the rooms I may read (or one of them); resolves with the server's hits. */
  search(frame) {
    return this.conn.request(frame);
  }

  /**
   * Load a room's messages back to CONTEXT_BEFORE before `seq` (a search
   * result): older pages until it is there, so that the log on screen stays
   * whole. Resolves with whether the message is loaded.
   */
  async loadAround(roomName, seq) {
    const room = this.rooms.get(roomName);
    for (let page = 0; room !== undefined && room.live && page < CONTEXT_PAGES; page++) {
      if (!room.hasOlder || room.firstSeq <= Math.max(1, seq - CONTEXT_BEFORE)) break;
      const reply = await this.conn.request({ type: "history", room: room.name, before: room.firstSeq, limit: FILL_PAGE });
      const messages = Array.isArray(reply.messages) ? reply.messages : [];
      const added = room.insert(messages);
      room.hasOlder = messages.length > 0 && room.firstSeq > 1;
      if (added.length) this.#emit("messages", { room, added, mode: "older" });
    }
    return room !== undefined && room.seqs.has(seq);
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

  // -- rooms of one's own, and who may do what in them -----------------------

  /**
   * Create a room: a public one named `raw`, or a private one titled `raw`.
   * Resolves with the joined Room (the creator is its owner); rejects with
   * RangeError (a name that cannot work) or the server's refusal
   * (room_exists, unauthorized...).
   */
  async create(raw, visibility) {
    let title = raw.trim();
    if (visibility === "public") {
      title = normalizeRoom(raw);
      if (!ROOM_RE.test(title)) throw new RangeError("Room names use a-z, 0-9, - and _, start with a letter or digit, 64 at most.");
    } else if (!title || [...title].length > TITLE_MAX_CHARS) {
      throw new RangeError(`A room's title has 1 to ${TITLE_MAX_CHARS} characters.`);
    }
    const reply = await this.conn.request({ type: "create", room: title, visibility });
    // The creator is not joined by `create`: the join comes next.
    return this.join(reply.room, reply);
  }

  /** Start (or find again: the same people make the same DM) a direct message with `names`; resolves with its Room. */
  async dm(names) {
    const reply = await this.conn.request({ type: "dm", to: names });
    return this.join(reply.room, reply);
  }

  /**
   * A moderation frame: "invite", "remove", "ban", "unban", or the roles
   * "moderator" / "member". Resolves with the server's `done`; the member
   * list is fetched again, since it changed.
   */
  async moderate(action, roomId, name) {
    const frame =
      action === "moderator" || action === "member"
        ? { type: "role", room: roomId, name, role: action }
        : { type: action, room: roomId, name };
    const reply = await this.conn.request(frame);
    this.loadRoster(roomId);
    return reply;
  }

  /** Ask the server for the room's members and their roles (one request at a time per room). */
  loadRoster(roomId) {
    const room = this.rooms.get(roomId);
    if (room === undefined || !room.live) return;
    if (room.rosterLoading) {
      room.rosterAgain = true; // asked again while asking: once more afterwards
      return;
    }
    room.rosterLoading = true;
    this.conn
      .request({ type: "members", room: roomId })
      .then((reply) => {
        if (this.rooms.get(roomId) !== room || !Array.isArray(reply.members)) return;
        room.roster = new Map(
          reply.members
            .filter((m) => m !== null && typeof m === "object" && typeof m.name === "string")
            .map((m) => [m.name, typeof m.role === "string" ? m.role : "member"]),
        );
        this.#emit("roster", { room });
      })
      .catch(() => {
        // A guest, or a server without `members`: the list shows who is here.
      })
      .finally(() => {
        room.rosterLoading = false;
        if (room.rosterAgain) {
          room.rosterAgain = false;
          this.loadRoster(roomId);
        }
      });
  }

  /** The account's durable rooms, from `welcome`: every one is joined. */
  #memberships(list) {
    const ids = new Set();
    for (const wire of list) {
      if (wire === null || typeof wire !== "object" || typeof wire.room !== "string" || !isRoomId(wire.room)) continue;
      ids.add(wire.room);
      let room = this.rooms.get(wire.room);
      if (room !== undefined) room.info = roomInfo(wire.room, wire, room.info);
      else this.rooms.set(wire.room, (room = new Room(wire.room, roomInfo(wire.room, wire))));
      // Figures from before the join: nothing newer is counted until `joined`.
      room.read = fromServer(room.read, wire, Infinity);
      room.listed = true;
    }
    // A private room this page remembered that the server no longer lists:
    // we were removed while away. Joining it would only be refused.
    for (const room of [...this.rooms.values()]) {
      if (!ids.has(room.name) && room.info.visibility === "private") this.#forget(room);
    }
    this.#emit("rooms", {});
  }

  /** We were added to a room (invited, a DM, a room we created): it joins the list, live. */
  #invited(wire) {
    if (wire === null || typeof wire !== "object" || typeof wire.room !== "string" || !isRoomId(wire.room)) return;
    const known = this.rooms.has(wire.room);
    const room = this.join(wire.room, wire);
    // Someone brought us in (a DM, an invitation): what is already there is
    // news to us, unlike the history of a room we open ourselves.
    if (!known) room.fresh = true;
    room.listed = true;
    room.read = fromServer(room.read, wire, Infinity);
  }

  /**
   * Removed, banned, or left (from another device): the room goes at once,
   * with everything we held of it, and is never rejoined. What was waiting
   * to be said there can no longer be.
   */
  #removed(frame) {
    const room = this.rooms.get(frame.room);
    if (room === undefined) return; // left from this page: already gone
    this.#forget(room);
    room.messages = [];
    room.seqs.clear();
    room.members.clear();
    room.roster.clear();
    room.outbox = [];
    const reason = typeof frame.reason === "string" ? frame.reason : "removed";
    // "removed" first: the page shows what happened before it moves on.
    this.#emit("removed", { room, reason });
    this.#emit("rooms", {});
  }

  #role(frame) {
    const room = this.rooms.get(frame.room);
    if (room === undefined || typeof frame.name !== "string" || typeof frame.role !== "string") return;
    room.roster.set(frame.name, frame.role);
    if (frame.name === this.me) {
      room.info = { ...room.info, role: frame.role };
      this.#emit("rooms", {});
    }
    this.#emit("roster", { room });
  }

  /** Stop everything about a room here: no rejoin, no resend. */
  #forget(room) {
    if (this.rooms.get(room.name) === room) this.rooms.delete(room.name);
    room.live = false;
    clearTimeout(room.retryTimer);
    room.retryTimer = 0;
    clearTimeout(room.readTimer);
    room.readTimer = 0;
    room.typing.clear();
    for (const entry of room.outbox) this.pending?.remove(entry.ref);
  }

  // -- the link --------------------------------------------------------------

  #online(welcome) {
    if (typeof welcome.name === "string") this.me = welcome.name;
    this.account = welcome.account === true;
    this.admin = welcome.admin === true;
    this.guest = welcome.guest === true || !this.account;
    if (this.account && Array.isArray(welcome.rooms)) this.#memberships(welcome.rooms);
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
      // The rejoin sends the outbox again from its head at once.
      clearTimeout(room.retryTimer);
      room.retryTimer = 0;
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
        // bad_room, too_many_rooms, not_found, forbidden (banned)...: this
        // room cannot be joined, so what was waiting to be said there cannot
        // be sent either.
        this.#forget(room);
        this.#emit("rooms", {});
        this.#emit("notice", { code: err.code, message: err.message });
      });
  }

  #joined(room, reply, since) {
    if (this.rooms.get(room.name) !== room) return; // left while joining
    room.live = true;
    const before = JSON.stringify(room.info);
    room.info = roomInfo(room.name, reply, room.info);
    if (JSON.stringify(room.info) !== before) this.#emit("rooms", {});
    this.loadRoster(room.name);
    const names = Array.isArray(reply.members) ? reply.members.map((m) => (typeof m === "string" ? m : m?.name)) : [];
    room.members = new Set(names.filter((n) => typeof n === "string"));
    // `accounts` lists the members who are accounts; everyone else present is a guest.
    const accounts = new Set(Array.isArray(reply.accounts) ? reply.accounts : []);
    for (const n of room.members) {
      if (accounts.has(n)) room.guests.delete(n);
      else room.guests.add(n);
    }
    const history = (Array.isArray(reply.history) ? reply.history : []).filter(isEvent);
    const lastSeq = Number.isInteger(reply.last_seq) ? reply.last_seq : 0;

    if (since !== undefined && lastSeq < since) {
      // The server has fewer messages than we saw: its history was reset (a
      // new or in-memory database). Start over, or its new seq 1, 2... would
      // be hidden as duplicates of the old ones.
      room.messages = [];
      room.seqs.clear();
      room.holes = [];
      room.read = newReadState();
      since = undefined;
    }
    if (since === undefined) {
      // First join: the newest messages; anything older is one scroll away.
      const added = room.insert(history);
      room.lastSeq = Math.max(lastSeq, maxSeq(history) ?? 0);
      room.hasOlder = room.firstSeq > 1;
      room.synced = true;
      const firstVisit = this.account && !room.listed && !room.fresh;
      if (!firstVisit) room.read = fromServer(room.read, reply, room.lastSeq);
      // No marker from the server (a guest, a first visit, an older server):
      // what was there before we came is not news, unless someone brought us in.
      if (room.read.marker === null) {
        room.read = markSeen(room.read, room.fresh ? 0 : room.lastSeq);
        if (firstVisit && room.lastSeq > 0) this.#sendRead(room);
      }
      this.#emit("messages", { room, added, mode: "initial" });
      this.#emit("unread", { room });
    } else {
      // A resume: `history` is everything after `since`, unless truncated.
      const top = maxSeq(history) ?? since;
      room.holes = [];
      if (reply.truncated && lastSeq > top) room.holes.push({ from: top + 1, to: lastSeq });
      room.lastSeq = Math.max(room.lastSeq, top, lastSeq);
      this.#take(room, history, "resume");
      this.#serverRead(room, reply, room.lastSeq);
      // Read while the link was down: the server has not heard of it yet.
      if (Number.isInteger(reply.read) && room.read.marker !== null && room.read.marker > reply.read) this.#sendRead(room);
    }
    this.#emit("members", { room });

    // Messages typed while we were away go out now, in the order they were
    // typed, from the oldest not acknowledged: the server answers a repeated
    // ref with the message it already stored.
    this.#pump(room);
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
        const messages = (Array.isArray(reply.messages) ? reply.messages : []).filter(isEvent);
        this.#take(room, messages, "fill");
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

  /** Send the room's oldest unacknowledged say, unless one is in flight or waiting to be retried. */
  #pump(room) {
    if (!room.live || room.sending !== null || room.retryTimer !== 0 || this.rooms.get(room.name) !== room) return;
    const head = room.outbox.find((e) => e.state === "sending");
    if (head !== undefined) this.#transmit(room, head);
  }

  #transmit(room, entry) {
    room.sending = entry;
    this.conn
      .request({ type: "say", room: room.name, text: entry.text, ref: entry.ref })
      .then((message) => {
        // The acknowledgement is our own copy of the message: #message takes
        // the entry out of the outbox and sends the next one.
        this.#message(message);
        if (room.sending === entry) room.sending = null;
        if (room.outbox.includes(entry)) this.#fail(room, entry, "the server's answer was not understood");
        this.#pump(room);
      })
      .catch((err) => {
        if (room.sending === entry) room.sending = null;
        // Acknowledged meanwhile (a late answer to an earlier try), or discarded.
        if (!room.outbox.includes(entry)) return this.#pump(room);
        // Offline: the rejoin sends it again, and those after it, in order.
        if (err instanceof Disconnected) return;
        if (SAY_RETRY_CODES.has(err.code)) {
          // Not now: it stays the head, and those after it keep waiting.
          entry.tries += 1;
          const cap = err.code === "rate_limited" ? RATE_RETRY_MAX_MS : SAY_RETRY_MAX_MS;
          const delay = Math.min(cap, SAY_RETRY_BASE_MS * 2 ** (entry.tries - 1));
          clearTimeout(room.retryTimer);
          room.retryTimer = setTimeout(() => {
            room.retryTimer = 0;
            this.#pump(room);
          }, delay);
          return;
        }
        // too_long, empty...: this one can never be stored as it is. Show
        // why, and let the rest go on.
        this.#fail(room, entry, err.message);
        this.#pump(room);
      });
  }

  #fail(room, entry, error) {
    entry.state = "failed";
    entry.error = error;
    this.#save(room, entry);
    this.#emit("outbox", { room });
  }

  #save(room, entry) {
    this.pending?.put({ room: room.name, ref: entry.ref, text: entry.text, order: entry.order, failed: entry.state === "failed", error: entry.error });
  }

  #nextOrder() {
    return this.pending?.nextOrder() ?? 0;
  }

  // -- frames nobody asked for ------------------------------------------------

  #frame(frame) {
    switch (frame.type) {
      case "message":
      case "edit":
      case "delete":
      case "reaction":
        this.#message(frame);
        break;
      case "read": {
        // Read on another device (or a late answer to ours).
        const room = this.rooms.get(frame.room);
        if (room !== undefined) this.#serverRead(room, { ...frame, read: frame.seq }, room.lastSeq);
        break;
      }
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
      case "removed":
        this.#removed(frame);
        break;
      case "invited":
        this.#invited(frame.room);
        break;
      case "role":
        this.#role(frame);
        break;
      case "error":
        // Typing is best effort; its errors (rate_limited...) would only be noise.
        if (frame.ref === "typing") return;
        // A say whose request timed out is being sent again: a late "not
        // now" for the earlier try changes nothing.
        if (SAY_RETRY_CODES.has(frame.code) && this.#outboxHas(frame.ref)) return;
        // A late refusal for good: show it on the message.
        if (this.#failOutbox(frame)) return;
        this.#emit("notice", { code: frame.code, message: frame.message });
        break;
      default:
        // left, pong, late replies to requests that timed out: nothing to do.
        break;
    }
  }

  #message(frame) {
    if (!isEvent(frame)) return;
    const room = this.rooms.get(frame.room);
    if (room === undefined) return;
    const acked = typeof frame.ref === "string" ? room.outbox.find((e) => e.ref === frame.ref) : undefined;
    if (acked !== undefined) {
      // Stored: only now may the page forget it.
      room.outbox = room.outbox.filter((e) => e !== acked);
      this.pending?.remove(acked.ref);
      if (room.sending === acked) room.sending = null;
      // A late answer to a try that timed out, while the next try waits:
      // nothing is left to wait for.
      clearTimeout(room.retryTimer);
      room.retryTimer = 0;
      this.#emit("outbox", { room });
    }
    // Live messages come in seq order without gaps; should one ever skip
    // ahead, fetch what it skipped rather than lose it quietly.
    if (room.synced && frame.seq > room.lastSeq + 1) {
      room.holes.push({ from: room.lastSeq + 1, to: frame.seq - 1 });
      this.#fillHoles(room);
    }
    room.lastSeq = Math.max(room.lastSeq, frame.seq);
    if (frame.type === "message" && room.typing.delete(frame.name)) this.#emit("typing", { room });
    this.#take(room, [frame], "live");
    if (acked !== undefined) this.#pump(room);
  }

  /** Events into a room; tell the page what was added and what changed. */
  #take(room, events, mode) {
    const { added, changed } = room.ingest(events);
    if (added.length) this.#emit("messages", { room, added, mode });
    if (changed.length) this.#emit("changed", { room, changed });
    if (added.length || changed.length) this.#emit("unread", { room });
  }

  /** The server's read marker and counts for a room (`joined`, `welcome`, `read`), covering up to seq `at`. */
  #serverRead(room, frame, at) {
    const before = room.read;
    room.read = fromServer(room.read, frame, at);
    if (room.read !== before) this.#emit("unread", { room });
  }

  #presence(frame) {
    const room = this.rooms.get(frame.room);
    if (room === undefined) return;
    // A busy room's changes come together, in order, as `changes` (docs/protocol.md); one comes as the frame itself.
    const changes = Array.isArray(frame.changes) ? frame.changes : [frame];
    let roster = false;
    for (const change of changes) {
      if (change === null || typeof change !== "object" || typeof change.name !== "string") continue;
      if (change.event === "join") {
        // A presence says `account: true` for an account; any other name present is a guest.
        if (change.account === true) room.guests.delete(change.name);
        else room.guests.add(change.name);
        room.members.add(change.name);
        // An account that joins a public room becomes a member of it: the list of roles changed.
        if (this.account && !room.roster.has(change.name) && !room.guests.has(change.name)) roster = true;
      } else if (change.event === "leave") {
        room.members.delete(change.name);
        if (room.typing.delete(change.name)) this.#emit("typing", { room });
      }
    }
    if (roster) this.loadRoster(room.name);
    this.#emit("members", { room });
  }

  #outboxHas(ref) {
    return typeof ref === "string" && [...this.rooms.values()].some((room) => room.outbox.some((e) => e.ref === ref));
  }

  #failOutbox(frame) {
    if (typeof frame.ref !== "string") return false;
    for (const room of this.rooms.values()) {
      const entry = room.outbox.find((e) => e.ref === frame.ref);
      if (entry !== undefined) {
        this.#fail(room, entry, frame.message);
        if (room.sending !== entry) this.#pump(room);
        return true;
      }
    }
    return false;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
