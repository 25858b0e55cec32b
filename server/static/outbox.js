// The outbox: writes (append / delta / complete) not yet acknowledged, per session,
// in order, kept in memory and mirrored to storage so that a reload or a crash of
// the tab does not lose what the user typed while the server was away.
//
// Every op carries client-chosen ids (message_id, event id), so sending one again
// after an unknown outcome is safe: the server answers `duplicate: true`. That is
// also why several tabs may share the stored queues: a write merges with what the
// other tabs stored instead of overwriting it, and a reload adopts everything.

export class Outbox {
  /** @param {Storage|null} storage  localStorage-like (getItem/setItem/removeItem) or null */
  constructor(storage, prefix = 'sessionlog:outbox') {
    this.storage = storage;
    this.prefix = prefix;
    this.queues = new Map(); // session_id -> op[]
    this.done = new Set(); // event ids acknowledged or refused here (not to be re-stored)
  }

  /** Load the queues a previous page left behind. */
  restore() {
    for (const sid of this._read(this.prefix) || []) {
      const ops = this._read(`${this.prefix}:${sid}`);
      if (Array.isArray(ops) && ops.length) {
        // `gen` (applied to which local copy) is meaningless after a reload.
        this.queues.set(sid, ops.map((op) => ({ ...op, gen: -1 })));
      }
    }
    this._writeIndex();
  }

  sessions() {
    return [...this.queues.keys()];
  }

  list(sid) {
    return this.queues.get(sid) || [];
  }

  count(sid) {
    if (sid !== undefined) return this.list(sid).length;
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /**
   * Queue an op. Consecutive streaming deltas for one message that were never put
   * on the wire are merged, so a long outage costs one op per message, not one per
   * token. Returns the op that now carries the change.
   */
  push(sid, op) {
    let q = this.queues.get(sid);
    if (!q) this.queues.set(sid, (q = []));
    const last = q[q.length - 1];
    if (op.kind === 'delta' && last && last.kind === 'delta' && !last.sent
        && last.frame.message_id === op.frame.message_id && last.gen === op.gen) {
      if (op.frame.mode === 'replace') {
        last.frame = { ...op.frame, id: last.frame.id };
      } else {
        last.frame = { ...last.frame, content: last.frame.content + op.frame.content };
      }
      this.persist(sid);
      return last;
    }
    q.push(op);
    this.persist(sid);
    return op;
  }

  /** Drop one op (acknowledged or refused). */
  remove(sid, op) {
    const q = this.queues.get(sid);
    if (!q) return;
    const i = q.indexOf(op);
    if (i >= 0) q.splice(i, 1);
    this._markDone(op.frame.id);
    this.persist(sid);
  }

  /** Forget a whole session's queue, other tabs' part included (it was deleted). */
  clear(sid) {
    const q = this.queues.get(sid) || [];
    this.queues.delete(sid);
    for (const op of q) this._markDone(op.frame.id);
    this._remove(`${this.prefix}:${sid}`);
    this._writeIndex();
    return q;
  }

  /**
   * Mirror one session's queue to storage (client-only flags are left out), keeping
   * the ops another tab stored there that this one neither holds nor has finished.
   */
  persist(sid) {
    const q = this.queues.get(sid) || [];
    if (q.length === 0) this.queues.delete(sid);
    const key = `${this.prefix}:${sid}`;
    const mine = new Set(q.map((op) => op.frame.id));
    const stored = this._read(key);
    const foreign = Array.isArray(stored)
      ? stored.filter((op) => op?.frame && !mine.has(op.frame.id) && !this.done.has(op.frame.id))
      : [];
    const all = [...foreign, ...q.map(({ kind, frame, sent }) => ({ kind, frame, sent: !!sent }))];
    if (all.length) this._write(key, all);
    else this._remove(key);
    this._writeIndex();
  }

  _markDone(id) {
    this.done.add(id);
    // Bounded: an id only matters while some tab may still write it back.
    if (this.done.size > 10_000) this.done.delete(this.done.values().next().value);
  }

  _writeIndex() {
    const stored = this._read(this.prefix);
    const sids = new Set([...(Array.isArray(stored) ? stored : []), ...this.sessions()]);
    const live = [...sids].filter((sid) => this.queues.has(sid)
      || this._read(`${this.prefix}:${sid}`)?.length);
    if (live.length) this._write(this.prefix, live);
    else this._remove(this.prefix);
  }

  _read(key) {
    try {
      const raw = this.storage?.getItem(key);
      return raw ? JSON.parse(raw) : null;
    } catch {
      return null;
    }
  }

  _write(key, value) {
    try {
      this.storage?.setItem(key, JSON.stringify(value));
    } catch (err) {
      // Quota or privacy mode: the queue still lives in memory for this page.
      console.warn('sessionlog: could not persist the outbox', err);
    }
  }

  _remove(key) {
    try {
      this.storage?.removeItem(key);
    } catch {
      /* nothing to do */
    }
  }
}
