// The fold: applies journal events (SPEC §2) to a local copy of a canonical session.
//
// It mirrors eventlog/fold.py so that a browser copy kept up to date from the
// WebSocket stays equal to what /api/sessions/load would return. It mutates the
// session in place (the UI re-renders from it) and keeps two client-only message
// fields that the server never sends: `pending` (sent but not yet acknowledged)
// and `failed` (refused by the server, with `error`).

export const ROLES = Object.freeze(['user', 'assistant', 'system', 'tool']);

/** A fresh, empty stats object (the seed's shape). */
export function emptyStats() {
  return { total_messages: 0, user_messages: 0, assistant_messages: 0, errors: 0 };
}

/**
 * Fill in the fields an older or partial session object may lack, so the rest of
 * the client can rely on them. Returns the same object.
 */
export function normalizeSession(session) {
  session.messages ??= [];
  session.metadata ??= {};
  session.stats ??= emptyStats();
  session.errors ??= [];
  session.seq ??= 0;
  session.title ??= '';
  session.tags ??= [];
  session.pinned ??= false;
  session.archived ??= false;
  session.message_start ??= 0;
  for (const m of session.messages) {
    m.metadata ??= {};
    m.status ??= 'complete';
  }
  return session;
}

/**
 * The message with `messageId`, searched from the end: streaming deltas almost
 * always touch the newest message, so this is O(1) in practice.
 */
export function findMessage(session, messageId) {
  const list = session.messages;
  for (let i = list.length - 1; i >= 0; i--) {
    if (list[i].message_id === messageId) return list[i];
  }
  return null;
}

/** Count a newly added message in the stats, as the server's fold does. */
export function countMessage(session, role) {
  const st = session.stats;
  st.total_messages += 1;
  if (role === 'user') st.user_messages += 1;
  else if (role === 'assistant') st.assistant_messages += 1;
}

/**
 * Apply one event frame `{seq, type, ts, data}` to `session` (mutated, returned).
 * Unknown types only advance `seq`, so a newer server cannot break an older page.
 */
export function applyEvent(session, event) {
  const d = event.data || {};
  switch (event.type) {
    case 'message.appended': {
      const existing = findMessage(session, d.message_id);
      if (existing) {
        // Our own optimistic message confirmed. Its content is kept: local deltas
        // may already have been applied on top of what the append carried.
        existing.pending = false;
        existing.failed = false;
        if (d.timestamp) existing.timestamp = d.timestamp;
        if (d.role) existing.role = d.role;
        if (existing.status !== 'complete' && d.status === 'complete') existing.status = 'complete';
        copyTools(existing, d);
      } else {
        session.messages.push(copyTools({
          role: d.role,
          content: d.content ?? '',
          timestamp: d.timestamp ?? event.ts,
          metadata: d.metadata ?? {},
          message_id: d.message_id,
          status: d.status ?? 'complete',
        }, d));
        countMessage(session, d.role);
      }
      break;
    }
    case 'message.delta': {
      const m = findMessage(session, d.message_id);
      if (m) m.content = d.mode === 'replace' ? (d.content ?? '') : m.content + (d.content ?? '');
      break;
    }
    case 'message.completed': {
      const m = findMessage(session, d.message_id);
      if (m) {
        m.status = 'complete';
        if (d.content != null) m.content = d.content;
      }
      break;
    }
    case 'message.edited': {
      const m = findMessage(session, d.message_id);
      if (m) {
        m.content = d.content ?? m.content;
        if (d.metadata != null) m.metadata = d.metadata;
        copyTools(m, d);
        m.edited = true; // client-only, like `pending`: shown as "edited"
      }
      break;
    }
    case 'session.updated':
      for (const key of ['title', 'tags', 'pinned', 'archived', 'metadata']) {
        if (d[key] != null) session[key] = key === 'tags' ? [...d[key]] : d[key];
      }
      break;
    case 'error.recorded': {
      const entry = { message: d.message, timestamp: event.ts };
      if (d.details != null) entry.details = d.details;
      session.errors.push(entry);
      session.stats.errors += 1;
      break;
    }
    case 'session.started':
      // Only ever seq 1, which a loaded session already contains.
      if (d.title != null && !session.title) session.title = d.title;
      break;
    default:
      break;
  }
  if (typeof event.seq === 'number' && event.seq > session.seq) session.seq = event.seq;
  if (event.ts) session.last_updated = event.ts;
  return session;
}

// OpenAI-chat tool fields (SPEC §10): present only on messages that have them.
const TOOL_FIELDS = ['tool_calls', 'tool_call_id', 'name'];

/** Copy the tool fields that `data` carries onto message `m`; returns `m`. */
function copyTools(m, data) {
  for (const key of TOOL_FIELDS) if (data[key] != null) m[key] = data[key];
  return m;
}

/** The message as the server stores it: no client-only fields. */
export function wireMessage(m) {
  return copyTools({
    role: m.role,
    content: m.content,
    timestamp: m.timestamp,
    metadata: m.metadata ?? {},
    message_id: m.message_id,
  }, m);
}

/** `[A-Za-z0-9_.:-]` ids (the server's ItemId), random from a CSPRNG. */
export function newId(prefix) {
  const c = globalThis.crypto;
  // randomUUID needs a secure context; getRandomValues works everywhere.
  if (c && typeof c.randomUUID === 'function') return `${prefix}-${c.randomUUID()}`;
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** ISO 8601 UTC with milliseconds and Z, like the server's timestamps. */
export function nowIso() {
  return new Date().toISOString();
}
