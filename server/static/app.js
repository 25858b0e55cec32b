// The page: wires the session manager to the header, the session browser, the
// conversation and the banners, and decides what to open on load (the last
// session of this browser, else a new chat, which is created on its first message).

import sessionManager from './sessionManager.js';
import { SessionBrowser } from './list.js';
import { ConversationView } from './conversation.js';
import { downloadBlob, frameBatched, h, oneLine, sessionLabel } from './dom.js';
import { fillIcons, icon } from './icons.js';
import { setupImport } from './importer.js';

fillIcons();

const manager = sessionManager;
const MESSAGE_LIMIT = 200; // long sessions open on their last messages; older on demand
const TOKEN_KEY = 'sessionlog:token';
const $ = (id) => document.getElementById(id);
const wide = window.matchMedia('(min-width: 900px)');

// ---- access token (servers started with --token) -----------------------------------------
// The page itself is served without one; the API needs it. It comes from the URL
// fragment (/#token=…: never sent to the server, so never in a log) or from the form
// below, and is remembered for this origin.

function readToken() {
  const fromHash = new URLSearchParams(window.location.hash.slice(1)).get('token');
  try {
    if (fromHash) {
      localStorage.setItem(TOKEN_KEY, fromHash);
      window.history.replaceState(null, '', window.location.pathname + window.location.search);
    }
    return fromHash || localStorage.getItem(TOKEN_KEY);
  } catch {
    return fromHash;
  }
}

// A session named in the URL (/#session=<id>, the link `sessionlog demo` prints) is the
// one to open; the fragment is then dropped so a later reload reopens the last session.
function takeSessionFromHash() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const id = params.get('session');
  if (!id) return null;
  params.delete('session');
  const rest = params.toString();
  window.history.replaceState(null, '', window.location.pathname + window.location.search
    + (rest ? `#${rest}` : ''));
  return id;
}

const sessionFromHash = takeSessionFromHash();
manager.token = readToken() || null;

function askForToken() {
  $('auth-banner').hidden = false;
  $('token-input').focus();
}

$('auth-banner').addEventListener('submit', (e) => {
  e.preventDefault();
  try {
    localStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
  } catch {
    /* the reload below then asks again */
  }
  window.location.reload(); // start over cleanly with the token in place
});

const isUnauthorized = (err) => err?.status === 401 || err?.code === 'unauthorized';

// ---- errors -------------------------------------------------------------------------

let errorTimer = null;

function describe(err) {
  if (err?.code === 'network') return 'the server is unreachable';
  return err?.message || String(err);
}

/** Show `what: why` (or just `what` when err is null) in the error banner. */
function showError(err, what) {
  if (isUnauthorized(err)) {
    askForToken();
    return;
  }
  // While offline the offline banner already says why things fail.
  if (err?.code === 'network' && manager.status !== 'online') return;
  const why = err ? describe(err) : '';
  $('error-text').textContent = what && why ? `${what}: ${why}` : what || why;
  $('error-banner').hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(hideError, 12_000);
}

function hideError() {
  $('error-banner').hidden = true;
}

$('error-dismiss').addEventListener('click', hideError);
manager.onError((err, ctx) => {
  const what = ctx?.op === 'retry' ? 'The server could not save yet (will retry)'
    : ctx?.op === 'append' ? 'A message was not saved' : 'Background sync failed';
  showError(err, what);
});

// ---- the session browser panel ---------------------------------------------------------
// A sidebar on wide screens, a modal panel on narrow ones (inert page behind it).

const browserEl = $('browser');
const sessionsButton = $('btn-sessions');

function isModal() {
  return !wide.matches;
}

function applyBrowserMode() {
  const open = document.body.dataset.browser === 'open';
  const modal = isModal() && open;
  browserEl.setAttribute('role', modal ? 'dialog' : 'region');
  if (modal) browserEl.setAttribute('aria-modal', 'true');
  else browserEl.removeAttribute('aria-modal');
  $('backdrop').hidden = !modal;
  $('chat').inert = modal;
  document.querySelector('.topbar').inert = modal;
  browserEl.inert = !open;
  sessionsButton.setAttribute('aria-expanded', String(open));
}

function openBrowser() {
  document.body.dataset.browser = 'open';
  applyBrowserMode();
  $('search').focus();
}

function closeBrowser({ restoreFocus = true } = {}) {
  if (document.body.dataset.browser !== 'open') return;
  const hadFocus = browserEl.contains(document.activeElement);
  document.body.dataset.browser = 'closed';
  applyBrowserMode();
  if (restoreFocus && hadFocus) sessionsButton.focus();
}

sessionsButton.addEventListener('click', openBrowser);
$('browser-close').addEventListener('click', () => closeBrowser());
$('backdrop').addEventListener('click', () => closeBrowser());
wide.addEventListener('change', applyBrowserMode);
document.body.dataset.browser = wide.matches ? 'open' : 'closed';
applyBrowserMode();

document.addEventListener('keydown', (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') {
    e.preventDefault();
    openBrowser();
  } else if (e.key === 'Escape' && browserEl.contains(document.activeElement)) {
    if (isModal()) closeBrowser();
    else $('composer').focus();
  }
});

// ---- opening and starting sessions ------------------------------------------------------

/** The open session as a list row (for lists fetched before it existed). */
function currentSummary() {
  const s = manager.session;
  if (!s || s.stale || s.deleted) return null;
  return {
    session_id: s.session_id, user_name: s.user_name, title: s.title, started_at: s.started_at,
    last_updated: s.last_updated, message_count: s.stats.total_messages,
    user_messages: s.stats.user_messages, assistant_messages: s.stats.assistant_messages,
    preview: firstUserText(s), type: s.metadata?.type || 'chat',
    tags: s.tags, pinned: s.pinned, archived: s.archived,
  };
}

/** The first user message of the open session, as the list's `preview` has it. */
function firstUserText(s) {
  if (!s.message_start) {
    const first = s.messages.find((m) => m.role === 'user');
    if (first) return first.content.slice(0, 100);
  }
  return browser?.items.get(s.session_id)?.preview ?? '';
}

const conversation = new ConversationView({
  manager,
  onError: showError,
  ensureSession: () => manager.ensureSession('User', { type: 'chat' }),
});
const browser = new SessionBrowser({
  manager, onOpen: openSession, onError: showError, currentSummary,
});

/** Open a session; with `hit` ({message_index, terms}) scroll to and mark that message. */
async function openSession(sessionId, hit = null) {
  if (isModal()) closeBrowser({ restoreFocus: false });
  try {
    if (sessionId !== manager.currentSessionId || manager.session?.stale) {
      await manager.loadSession(sessionId, { messageLimit: MESSAGE_LIMIT });
    }
    if (hit?.message_index != null) {
      conversation.render(); // the loaded messages must be on screen to scroll to one
      await conversation.showHit(hit.message_index, hit.terms);
    }
    if (isModal()) $('composer').focus();
  } catch (err) {
    if (err.code === 'not_found') browser.remove(sessionId);
    showError(err, 'Could not open the session');
  }
}

/** A new chat: nothing is created on the server until its first message is sent. */
function newChat() {
  manager.newChat();
  if (isModal()) closeBrowser({ restoreFocus: false });
  hideError();
  $('composer').focus();
}

$('btn-new').addEventListener('click', newChat);
$('browser-new').addEventListener('click', newChat);
$('deleted-new').addEventListener('click', newChat);
$('deleted-browse').addEventListener('click', openBrowser);

// ---- import ------------------------------------------------------------------------

setupImport({ manager, onDone: () => browser.reload(), onError: showError });

// ---- export --------------------------------------------------------------------------

for (const button of document.querySelectorAll('.export [data-format]')) {
  button.addEventListener('click', async () => {
    const sid = manager.currentSessionId;
    if (!sid) return;
    button.disabled = true;
    try {
      const { blob, filename } = await manager.exportSession(sid, button.dataset.format);
      downloadBlob(blob, filename);
    } catch (err) {
      showError(err, 'Could not export the session');
    } finally {
      button.disabled = false;
    }
  });
}

$('export-all').addEventListener('submit', async (e) => {
  e.preventDefault();
  const button = e.submitter || $('export-all').querySelector('button');
  button.disabled = true;
  try {
    const format = $('export-all-format').value;
    const { blob, filename } = await manager.exportSession('all', format);
    downloadBlob(blob, filename);
  } catch (err) {
    showError(err, 'Could not export the sessions');
  } finally {
    button.disabled = false;
  }
});

// ---- header, status, banners --------------------------------------------------------------

const STATUS_LABEL = { online: 'Online', connecting: 'Connecting…', offline: 'Offline' };

function renderStatus() {
  const status = manager.status;
  const el = $('connection-status');
  el.dataset.status = status;
  el.querySelector('.conn-label').textContent = STATUS_LABEL[status] ?? status;
  $('offline-banner').hidden = status !== 'offline';
  const n = manager.pendingCount();
  $('offline-pending').textContent = n ? `(${n} waiting)` : '';
}

const renderHeader = frameBatched(() => {
  const s = manager.session;
  $('current-session-id').textContent = s?.session_id ?? '';
  const title = s ? sessionLabel({ title: s.title, preview: firstUserText(s) }) : 'New chat';
  $('current-title').textContent = title;
  $('current-title').title = s ? oneLine(s.title || firstUserText(s)) || title : title;
  document.title = `${title} — sessionlog`;
  $('deleted-banner').hidden = !s?.deleted;
  for (const b of document.querySelectorAll('.export button')) b.disabled = !s || !!s.stale;

  const meta = [];
  if (s) {
    const n = s.stats?.total_messages ?? s.messages.length;
    meta.push(h('span', { class: 'meta-count', text: `${n} message${n === 1 ? '' : 's'}` }));
    const badge = (name, text) => h('span', { class: 'badge' }, icon(name, { size: 12 }), text);
    if (s.metadata?.type === 'voice') meta.push(badge('mic', 'voice'));
    if (s.pinned) meta.push(badge('pin', 'pinned'));
    if (s.archived) meta.push(badge('archive', 'archived'));
    for (const tag of s.tags || []) meta.push(h('span', { class: 'tag', text: tag }));
  }
  $('chat-meta').replaceChildren(...meta);
  browser.setCurrent(s?.session_id ?? null);
  renderStatus();
});

manager.onChange(({ reason }) => {
  // (reason 'closed': the open session was deleted here; the page is then a new chat)
  // A session just started (here or by ensureSession) may not be in the list yet.
  if (reason === 'loaded') {
    const row = currentSummary();
    if (row && !browser.items.has(row.session_id)) browser.upsert(row);
  }
  conversation.schedule();
  renderHeader();
});

let wasOffline = false;
manager.onStatus((status) => {
  renderStatus();
  conversation.setConnection(status);
  if (status === 'offline') wasOffline = true;
  if (status === 'online' && wasOffline) {
    wasOffline = false;
    browser.reload(); // list events were missed while away
  }
});

// ---- start ------------------------------------------------------------------------------

function waitOnline() {
  return new Promise((resolve) => {
    const off = manager.onStatus((status) => {
      if (status === 'online') {
        queueMicrotask(() => off());
        resolve();
      }
    });
  });
}

/** Reopen this browser's last session, else show a new chat; survive a server that is
 *  away. Nothing is created here: an empty session is never left behind by a visit. */
async function start() {
  if (sessionFromHash) manager._rememberLast(sessionFromHash);
  manager.connect();
  for (;;) {
    try {
      await manager.resume({ messageLimit: MESSAGE_LIMIT });
      renderHeader();
      conversation.schedule();
      return;
    } catch (err) {
      if (err.code !== 'network') {
        showError(err, 'Could not open a session');
        return;
      }
      const last = manager.lastSessionId;
      if (last) {
        // Show it (and any messages queued for it) now; it loads for real on reconnect.
        manager.openOffline(last, { messageLimit: MESSAGE_LIMIT });
        return;
      }
      await waitOnline();
    }
  }
}

const ready = Promise.all([start(), browser.reload()]).then(() => manager.session);
window.__sessionlog = { manager, ready, browser, conversation };
