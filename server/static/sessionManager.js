// sessionlog's browser client: the seed's sessionManager as an ES module.
//
//   import sessionManager, { startNewSession, addMessage, subscribe } from '/static/sessionManager.js';
//
// Imported from another origin (a server started with --allow-origin), it talks to the
// server it was loaded from.
//
// Writes are sent at once (WebSocket, else HTTP), shown optimistically, and kept in
// a persistent outbox until the server acknowledges them, so nothing typed while the
// server is away is lost and nothing is ever written twice (client-chosen ids make
// every retry idempotent). The current session is kept current by folding the
// WebSocket's events into it; a UI only has to re-render on `onChange`.

import { HttpApi, apiError } from './http.js';
import { LiveConnection } from './socket.js';
import { Outbox } from './outbox.js';
import {
  ROLES, applyEvent, countMessage, findMessage, newId, normalizeSession, nowIso, wireMessage,
} from './fold.js';

export { applyEvent, findMessage, normalizeSession } from './fold.js';

/** Error codes that will not change on retry: the op is dropped and reported. */
const PERMANENT = new Set([
  'invalid_json', 'invalid_request', 'not_found', 'conflict', 'payload_too_large',
  'unsupported_media_type',
]);
/** Refusals of the caller, not of the op: keep it queued until the setup is fixed. */
const ACCESS = new Set(['unauthorized', 'forbidden']);

const UPDATE_FIELDS = ['title', 'tags', 'pinned', 'archived', 'metadata'];
const LIST_FILTERS = ['query', 'type', 'tag', 'since', 'until'];
const LAST_SESSION_KEY = 'lastSessionId';

function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // e.g. storage disabled by the browser's privacy settings
  }
}

const EXPORT_EXT = { openai: 'jsonl', sharegpt: 'jsonl', events: 'jsonl', markdown: 'md' };

/**
 * The server this module was loaded from: a page on another origin that imports
 * http://127.0.0.1:5174/static/sessionManager.js talks to that server, not to itself.
 */
function moduleOrigin() {
  try {
    const origin = new URL(import.meta.url).origin;
    if (origin && origin !== 'null') return origin;
  } catch {
    /* a bundler may rewrite import.meta.url: fall back to the page's origin */
  }
  return globalThis.location?.origin ?? '';
}

export class SessionManager {
  constructor({ baseUrl = moduleOrigin(), token = null,
    storage = defaultStorage(), WebSocketImpl = globalThis.WebSocket, fetchImpl } = {}) {
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.token = token;
    this.storage = storage;
    this.http = new HttpApi(() => ({ baseUrl: this.baseUrl, token: this.token }), fetchImpl);
    /** The current session: canonical JSON kept live, plus client-only flags. */
    this.session = null;
    this.currentSessionId = null;
    this._gen = 0; // bumped whenever `session` is replaced by another object
    this._loadToken = 0; // the newest start/load wins when several overlap
    this._subs = new Map(); // session_id -> {lastSeq, listeners, internal, resyncing}
    this._subReqs = new Map(); // subscribe req_id -> session_id (to route its errors)
    this._nextSubReq = 1;
    this._ownSeqs = new Set(); // seqs of our own deltas already applied to `session`
    this._msgSession = new Map(); // our streaming message_id -> session_id
    this._deleting = new Set();
    this._pumping = new Set();
    this._retry = new Map(); // session_id -> {timer, delay}
    this._listeners = { change: new Set(), list: new Set(), status: new Set(), error: new Set() };
    this._everOnline = false;

    this.outbox = new Outbox(storage);
    this.outbox.restore();
    this.conn = WebSocketImpl ? new LiveConnection({
      url: () => this._wsUrl(),
      onFrame: (f) => this._onFrame(f),
      onOpen: () => this._onOpen(),
      onStatus: (s) => this._emit('status', s),
      WebSocketImpl,
    }) : null;

    if (typeof window !== 'undefined' && window.addEventListener) {
      // Do not sit out a long backoff when the browser knows things changed.
      window.addEventListener('online', () => this.conn?.reconnectNow());
      document.addEventListener?.('visibilitychange', () => {
        if (document.visibilityState === 'visible') this.conn?.reconnectNow();
      });
    }
    // Leftovers from an earlier page: deliver them as soon as possible.
    if (this.outbox.count() > 0) this.connect();
  }

  // ---- connection ---------------------------------------------------------------

  /** 'connecting' | 'online' | 'offline' */
  get status() {
    return this.conn ? this.conn.status : 'offline';
  }

  /** The current session's messages (the seed's accessor). */
  get messages() {
    return this.session ? this.session.messages : [];
  }

  /** Open the live connection (done implicitly by every call that needs it). */
  connect() {
    this.conn?.start();
  }

  /** Close the live connection for good (tests, page teardown). */
  disconnect() {
    this.conn?.stop();
  }

  _wsUrl() {
    const url = new URL('/api/sessions/ws', this.baseUrl || globalThis.location?.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.token) url.searchParams.set('token', this.token);
    return url.href;
  }

  /** POST an API op; the `{success: true, …}` body, or an Error with `.code`/`.status`. */
  request(op, body) {
    return this.http.request(op, body);
  }

  // ---- sessions -----------------------------------------------------------------

  /** Start a session and make it current. Returns its id. */
  async startNewSession(userName = 'User', metadata = { type: 'chat' }, title) {
    const token = ++this._loadToken;
    const body = { user_name: userName, metadata };
    if (title) body.title = title;
    const data = await this.request('start', body);
    const now = nowIso();
    const session = normalizeSession(data.session ?? {
      session_id: data.session_id, user_name: userName, started_at: now, last_updated: now,
      metadata, title: title || '', seq: 1,
    });
    if (token === this._loadToken) this._setCurrent(session);
    return data.session_id ?? session.session_id;
  }

  /** Load a session without making it current. */
  async fetchSession(sessionId, { messageLimit, messageBefore } = {}) {
    const body = { session_id: sessionId };
    if (messageLimit != null) body.message_limit = messageLimit;
    if (messageBefore != null) body.message_before = messageBefore;
    const data = await this.request('load', body);
    const session = normalizeSession(data.session);
    if (data.message_start != null) session.message_start = data.message_start;
    return session;
  }

  /**
   * Load a session and make it current (the seed's behaviour): it is then kept live
   * from the WebSocket, resuming right after the loaded `seq`.
   */
  async loadSession(sessionId, options = {}) {
    const token = ++this._loadToken;
    const session = await this.fetchSession(sessionId, options);
    if (token === this._loadToken) this._setCurrent(session);
    return session;
  }

  /**
   * Reopen the last session of this browser (storage `lastSessionId`), or start a new
   * one if there is none or it was deleted. Network errors are thrown.
   */
  async resumeOrStart({ userName = 'User', metadata = { type: 'chat' }, messageLimit } = {}) {
    const last = this.lastSessionId;
    if (last) {
      try {
        return await this.loadSession(last, { messageLimit });
      } catch (err) {
        if (err.code !== 'not_found' && err.code !== 'invalid_request') throw err;
        this._forgetLast(last);
      }
    }
    await this.startNewSession(userName, metadata);
    return this.session;
  }

  /**
   * Reopen the last session of this browser, if there is one and it still exists;
   * otherwise leave no current session (a new chat: the first message creates it, see
   * ensureSession). Returns the session or null. Network errors are thrown.
   */
  async resume({ messageLimit } = {}) {
    const last = this.lastSessionId;
    if (!last) return null;
    try {
      return await this.loadSession(last, { messageLimit });
    } catch (err) {
      if (err.code !== 'not_found' && err.code !== 'invalid_request') throw err;
      this._forgetLast(last);
      return null;
    }
  }

  /**
   * Start a new chat without creating anything on the server: the current session is
   * let go, and the next ensureSession() (the page calls it on the first message)
   * creates one. Opening a page or pressing New never leaves an empty session behind.
   */
  newChat() {
    const prev = this.currentSessionId;
    if (prev) this._forgetLast(prev);
    ++this._loadToken; // a load still under way must not reopen something
    if (prev || this.session) this._closeCurrent('new');
  }

  /** The current session, started first if there is none (a new chat's first message). */
  async ensureSession(userName = 'User', metadata = { type: 'chat' }) {
    if (this.session && !this.session.deleted) return this.session;
    this._starting ??= this.startNewSession(userName, metadata)
      .finally(() => { this._starting = null; });
    await this._starting;
    return this.session;
  }

  /**
   * Show a session that cannot be loaded now (the server is unreachable) so that
   * messages can still be typed and queued; it is loaded for real on reconnect.
   */
  openOffline(sessionId, { messageLimit } = {}) {
    this._staleLimit = messageLimit;
    const now = nowIso();
    this._setCurrent(normalizeSession({
      session_id: sessionId, user_name: 'User', started_at: now, last_updated: now, stale: true,
    }));
    this.connect();
    return this.session;
  }

  /** Load up to `count` messages before the first one held (long sessions). */
  async loadEarlier(count = 200) {
    const s = this.session;
    if (!s || !s.message_start) return 0;
    const gen = this._gen;
    const older = await this.fetchSession(s.session_id, {
      messageLimit: count, messageBefore: s.message_start,
    });
    if (gen !== this._gen) return 0;
    const fresh = older.messages.filter((m) => !findMessage(s, m.message_id));
    s.messages.unshift(...fresh);
    s.message_start = older.message_start ?? 0;
    this._emitChange('prepended', { count: fresh.length });
    return fresh.length;
  }

  /** List sessions: `{sessions, total_sessions, …, has_more}` (SPEC §4). */
  async listSessions(limit = 100, offset = 0, filters = {}) {
    const body = { limit, offset };
    for (const key of LIST_FILTERS) {
      const v = filters[key];
      if (v != null && String(v).trim() !== '') body[key] = typeof v === 'string' ? v.trim() : v;
    }
    // `archived` is three-valued: false (default, hide), true, null (both).
    if ('archived' in filters && filters.archived !== undefined) body.archived = filters.archived;
    return this.request('list', body);
  }

  /** Delete a session. If it is the current one, there is no current session after. */
  async deleteSession(sessionId) {
    this._deleting.add(sessionId);
    try {
      await this.request('delete', { session_id: sessionId });
      this._markDeleted(sessionId, true);
    } finally {
      this._deleting.delete(sessionId);
    }
    return true;
  }

  /**
   * Post the current session's full message list to /save (the seed's API). Rarely
   * needed: every message is already sent as it is added. Streaming messages are
   * left out, since their content is still moving.
   */
  async saveSession() {
    const s = this.session;
    if (!s) return false;
    const messages = s.messages.filter((m) => m.status !== 'partial' && !m.failed).map(wireMessage);
    return this.request('save', { session_id: s.session_id, messages });
  }

  /** Rename, tag, pin, archive, or replace the metadata of a session. */
  async updateSession(sessionId, fields) {
    const body = { session_id: sessionId };
    for (const key of UPDATE_FIELDS) if (fields[key] !== undefined) body[key] = fields[key];
    const data = await this.request('update', body);
    if (this.session?.session_id === sessionId) {
      // The event will also arrive; applying it now makes the UI respond at once.
      applyEvent(this.session, { type: 'session.updated', data: body });
      this._emitChange('updated');
    }
    return data;
  }

  /**
   * Fetch an export: `ids` is one id, an array of ids, or null/'all' for every
   * session; format is openai | sharegpt | markdown | events.
   */
  async exportSession(ids, format = 'openai') {
    const body = { format };
    if (ids == null || ids === 'all') body.all = true;
    else if (Array.isArray(ids)) body.session_ids = ids;
    else body.session_id = ids;
    const name = typeof ids === 'string' && ids !== 'all' ? ids : 'export';
    return this.http.file('export', body, `sessionlog-${name}.${EXPORT_EXT[format] || 'txt'}`);
  }

  /** Like exportSession, with an object URL for a link (revoke it when done). */
  async exportUrl(ids, format = 'openai') {
    const { blob, filename } = await this.exportSession(ids, format);
    return { url: URL.createObjectURL(blob), filename };
  }

  get lastSessionId() {
    try {
      return this.storage?.getItem(LAST_SESSION_KEY) || null;
    } catch {
      return null;
    }
  }

  _rememberLast(sessionId) {
    try {
      this.storage?.setItem(LAST_SESSION_KEY, sessionId);
    } catch {
      /* not fatal: the page just opens a new session next time */
    }
  }

  _forgetLast(sessionId) {
    try {
      if (this.lastSessionId === sessionId) this.storage?.removeItem(LAST_SESSION_KEY);
    } catch {
      /* as above */
    }
  }

  _setCurrent(session) {
    const prev = this.currentSessionId;
    this._gen++;
    this._ownSeqs.clear();
    this.session = session;
    this.currentSessionId = session.session_id;
    // Queued messages are part of the conversation even before the server has them.
    for (const op of this.outbox.list(session.session_id)) {
      if (op.kind !== 'append' || findMessage(session, op.frame.message_id)) continue;
      const f = op.frame;
      session.messages.push({
        role: f.role, content: f.content, timestamp: f.timestamp ?? nowIso(),
        metadata: f.metadata ?? {}, message_id: f.message_id,
        status: f.partial ? 'partial' : 'complete', pending: true,
      });
      countMessage(session, f.role);
    }
    this._rememberLast(session.session_id);
    if (prev && prev !== session.session_id) this._release(prev);
    if (!session.stale) this._subscribeInternal(session.session_id);
    this.connect();
    this._emitChange('loaded');
    this._pump(session.session_id);
  }

  _closeCurrent(reason = 'closed') {
    this._gen++;
    this._ownSeqs.clear();
    const prev = this.currentSessionId;
    this.session = null;
    this.currentSessionId = null;
    if (prev) this._release(prev);
    this._emitChange(reason);
  }

  _markDeleted(sessionId, byUs = false) {
    this.outbox.clear(sessionId);
    this._forgetLast(sessionId);
    const sub = this._subs.get(sessionId);
    if (sub) {
      for (const fn of sub.listeners) this._safe(fn, { op: 'deleted', session_id: sessionId }, null);
      this._subs.delete(sessionId);
      this.conn?.send({ op: 'unsubscribe', session_id: sessionId });
    }
    if (this.currentSessionId !== sessionId) return;
    if (byUs || this._deleting.has(sessionId)) {
      this._closeCurrent();
    } else if (!this.session.deleted) {
      this.session.deleted = true; // kept on screen so it can still be read or copied
      this._emitChange('deleted');
    }
  }

  // ---- writes -------------------------------------------------------------------

  /**
   * Add a message to the current session: shown at once (`pending` until the
   * server has it durably), sent at once, queued while offline. Returns the message.
   * With `partial: true` it starts a streaming message: follow with streamDelta()
   * and completeMessage().
   */
  addMessage(role, content, metadata = {}, { partial = false, messageId } = {}) {
    const s = this.session;
    if (!s) throw apiError('no current session: start or load one first', 'no_session', 0);
    if (s.deleted) throw apiError('this session was deleted', 'not_found', 404);
    if (!ROLES.includes(role)) {
      throw apiError(`invalid role: expected one of ${ROLES.join(', ')}`, 'invalid_request', 0);
    }
    const message = {
      role, content: String(content ?? ''), timestamp: nowIso(), metadata: metadata ?? {},
      message_id: messageId || newId('m'), status: partial ? 'partial' : 'complete', pending: true,
    };
    const existing = findMessage(s, message.message_id);
    if (existing) return existing; // the caller retried with the same id
    s.messages.push(message);
    countMessage(s, role);
    if (partial) this._msgSession.set(message.message_id, s.session_id);
    this._enqueue(s.session_id, {
      kind: 'append',
      gen: this._gen,
      frame: {
        session_id: s.session_id, role, content: message.content, metadata: message.metadata,
        message_id: message.message_id, id: newId('e'), partial, timestamp: message.timestamp,
      },
    });
    this._emitChange('message', { message });
    return message;
  }

  /**
   * Change a message's content (a `message.edited` event): shown at once, sent like
   * every write (queued while offline). `metadata` replaces the message's metadata;
   * either way it records `edited_at`, so the edit shows after a reload too.
   */
  editMessage(messageId, content, metadata) {
    const s = this.session;
    if (!s) throw apiError('no current session: start or load one first', 'no_session', 0);
    if (s.deleted) throw apiError('this session was deleted', 'not_found', 404);
    const m = findMessage(s, messageId);
    if (!m) throw apiError(`no message ${messageId} in this session`, 'not_found', 404);
    if (m.status === 'partial') {
      throw apiError('this message is still streaming: edit it once it is complete',
        'invalid_request', 0);
    }
    const meta = { ...(metadata ?? m.metadata ?? {}), edited_at: nowIso() };
    Object.assign(m, { content: String(content ?? ''), metadata: meta, edited: true });
    this._emitChange('edited', { message: m });
    const sid = s.session_id;
    this._enqueue(sid, {
      kind: 'edit',
      gen: this._gen,
      frame: { session_id: sid, message_id: messageId, content: m.content, metadata: meta,
        id: newId('e') },
    });
    return m;
  }

  /** Stream into a partial message: `append` LLM tokens, or `replace` an interim transcript. */
  streamDelta(messageId, content, mode = 'append') {
    const sid = this._msgSession.get(messageId) ?? this.currentSessionId;
    if (!sid) throw apiError('no session for this message', 'no_session', 0);
    const local = sid === this.currentSessionId ? findMessage(this.session, messageId) : null;
    if (local) {
      local.content = mode === 'replace' ? content : local.content + content;
      this._emitChange('delta', { message: local });
    }
    this._enqueue(sid, {
      kind: 'delta',
      gen: local ? this._gen : -1, // -1: not shown locally, so its echo must be applied
      frame: { session_id: sid, message_id: messageId, content: String(content), mode,
        id: newId('e') },
    });
  }

  /** Finish a streaming message, optionally with its final content. */
  completeMessage(messageId, content) {
    const sid = this._msgSession.get(messageId) ?? this.currentSessionId;
    if (!sid) throw apiError('no session for this message', 'no_session', 0);
    this._msgSession.delete(messageId);
    const local = sid === this.currentSessionId ? findMessage(this.session, messageId) : null;
    if (local) {
      local.status = 'complete';
      if (content != null) local.content = content;
      this._emitChange('completed', { message: local });
    }
    const frame = { session_id: sid, message_id: messageId, id: newId('e') };
    if (content != null) frame.content = String(content);
    this._enqueue(sid, { kind: 'complete', gen: local ? this._gen : -1, frame });
  }

  /** How many writes wait for the server (for one session, or all). */
  pendingCount(sessionId) {
    return this.outbox.count(sessionId);
  }

  _enqueue(sid, op) {
    this.outbox.push(sid, op);
    this.connect();
    this._pump(sid); // runs synchronously up to the send: the op leaves at once
  }

  /**
   * Send one session's queued ops, strictly in order, each after the previous one is
   * acknowledged (the server may process frames concurrently; order matters).
   * Sessions are pumped independently.
   */
  async _pump(sid) {
    if (this._pumping.has(sid)) return;
    this._pumping.add(sid);
    try {
      for (;;) {
        const op = this.outbox.list(sid)[0];
        if (!op) break;
        if (!this.conn?.isOpen && op.kind !== 'append') break; // deltas need the socket
        if (!op.sent) {
          op.sent = true; // from here on it may be written: never merge into it again
          this.outbox.persist(sid);
        }
        let ack;
        try {
          ack = await this._sendOp(op);
        } catch (err) {
          if (err.code === 'network') break; // resumed by _onOpen
          const access = ACCESS.has(err.code) || err.status === 401 || err.status === 403;
          if (!access && (PERMANENT.has(err.code) || (err.status >= 400 && err.status < 500))) {
            this.outbox.remove(sid, op);
            this._refused(sid, op, err);
            if (err.code === 'not_found' && op.kind === 'append') {
              // (a delta's not_found may only mean an unknown message)
              this._markDeleted(sid);
              break;
            }
            continue;
          }
          this._retryLater(sid, err);
          break;
        }
        this.outbox.remove(sid, op);
        this._retry.delete(sid);
        this._acked(sid, op, ack);
      }
    } finally {
      this._pumping.delete(sid);
      this._emitChange('queue');
    }
  }

  async _sendOp(op) {
    if (this.conn?.isOpen) return this.conn.request({ op: op.kind, ...op.frame });
    // Only appends have an HTTP twin; the rest wait for the socket.
    const data = await this.request('append', op.frame);
    return { seq: data.seq, message_id: data.message?.message_id, duplicate: data.duplicate };
  }

  _acked(sid, op, ack) {
    const mine = sid === this.currentSessionId && this.session;
    if (op.kind === 'append' && mine) {
      const m = findMessage(this.session, op.frame.message_id);
      if (m && m.pending) {
        m.pending = false;
        this._emitChange('ack', { message: m });
      }
    }
    // A delta shown locally must not be applied again when its event comes back.
    if (op.kind === 'delta' && mine && op.gen === this._gen && !op.echoed
        && typeof ack.seq === 'number' && ack.seq > this.session.seq) {
      this._ownSeqs.add(ack.seq);
    }
  }

  _refused(sid, op, err) {
    if (op.kind === 'append' && sid === this.currentSessionId && this.session) {
      const m = findMessage(this.session, op.frame.message_id);
      if (m) Object.assign(m, { pending: false, failed: true, error: err.message });
    }
    this._emit('error', err, { op: op.kind, session_id: sid, message_id: op.frame.message_id });
  }

  _retryLater(sid, err) {
    // A server-side failure (disk full, I/O error): try again later, same ids.
    const prev = this._retry.get(sid);
    const delay = Math.min(10_000, prev ? prev.delay * 2 : 1000);
    clearTimeout(prev?.timer);
    this._retry.set(sid, { delay, timer: setTimeout(() => this._pump(sid), delay) });
    this._emit('error', err, { op: 'retry', session_id: sid });
  }

  // ---- live events --------------------------------------------------------------

  /**
   * Follow a session's events: `onEvent(frame, session)` for every event frame
   * `{op:'event', session_id, seq, type, ts, data}` in seq order, once each, across
   * reconnects (`session` is the folded current session when it is this one, else
   * null), and `{op:'deleted', session_id}` if it is deleted. Returns unsubscribe.
   * Without `afterSeq` a new subscription starts with live events.
   */
  subscribe(sessionId, onEvent, { afterSeq } = {}) {
    let sub = this._subs.get(sessionId);
    if (!sub) {
      sub = { lastSeq: afterSeq ?? null, listeners: new Set(), internal: false };
      this._subs.set(sessionId, sub);
      this._sendSubscribe(sessionId);
    }
    sub.listeners.add(onEvent);
    this.connect();
    return () => {
      sub.listeners.delete(onEvent);
      if (!sub.listeners.size && !sub.internal) this._unsubscribe(sessionId);
    };
  }

  _subscribeInternal(sid) {
    let sub = this._subs.get(sid);
    if (!sub) {
      sub = { lastSeq: this.session.seq, listeners: new Set(), internal: true };
      this._subs.set(sid, sub);
      this._sendSubscribe(sid);
      return;
    }
    sub.internal = true;
    // Already followed, maybe past the loaded copy: ask again from the copy's seq.
    if (sub.lastSeq == null || sub.lastSeq > this.session.seq) this._resync(sid);
  }

  _release(sid) {
    const sub = this._subs.get(sid);
    if (!sub) return;
    sub.internal = false;
    if (!sub.listeners.size) this._unsubscribe(sid);
  }

  _unsubscribe(sid) {
    this._subs.delete(sid);
    this.conn?.send({ op: 'unsubscribe', session_id: sid });
  }

  /** The seq to resume after: the lowest of what listeners and the fold have seen. */
  _resumeSeq(sid) {
    const sub = this._subs.get(sid);
    const seqs = [];
    if (sub?.lastSeq != null) seqs.push(sub.lastSeq);
    if (this.currentSessionId === sid && this.session && !this.session.stale) {
      seqs.push(this.session.seq);
    }
    return seqs.length ? Math.min(...seqs) : null;
  }

  _sendSubscribe(sid) {
    if (!this.conn?.isOpen) return; // sent by _onOpen
    const reqId = `sub-${this._nextSubReq++}`;
    this._subReqs.set(reqId, sid);
    const after = this._resumeSeq(sid);
    const frame = { op: 'subscribe', session_id: sid, req_id: reqId };
    if (after != null) frame.after_seq = after;
    const sub = this._subs.get(sid);
    if (sub) sub.resyncing = true;
    this.conn.send(frame);
  }

  _resync(sid) {
    this.conn?.send({ op: 'unsubscribe', session_id: sid });
    this._sendSubscribe(sid);
  }

  _onOpen() {
    const reconnect = this._everOnline;
    this._everOnline = true;
    this._subReqs.clear();
    for (const sid of this._subs.keys()) this._sendSubscribe(sid);
    this.conn.send({ op: 'subscribe_list' });
    const s = this.session;
    if (s?.stale) {
      // Opened while the server was away: load it for real now.
      this.loadSession(s.session_id, { messageLimit: this._staleLimit }).catch((err) => {
        if (err.code === 'not_found') this._markDeleted(s.session_id);
        else this._emit('error', err, { op: 'load' });
      });
    } else if (s && reconnect && !s.deleted) {
      // It may have been deleted while we were away (no list event reached us).
      this.fetchSession(s.session_id, { messageLimit: 1 }).catch((err) => {
        if (err.code === 'not_found') this._markDeleted(s.session_id);
      });
    }
    for (const sid of this.outbox.sessions()) this._pump(sid);
  }

  _onFrame(frame) {
    switch (frame.op) {
      case 'event':
        this._onEvent(frame);
        break;
      case 'subscribed': {
        const sub = this._subs.get(frame.session_id);
        if (sub) {
          sub.resyncing = false;
          if (frame.resync) sub.lastSeq = 0; // the whole session follows, from seq 1
          if (sub.lastSeq == null && typeof frame.seq === 'number') sub.lastSeq = frame.seq;
        }
        if (frame.resync && this.currentSessionId === frame.session_id) {
          // The server has less than we showed (it failed over to a replica that had not
          // caught up, or was restored from a backup): our copy cannot be patched.
          this.loadSession(frame.session_id, { messageLimit: this._staleLimit }).catch((err) => {
            this._emit('error', err, { op: 'load' });
          });
        }
        for (const [id, sid] of this._subReqs) if (sid === frame.session_id) this._subReqs.delete(id);
        break;
      }
      case 'list_event':
        if (frame.type === 'session.deleted') {
          const sid = frame.session?.session_id ?? frame.session_id;
          if (sid) this._markDeleted(sid, this._deleting.has(sid));
        }
        this._emit('list', frame);
        break;
      case 'error': {
        const sid = this._subReqs.get(frame.req_id) ?? frame.session_id;
        this._subReqs.delete(frame.req_id);
        if (frame.code === 'not_found' && sid && this._subs.has(sid)) this._markDeleted(sid);
        else this._emit('error', apiError(frame.error || frame.code, frame.code, 0), { op: 'ws' });
        break;
      }
      default:
        break; // pong, and ops a newer server may add
    }
  }

  _onEvent(frame) {
    const sid = frame.session_id;
    const sub = this._subs.get(sid);
    const seq = frame.seq;
    this._settleByEvent(sid, frame);
    const cur = this.currentSessionId === sid && this.session && !this.session.stale
      ? this.session : null;
    const low = this._resumeSeq(sid);
    if (low != null && seq > low + 1) {
      // A gap (we re-subscribed from further back): drop it and ask again, once.
      if (sub && !sub.resyncing) this._resync(sid);
      return;
    }
    if (cur && seq > cur.seq) {
      if (this._isOwnEcho(sid, frame)) {
        cur.seq = seq; // already shown: only move the watermark
        if (frame.ts) cur.last_updated = frame.ts;
      } else {
        applyEvent(cur, frame);
      }
      this._emitChange('event', { event: frame });
    }
    if (sub && (sub.lastSeq == null || seq > sub.lastSeq)) {
      sub.lastSeq = seq;
      for (const fn of sub.listeners) this._safe(fn, frame, cur);
    }
  }

  /**
   * The server publishes an event only once it is durable, and the event can overtake
   * its ack (or the ack can be lost when the server dies right after): a sent append
   * whose message.appended came back is done, not "waiting". Without this, a retry
   * after a crash was still answered as a duplicate (no harm), but the page counted
   * the message as queued meanwhile.
   */
  _settleByEvent(sid, frame) {
    if (frame.type !== 'message.appended') return;
    const mid = frame.data?.message_id;
    const op = this.outbox.list(sid)
      .find((o) => o.kind === 'append' && o.sent && o.frame.message_id === mid);
    if (!op) return;
    this.outbox.remove(sid, op);
    this._acked(sid, op, { seq: frame.seq, message_id: mid, duplicate: false });
    this._emitChange('queue');
  }

  /** Is this the event of a delta we sent and already applied to the local copy? */
  _isOwnEcho(sid, frame) {
    if (this._ownSeqs.delete(frame.seq)) return true;
    if (frame.type !== 'message.delta') return false;
    const d = frame.data || {};
    // The event can overtake its ack: recognise it by what it carries.
    for (const op of this.outbox.list(sid)) {
      if (op.kind === 'delta' && op.sent && !op.echoed && op.gen === this._gen
          && op.frame.message_id === d.message_id && op.frame.content === d.content
          && (op.frame.mode || 'append') === (d.mode || 'append')) {
        op.echoed = true;
        return true;
      }
    }
    return false;
  }

  // ---- listeners ----------------------------------------------------------------

  /** `cb({reason, session, …})` whenever the current session or its queue changes. */
  onChange(cb) {
    return this._on('change', cb);
  }

  /** `cb(list_event)` for session.started / session.updated / session.deleted. */
  onList(cb) {
    this.connect();
    return this._on('list', cb);
  }

  /** `cb(status)` now and on every change: 'connecting' | 'online' | 'offline'. */
  onStatus(cb) {
    this._safe(cb, this.status);
    return this._on('status', cb);
  }

  /** `cb(error, context)` for failures of background work (queued sends, reloads). */
  onError(cb) {
    return this._on('error', cb);
  }

  _on(kind, cb) {
    this._listeners[kind].add(cb);
    return () => this._listeners[kind].delete(cb);
  }

  _emit(kind, ...args) {
    if (kind === 'error' && !this._listeners.error.size) console.warn('sessionlog:', ...args);
    for (const fn of this._listeners[kind]) this._safe(fn, ...args);
  }

  _emitChange(reason, extra = {}) {
    this._emit('change', { reason, session: this.session, ...extra });
  }

  _safe(fn, ...args) {
    try {
      fn(...args);
    } catch (err) {
      console.error('sessionlog: a listener threw', err); // one bad listener must not stop the rest
    }
  }
}

/** The shared instance (the seed's singleton). */
export const sessionManager = new SessionManager();
export default sessionManager;

export const startNewSession = sessionManager.startNewSession.bind(sessionManager);
export const loadSession = sessionManager.loadSession.bind(sessionManager);
export const listSessions = sessionManager.listSessions.bind(sessionManager);
export const deleteSession = sessionManager.deleteSession.bind(sessionManager);
export const saveSession = sessionManager.saveSession.bind(sessionManager);
export const addMessage = sessionManager.addMessage.bind(sessionManager);
export const subscribe = sessionManager.subscribe.bind(sessionManager);
export const updateSession = sessionManager.updateSession.bind(sessionManager);
export const exportSession = sessionManager.exportSession.bind(sessionManager);
export const streamDelta = sessionManager.streamDelta.bind(sessionManager);
export const completeMessage = sessionManager.completeMessage.bind(sessionManager);
export const onList = sessionManager.onList.bind(sessionManager);
export const editMessage = sessionManager.editMessage.bind(sessionManager);
export const newChat = sessionManager.newChat.bind(sessionManager);
export const onStatus = sessionManager.onStatus.bind(sessionManager);
