/**
 * The JSON API from the account pages (tokens.js, admin.js), signed in by
 * the page's session cookie.
 *
 * Tornado checks XSRF on every request but GET: the token is in the page's
 * <meta name="xsrf"> (the cookie itself is HttpOnly, out of a script's
 * reach) and goes in the X-XSRFToken header. No DOM beyond that meta tag.
 */

/** A request the server refused: its HTTP status and the body's `code` and `message`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function xsrfToken(doc = document) {
  return doc.querySelector('meta[name="xsrf"]')?.getAttribute("content") ?? "";
}

/** `method` `path` with an optional JSON `body`; resolves with the JSON answer (null for 204). */
export async function api(method, path, body = undefined) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-XSRFToken"] = xsrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "offline", "The server cannot be reached; try again in a moment.");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  if (!response.ok) {
    const code = data?.code ?? data?.error ?? String(response.status);
    const message = response.status === 401 ? "Your sign-in has ended: sign in again." : (data?.message ?? response.statusText);
    throw new ApiError(response.status, code, message);
  }
  return data;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A time from the API (ms since the epoch) for people; `none` when there is none. */
export function when(ms, none = "never") {
  return Number.isFinite(ms) && ms > 0 ? dateFormat.format(new Date(ms)) : none;
}

/**
 * Copy `input`'s value. The Clipboard API exists only on secure pages
 * (https, localhost); elsewhere the text is selected for Ctrl+C / long press.
 * Resolves with what to tell the person.
 */
export async function copyFrom(input) {
  input.focus();
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
    return "Copied.";
  } catch {
    return "Selected: press Ctrl+C (⌘C) to copy.";
  }
}
