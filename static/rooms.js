/**
 * What the page knows about rooms beyond their messages: how each is called
 * on screen, which list it belongs in, and which controls the page offers to
 * whom. Pure functions over plain data (the server's MyRoom / joined fields),
 * no DOM, no network: sync.js keeps the data, view.js and app.js show it.
 *
 * The server decides every action (chat/core/policy.py); `allowed` here only
 * mirrors it so that the page does not offer buttons that are bound to be
 * refused. A button the server still refuses shows its error.
 */

// A public room's name, as the server accepts it (chat/core/validation.py).
export const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
// A private room's or DM's id: made by the server, never typed by a person.
export const PRIVATE_ID_RE = /^~[a-z2-7]{20}$/;
// A private room's title (validation.normalize_title): 1 to 64 characters.
export const TITLE_MAX_CHARS = 64;

export const Role = Object.freeze({ OWNER: "owner", MODERATOR: "moderator", MEMBER: "member", BANNED: "banned" });

const RANK = { owner: 3, moderator: 2, member: 1 };

/** What the user typed, as the server will name the room: "#Lobby " -> "lobby". */
export function normalizeRoom(raw) {
  return raw.trim().replace(/^#/, "").toLowerCase();
}

export function isRoomId(id) {
  return ROOM_RE.test(id) || PRIVATE_ID_RE.test(id);
}

/**
 * A room's description from any of the server's frames that carry one
 * (welcome's MyRoom, invited, created, joined), merged over what we knew.
 * Fields the frame does not carry keep their old value: `joined` from an
 * older server carries none of them.
 */
export function roomInfo(id, frame = {}, old = undefined) {
  const info = old ? { ...old } : { room: id, title: "", visibility: "public", kind: "room", role: null, people: [] };
  if (typeof frame.title === "string") info.title = frame.title;
  if (frame.visibility === "public" || frame.visibility === "private") info.visibility = frame.visibility;
  if (frame.kind === "room" || frame.kind === "dm") info.kind = frame.kind;
  if ("role" in frame && (frame.role === null || typeof frame.role === "string")) info.role = frame.role;
  if (Array.isArray(frame.people)) info.people = frame.people.filter((p) => typeof p === "string");
  // A server-made id is private whatever an old frame left out.
  if (PRIVATE_ID_RE.test(id) && !("visibility" in frame) && !old) info.visibility = "private";
  return info;
}

/** The people of a DM other than me, by name. */
export function dmOthers(info, me) {
  const others = info.people.filter((p) => p !== me);
  return others.length ? others : info.people;
}

/**
 * How a room is called on screen: "# general" for a public room, its title
 * for a private one, the other people's names for a DM.
 */
export function roomLabel(info, me) {
  if (info.kind === "dm") {
    const names = dmOthers(info, me);
    return names.length ? names.join(", ") : "Direct message";
  }
  if (info.visibility === "private") return info.title || "Private room";
  return `# ${info.title || info.room}`;
}

/** The sidebar's lists: rooms and DMs (each in the order given), then public rooms not joined. */
export function sidebarLists(joined, directory) {
  const rooms = [];
  const dms = [];
  for (const info of joined) (info.kind === "dm" ? dms : rooms).push(info);
  const ids = new Set(joined.map((i) => i.room));
  const others = directory.filter(
    (r) => r && typeof r.room === "string" && !ids.has(r.room) && r.kind !== "dm" && r.visibility !== "private",
  );
  return { rooms, dms, others };
}

/**
 * Whether the page offers `action` to someone whose role in the room is
 * `myRole`, on a person whose role is `target` (undefined: not a member;
 * "banned"), in a room of `kind`. Mirrors chat/core/policy.py's moderation
 * rules. `targetGuest`: the person is a guest (no account to ban or promote).
 */
export function allowed(action, { account, myRole, kind = "room", visibility = "public", target, targetGuest = false, self = false }) {
  if (!account) return false; // guests moderate nothing and start no DMs
  if (action === "dm") return !self && !targetGuest;
  if (kind === "dm") return false; // a DM's people are fixed
  const rank = RANK[myRole] ?? 0;
  const targetRank = RANK[target] ?? 0;
  switch (action) {
    case "invite":
      return visibility === "private" && rank >= RANK.moderator;
    case "remove":
      if (self) return false; // leaving is the Leave button
      return rank >= RANK.moderator && (targetGuest || (targetRank > 0 && targetRank < rank));
    case "ban":
      return !self && !targetGuest && target !== Role.BANNED && rank >= RANK.moderator && targetRank < rank;
    case "unban":
      return target === Role.BANNED && rank >= RANK.moderator;
    case "moderator":
      return myRole === Role.OWNER && target === Role.MEMBER;
    case "member":
      return myRole === Role.OWNER && target === Role.MODERATOR;
    default:
      return false;
  }
}

/** Whether Leave is offered: an owner cannot leave their room (the server refuses). */
export function mayLeave(info) {
  return info.role !== Role.OWNER;
}

/** The member list: me first, then owners, moderators, members, by name; banned apart. */
export function memberRows({ roster, online, guests, me }) {
  const rows = new Map();
  for (const [name, role] of roster) rows.set(name, { name, role, online: online.has(name), guest: false });
  for (const name of online) {
    if (!rows.has(name)) rows.set(name, { name, role: null, online: true, guest: guests.has(name) });
  }
  const order = (r) => (r.name === me ? 0 : 4 - (RANK[r.role] ?? 0));
  const all = [...rows.values()].sort((a, b) => order(a) - order(b) || a.name.localeCompare(b.name));
  return {
    members: all.filter((r) => r.role !== Role.BANNED),
    banned: all.filter((r) => r.role === Role.BANNED),
  };
}

/** What the server's refusal codes mean to a person; the server's own message follows. */
export const FRIENDLY = {
  rate_limited: "Slow down a little:",
  too_long: "That message is too long:",
  empty: "Nothing to send:",
  bad_room: "That room name does not work:",
  too_many_rooms: "You are in too many rooms:",
  unavailable: "The server could not store that; try again.",
  not_member: "You are not in that room:",
  timeout: "The server is slow to answer:",
  not_found: "Not found:",
  forbidden: "Not allowed:",
  unauthorized: "That needs an account (sign in or sign up):",
  room_exists: "That room already exists; join it instead:",
};

/** A notice for an error frame or a refused request. */
export function friendly(code, message) {
  const lead = FRIENDLY[code];
  const text = message || code || "something went wrong";
  return lead ? `${lead} ${text}` : text;
}
