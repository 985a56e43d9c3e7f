/**
 * DOM building blocks for the chat page. Pure rendering: these functions get
 * plain data and return or fill elements; app.js decides when to call them.
 *
 * Every piece of text from the network goes in with textContent, never as
 * HTML, so a message like `<img src=x onerror=alert(1)>` shows as those
 * characters. Nothing here sets innerHTML.
 */

// Messages from the same person within this window are grouped under one
// name line, as most chat apps do: less noise when someone writes in bursts.
const GROUP_WINDOW_MS = 5 * 60 * 1000;
// Name colours: a fixed set of classes (style.css has light and dark
// variants), because the page's CSP allows no inline style attributes.
const HUES = 8;

/** Create an element: el("li", {class: "x", text: "y", data: {seq: 1}}, child...). */
export function el(tag, { class: className, text, data, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [key, value] of Object.entries(data ?? {})) node.dataset[key] = String(value);
  for (const [key, value] of Object.entries(attrs ?? {})) node.setAttribute(key, String(value));
  for (const child of children) if (child) node.append(child);
  return node;
}

/** The same name always gets the same colour class. */
export function hueClass(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hue-${hash % HUES}`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric", year: "numeric" });

function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(ts, now = Date.now()) {
  if (dayKey(ts) === dayKey(now)) return "Today";
  if (dayKey(ts) === dayKey(now - 86_400_000)) return "Yesterday";
  return dayFormat.format(new Date(ts));
}

// A plain list item ("Today"), not role=separator: a list may hold only list
// items, and a separator's role would take this one out of the list.
function daySeparator(ts) {
  return el("li", { class: "day", data: { day: dayKey(ts) } }, el("span", { text: dayLabel(ts) }));
}

/** Does `msg` continue the group of the message `prev` (same author, same day, shortly after)? */
function continues(prev, msg) {
  return (
    prev !== undefined &&
    prev.name === msg.name &&
    msg.ts - prev.ts < GROUP_WINDOW_MS &&
    dayKey(prev.ts) === dayKey(msg.ts)
  );
}

/** One stored message. `grouped`: under the previous message's name line. */
export function messageNode(msg, me, grouped) {
  const when = new Date(msg.ts);
  const classes = ["msg"];
  if (msg.name === me) classes.push("msg--mine");
  if (grouped) classes.push("msg--cont");
  return el(
    "li",
    { class: classes.join(" "), data: { seq: msg.seq, name: msg.name, ts: msg.ts, testid: "message" } },
    el(
      "div",
      { class: "msg-meta" },
      el("span", { class: `msg-name ${hueClass(msg.name)}`, text: msg.name, data: { testid: "message-name" } }),
      el("time", {
        class: "msg-time",
        text: timeFormat.format(when),
        attrs: { datetime: when.toISOString(), title: fullFormat.format(when) },
        data: { testid: "message-time" },
      }),
    ),
    el("div", { class: "msg-text", text: msg.text, data: { testid: "message-text" } }),
  );
}

/** Fill `list` with all of `messages` (ascending), day separators included. */
export function renderMessages(list, messages, me) {
  const fragment = document.createDocumentFragment();
  let prev;
  for (const msg of messages) {
    if (prev === undefined || dayKey(prev.ts) !== dayKey(msg.ts)) fragment.append(daySeparator(msg.ts));
    fragment.append(messageNode(msg, me, continues(prev, msg)));
    prev = msg;
  }
  list.replaceChildren(fragment);
}

/**
 * Append messages that are all newer than the last one shown: the live path,
 * which leaves the rest of the list (and the user's text selection) alone.
 * Returns false, appending nothing, when they do not all belong at the end;
 * the caller then re-renders the list.
 */
export function appendMessages(list, messages, me) {
  let last = list.lastElementChild;
  while (last !== null && !last.classList.contains("msg")) last = last.previousElementSibling;
  let prev = last ? { seq: Number(last.dataset.seq), name: last.dataset.name, ts: Number(last.dataset.ts) } : undefined;
  if (prev !== undefined && messages[0].seq <= prev.seq) return false;
  for (const msg of messages) {
    if (prev === undefined || dayKey(prev.ts) !== dayKey(msg.ts)) list.append(daySeparator(msg.ts));
    list.append(messageNode(msg, me, continues(prev, msg)));
    prev = msg;
  }
  return true;
}

/** The messages we sent that the server has not acknowledged yet. */
export function renderOutbox(list, entries, me, online) {
  list.replaceChildren(
    ...entries.map((entry) => {
      const failed = entry.state === "failed";
      const status = failed ? "Not sent" : online ? "Sending…" : "Waiting for connection…";
      const node = el(
        "li",
        { class: `msg msg--mine msg--pending${failed ? " msg--failed" : ""}`, data: { ref: entry.ref, testid: "pending-message" } },
        el(
          "div",
          { class: "msg-meta" },
          el("span", { class: `msg-name ${hueClass(me)}`, text: me }),
          el("span", { class: "msg-status", text: status }),
        ),
        el("div", { class: "msg-text", text: entry.text }),
      );
      if (failed) {
        node.append(
          el(
            "div",
            { class: "msg-actions" },
            el("span", { class: "msg-error", text: entry.error ?? "" }),
            el("button", { class: "link-btn", text: "Retry", attrs: { type: "button" }, data: { action: "retry" } }),
            el("button", { class: "link-btn", text: "Discard", attrs: { type: "button" }, data: { action: "discard" } }),
          ),
        );
      }
      return node;
    }),
  );
}

/**
 * The rooms sidebar: joined rooms with unread badges, then the other rooms
 * the server knows of, with how many people are in them.
 */
export function renderRoomList(joinedList, otherList, { joined, current, unread, directory }) {
  joinedList.replaceChildren(
    ...joined.map((name) => {
      const count = unread.get(name) ?? 0;
      const button = el(
        "button",
        {
          class: `room-btn${name === current ? " room-btn--current" : ""}${count ? " room-btn--unread" : ""}`,
          attrs: { type: "button" },
          data: { room: name, testid: `room-${name}` },
        },
        el("span", { class: "room-name", text: `# ${name}` }),
        count ? el("span", { class: "badge", text: count > 99 ? "99+" : String(count), data: { testid: `unread-${name}` }, attrs: { "aria-label": `${count} unread` } }) : null,
      );
      if (name === current) button.setAttribute("aria-current", "true");
      return el("li", {}, button);
    }),
  );
  const joinedSet = new Set(joined);
  const others = directory.filter((r) => !joinedSet.has(r.room));
  otherList.replaceChildren(
    ...others.map((r) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            class: "room-btn room-btn--other",
            attrs: { type: "button", title: `Join #${r.room}` },
            data: { room: r.room, join: "1", testid: `other-room-${r.room}` },
          },
          el("span", { class: "room-name", text: `# ${r.room}` }),
          r.members ? el("span", { class: "room-count", text: `${r.members} here` }) : null,
        ),
      ),
    ),
  );
  return others.length;
}

/** Members of the current room, me first, the rest by name. */
export function renderMembers(list, members, me) {
  const names = [...members].sort((a, b) => (b === me) - (a === me) || a.localeCompare(b));
  list.replaceChildren(
    ...names.map((name) =>
      el(
        "li",
        { class: "member", data: { name, testid: "member" } },
        el("span", { class: "presence-dot", attrs: { "aria-hidden": "true" } }),
        el("span", { class: `member-name ${hueClass(name)}`, text: name }),
        name === me ? el("span", { class: "member-you", text: " (you)" }) : null,
      ),
    ),
  );
}

/** "ann is typing…", "ann and bo are typing…", "ann, bo and 2 others are typing…". */
export function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  const rest = names.length - 2;
  return `${names[0]}, ${names[1]} and ${rest} other${rest > 1 ? "s" : ""} are typing…`;
}

/** A short, dismissable notice at the corner of the screen. */
export function toastNode(text, code) {
  return el("div", { class: "toast", text, data: { code: code ?? "", testid: "toast" }, attrs: { role: "status" } });
}
