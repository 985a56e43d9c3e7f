/**
 * The socket to the chat server, and nothing else.
 *
 * It connects, waits for `welcome`, keeps the link honest with a heartbeat,
 * reconnects with exponential backoff and jitter when the link drops, and
 * matches replies to requests by `ref`. It knows nothing about rooms
 * (sync.js) or the page (app.js).
 *
 * Events (all CustomEvent, data in `detail`):
 *   state    {state, retryAt}  the connection state changed (see State)
 *   welcome  the welcome frame: the server accepted us; (re)join rooms now
 *   down     {}                a link that was online is gone; requests failed
 *   frame    a server frame that is not the answer to a request
 *   refused  {}                a socket closed before it opened: the server may
 *                              have refused the handshake (HTTP 401: a session
 *                              that ended), or be away; the page can ask which
 *   fatal    {reason}          the server refused us for good (bad_name, name_taken,
 *                              unauthorized, account_disabled) or ended our
 *                              session (logged_out, signed_out)
 */

export const State = Object.freeze({
  CONNECTING: "connecting", // the first attempt, before the first welcome
  ONLINE: "online", // welcome received: frames flow
  RECONNECTING: "reconnecting", // lost: a retry is scheduled or under way
  CLOSED: "closed", // stopped for good: logout, or the server refused our name
});

// The first retry comes quickly because the usual cause is a server restart,
// which takes about a second. Doubling from there up to 30 s keeps a long
// outage from turning every open tab into a flood, yet the page recovers
// within half a minute of the server coming back.
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
// The browser cannot see a connection that died silently (a laptop that slept,
// a NAT that forgot us) until it tries to use it. One ping every 25 s finds it;
// a pong later than 10 s means the link is gone.
const HEARTBEAT_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
// A handshake or welcome that never arrives must not leave us hanging forever.
const WELCOME_TIMEOUT_MS = 10_000;
// A reply later than this is treated as lost; the caller decides what to do.
const REQUEST_TIMEOUT_MS = 20_000;
// Close reasons after which retrying cannot help: the page needs a new login.
// (1008 unauthorized: guests are not allowed; account_disabled: an admin's doing.)
const FATAL_REASONS = new Set(["bad_name", "name_taken", "unauthorized", "account_disabled"]);
// Closed with 1000 and one of these: this session ended (signed out, maybe in
// another tab; a password change elsewhere): back to the sign-in page.
const ENDED_REASONS = new Set(["logged_out", "signed_out"]);

/** A request the server answered with an `error` frame. */
export class RequestError extends Error {
  constructor(frame) {
    super(frame.message || frame.code);
    this.code = frame.code;
  }
}

/** The link dropped before the answer came; the request may or may not have been applied. */
export class Disconnected extends Error {
  constructor() {
    super("not connected");
    this.code = "disconnected";
  }
}

/** No answer within the request's timeout. */
export class TimedOut extends Error {
  constructor() {
    super("the server did not answer in time");
    this.code = "timeout";
  }
}

/**
 * Milliseconds to wait before retry number `attempt` (0-based).
 *
 * "Equal jitter": half of the exponential step is fixed and half random. The
 * random half spreads out the tabs that a server restart disconnected all at
 * once; the fixed half keeps the delay from collapsing to zero, which would
 * make a failing server see a hot loop.
 */
export function backoffDelay(attempt, random = Math.random) {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return step / 2 + random() * (step / 2);
}

/**
 * A fresh random ref (at most 64 characters, as the protocol requires).
 * getRandomValues, unlike crypto.randomUUID, also exists on plain-http pages
 * served on a LAN address.
 */
export function newRef(prefix = "r") {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return prefix + "-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The WebSocket URL of the page's own server. */
export function socketUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

export class Connection extends EventTarget {
  #url;
  #socket = null;
  #state = State.CONNECTING;
  #everOnline = false;
  #up = false; // the current socket got its welcome
  #attempt = 0; // failed attempts since the last welcome
  #retryTimer = 0;
  #retryAt = 0;
  #welcomeTimer = 0;
  #heartbeatTimer = 0;
  #waiters = new Map(); // ref -> {resolve, reject, timer}

  constructor(url) {
    super();
    this.#url = url;
  }

  get state() {
    return this.#state;
  }

  /** When the next attempt starts (epoch ms), while reconnecting; else 0. */
  get retryAt() {
    return this.#retryTimer ? this.#retryAt : 0;
  }

  get online() {
    return this.#state === State.ONLINE;
  }

  start() {
    // The OS knows before our backoff timer does that the network is back.
    window.addEventListener("online", () => this.retryNow());
    this.#open();
  }

  /** Skip the rest of the backoff wait (the "retry now" button, the network coming back). */
  retryNow() {
    if (this.#retryTimer !== 0 && this.#socket === null && this.#state !== State.CLOSED) this.#open();
  }

  /**
   * Close for good (logout). Resolves once the server has seen the close, so
   * that it has released our name before the logout request reaches it.
   */
  stop() {
    this.#setState(State.CLOSED);
    this.#clearRetry();
    const socket = this.#socket;
    this.#socket = null;
    this.#teardown();
    if (socket === null || socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      socket.onclose = () => resolve();
      socket.onmessage = null;
      socket.close(1000, "bye");
      // Never hold the logout hostage to a server that does not answer.
      setTimeout(resolve, 1500);
    });
  }

  /** Send a frame that needs no answer. False (and nothing sent) when not online. */
  send(frame) {
    if (!this.online || this.#socket === null || this.#socket.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Send a frame and resolve with the server frame that carries its ref back.
   * Rejects with RequestError (an `error` frame), Disconnected or TimedOut.
   * The frame's own `ref` is kept when it has one (says keep theirs across
   * retries so that the server can drop duplicates).
   */
  request(frame, timeoutMs = REQUEST_TIMEOUT_MS) {
    const ref = frame.ref ?? newRef("q");
    return new Promise((resolve, reject) => {
      if (!this.send({ ...frame, ref })) {
        reject(new Disconnected());
        return;
      }
      this.#waiters.get(ref)?.reject(new Disconnected()); // superseded by this one
      const timer = setTimeout(() => {
        this.#waiters.delete(ref);
        reject(new TimedOut());
      }, timeoutMs);
      this.#waiters.set(ref, { resolve, reject, timer });
    });
  }

  // -- socket lifecycle -----------------------------------------------------

  #open() {
    this.#clearRetry();
    this.#setState(this.#everOnline ? State.RECONNECTING : State.CONNECTING);
    let socket;
    try {
      socket = new WebSocket(this.#url);
    } catch (err) {
      console.error("cannot open the chat socket", err);
      this.#scheduleRetry();
      return;
    }
    this.#socket = socket;
    socket.onopen = () => {
      socket.opened = true;
    };
    this.#welcomeTimer = setTimeout(() => this.#drop(socket, "no welcome"), WELCOME_TIMEOUT_MS);
    socket.onmessage = (event) => this.#receive(socket, event.data);
    socket.onclose = (event) => this.#closed(socket, event);
    // An `error` event is always followed by `close`, which does the work.
  }

  #receive(socket, data) {
    if (socket !== this.#socket) return; // a socket we already gave up on
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      console.warn("ignoring a frame that is not JSON", data);
      return;
    }
    if (frame === null || typeof frame !== "object" || typeof frame.type !== "string") return;

    if (frame.type === "welcome") {
      clearTimeout(this.#welcomeTimer);
      this.#attempt = 0;
      this.#everOnline = true;
      this.#up = true;
      this.#setState(State.ONLINE);
      this.#heartbeatTimer = setInterval(() => this.#heartbeat(socket), HEARTBEAT_MS);
      this.#emit("welcome", frame);
      return;
    }
    const waiter = typeof frame.ref === "string" ? this.#waiters.get(frame.ref) : undefined;
    if (waiter !== undefined) {
      this.#waiters.delete(frame.ref);
      clearTimeout(waiter.timer);
      if (frame.type === "error") waiter.reject(new RequestError(frame));
      else waiter.resolve(frame);
      return;
    }
    this.#emit("frame", frame);
  }

  #heartbeat(socket) {
    this.request({ type: "ping" }, PONG_TIMEOUT_MS).catch((err) => {
      // A rate_limited pong still proves the link is alive.
      if (err instanceof TimedOut) this.#drop(socket, "heartbeat timeout");
    });
  }

  #closed(socket, event) {
    if (socket !== this.#socket) return;
    this.#socket = null;
    this.#teardown();
    if (this.#state === State.CLOSED) return;
    // A browser does not tell a script why a handshake failed (a 401 and a
    // server that is down both look like 1006): whoever can ask, may.
    if (!socket.opened) this.#emit("refused", {});
    // 1000 "logged_out": this session logged out (maybe in another tab).
    if ((event.code === 1008 && FATAL_REASONS.has(event.reason)) ||
        (event.code === 1000 && ENDED_REASONS.has(event.reason))) {
      this.#setState(State.CLOSED);
      this.#emit("fatal", { reason: event.reason });
      return;
    }
    this.#scheduleRetry();
  }

  /**
   * Give up on a socket that stopped answering. Waiting for its closing
   * handshake could take minutes on a dead link, so detach it and move on.
   */
  #drop(socket, why) {
    if (socket !== this.#socket) return;
    socket.onclose = null;
    socket.onmessage = null;
    try {
      socket.close(4000, why);
    } catch {
      // Already closing: nothing more to do with it.
    }
    this.#socket = null;
    this.#teardown();
    this.#scheduleRetry();
  }

  /** Stop the timers of the link that just ended and fail its open requests. */
  #teardown() {
    clearTimeout(this.#welcomeTimer);
    clearInterval(this.#heartbeatTimer);
    const waiters = [...this.#waiters.values()];
    this.#waiters.clear();
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Disconnected());
    }
    if (this.#up) {
      this.#up = false;
      this.#emit("down", {});
    }
  }

  #scheduleRetry() {
    const delay = backoffDelay(this.#attempt++);
    this.#retryAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = 0;
      this.#open();
    }, delay);
    this.#setState(this.#everOnline ? State.RECONNECTING : State.CONNECTING);
  }

  #clearRetry() {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = 0;
  }

  #setState(state) {
    this.#state = state;
    this.#emit("state", { state, retryAt: this.retryAt });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
