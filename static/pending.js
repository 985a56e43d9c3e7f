/**
 * The page's unsent messages, kept in the browser's storage so that a reload,
 * a crash or a closed tab reopened does not lose them.
 *
 * Storage (localStorage) is already per server: per origin. Within it, every
 * entry is keyed by the signed-in name and the message's ref, one key per
 * message. One key per message, rather than one list per name, because two
 * tabs of one person write at once: each adds and removes only its own keys,
 * so neither overwrites what the other saved.
 *
 * An entry is written before its `say` goes out and removed only when the
 * server's acknowledgement (the stored message) arrives. Resending it after a
 * reload is safe because the page's session survives the reload (it is in the
 * login cookie) and the server answers a repeated ref of the same session with
 * the message it already stored, instead of storing it twice.
 *
 * No DOM and no network here: `storage` is anything with localStorage's
 * getItem/setItem/removeItem/key/length, or null when the browser has none.
 */

// Not under "chat:v1:", where app.js keeps each name's rooms as
// "chat:v1:NAME": whatever the names, no key of one is read as the other's.
const PREFIX = "chat:pending:v1:";

function isEntry(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof value.room === "string" &&
    typeof value.ref === "string" &&
    typeof value.text === "string" &&
    Number.isFinite(value.order)
  );
}

export class PendingStore {
  #storage;
  #prefix;
  #last = 0; // the newest order handed out: keeps this tab's orders increasing

  constructor(storage, name) {
    this.#storage = storage;
    // Encoded, so that the name "a" never reads the keys of the name "a:b".
    this.#prefix = `${PREFIX}${encodeURIComponent(name)}:`;
  }

  /**
   * A sort key for a message typed now: after every message this tab stored
   * or loaded. Milliseconds times 1000 leave room for 1000 messages in one
   * millisecond and stay below 2^53 for the next hundred years.
   */
  nextOrder(now = Date.now()) {
    this.#last = Math.max(this.#last + 1, now * 1000);
    return this.#last;
  }

  /** Every saved entry of this name, in the order they were typed. */
  load() {
    const entries = [];
    for (const key of this.#keys()) {
      try {
        const value = JSON.parse(this.#storage.getItem(key));
        if (isEntry(value)) {
          entries.push({
            room: value.room,
            ref: value.ref,
            text: value.text,
            order: value.order,
            failed: value.failed === true,
            error: typeof value.error === "string" ? value.error : null,
          });
          continue;
        }
      } catch {
        // Garbled: fall through and drop it.
      }
      this.#remove(key);
    }
    entries.sort((a, b) => a.order - b.order);
    if (entries.length) this.#last = Math.max(this.#last, entries[entries.length - 1].order);
    return entries;
  }

  /** Save (or update) one entry: {room, ref, text, order, failed, error}. False when it could not be kept. */
  put(entry) {
    if (this.#storage === null) return false;
    const { room, ref, text, order, failed, error } = entry;
    try {
      this.#storage.setItem(this.#prefix + ref, JSON.stringify({ room, ref, text, order, failed: !!failed, error: error ?? null }));
      return true;
    } catch {
      // Storage full or disabled: the message is still sent; only a reload would lose it.
      return false;
    }
  }

  remove(ref) {
    this.#remove(this.#prefix + ref);
  }

  /** Forget every entry of this name (logout). */
  clear() {
    for (const key of this.#keys()) this.#remove(key);
  }

  #keys() {
    if (this.#storage === null) return [];
    const keys = [];
    try {
      for (let i = 0; i < this.#storage.length; i++) {
        const key = this.#storage.key(i);
        if (key !== null && key.startsWith(this.#prefix)) keys.push(key);
      }
    } catch {
      // Storage disabled: nothing saved.
    }
    return keys;
  }

  #remove(key) {
    try {
      this.#storage?.removeItem(key);
    } catch {
      // Disabled storage holds nothing to remove.
    }
  }
}
