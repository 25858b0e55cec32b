// Small DOM helpers shared by the page's modules.
//
// `h()` builds elements from data without ever parsing HTML, so user content
// (titles, previews, messages) can only ever end up as text.

/**
 * h('button', {class: 'x', 'data-testid': 'send', onclick: fn, text: 'Send'}, child…)
 * Keys: `class`, `text` (textContent), `on<event>` (listener), booleans set/remove
 * the attribute, everything else is an attribute. Children: nodes or strings.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Set or clear a boolean-ish attribute. */
export function setAttr(el, name, value) {
  if (value == null || value === false) el.removeAttribute(name);
  else el.setAttribute(name, value === true ? '' : String(value));
}

const pad = (n) => String(n).padStart(2, '0');

/** Local `YYYY-MM-DD HH:MM` (the seed's list format); '' for a missing date. */
export function formatDateTime(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `HH:MM` for today, the full date and time otherwise. */
export function formatShortTime(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return '';
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay ? `${pad(d.getHours())}:${pad(d.getMinutes())}` : formatDateTime(iso);
}

/** A trailing-edge debounce with `.cancel()` and `.flush()`. */
export function debounce(fn, ms) {
  let timer = null;
  let lastArgs = [];
  const run = () => {
    timer = null;
    fn(...lastArgs);
  };
  const debounced = (...args) => {
    lastArgs = args;
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
  debounced.cancel = () => clearTimeout(timer);
  debounced.flush = () => {
    if (timer) {
      clearTimeout(timer);
      run();
    }
  };
  return debounced;
}

/**
 * Coalesce calls into one per animation frame: streaming tokens can arrive far
 * faster than the screen refreshes.
 */
export function frameBatched(fn) {
  let scheduled = false;
  return () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      fn();
    });
  };
}

/** Save a Blob under a filename (a temporary object URL and a download link). */
export function downloadBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  // Revoking at once can cancel the download in some browsers.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A message as a one-line preview: whitespace runs become one space. */
export function oneLine(text) {
  return String(text ?? '').replace(/\s+/g, ' ').trim();
}

export const UNTITLED = 'New chat';

/**
 * The one name of a session, the same in the list, the header and the tab: its title,
 * else its first user message (the list's `preview`, trimmed), else "New chat".
 */
export function sessionLabel(s) {
  return oneLine(s?.title) || oneLine(s?.preview).slice(0, 100) || UNTITLED;
}

/** Comma- or newline-separated tags → a clean, de-duplicated list. */
export function parseTags(text) {
  const seen = new Map(); // "work" and "Work" are one tag: the first spelling is kept
  for (const raw of String(text).split(/[,\n]/)) {
    const tag = raw.trim().replace(/^#/, '').slice(0, 64);
    if (tag && !seen.has(tag.toLowerCase())) seen.set(tag.toLowerCase(), tag);
  }
  return [...seen.values()].slice(0, 64);
}
