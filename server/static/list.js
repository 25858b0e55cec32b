// The session browser: search, filters, paged list ("Load more" plus infinite
// scroll; only fetched pages are ever rendered), per-session actions, and live
// list events from other windows folded into what is on screen.

import { debounce, formatDateTime, frameBatched, h, parseTags, sessionLabel } from './dom.js';
import { icon } from './icons.js';

const PAGE_SIZE = 50;

/** Pinned first, then most recently updated (the server's list order). */
function compare(a, b) {
  if (!!a.pinned !== !!b.pinned) return a.pinned ? -1 : 1;
  if (a.last_updated !== b.last_updated) return a.last_updated < b.last_updated ? 1 : -1;
  return a.session_id < b.session_id ? -1 : 1;
}

export class SessionBrowser {
  /**
   * @param {object} o
   * @param {import('./sessionManager.js').SessionManager} o.manager
   * @param {(sessionId: string) => void} o.onOpen  a session was chosen
   * @param {(err: Error, what: string) => void} o.onError
   * @param {() => object|null} o.currentSummary  the open session as a list row
   */
  constructor({ manager, onOpen, onError, currentSummary }) {
    Object.assign(this, { manager, onOpen, onError, currentSummary });
    const $ = (id) => document.getElementById(id);
    this.el = {
      list: $('session-list'), scroll: $('browser-scroll'), more: $('load-more'),
      empty: $('browser-empty'), stats: $('browser-stats'), search: $('search'),
      type: $('filter-type'), tag: $('filter-tag'), since: $('filter-since'),
      until: $('filter-until'), archived: $('filter-archived'), reset: $('filter-reset'),
    };
    this.items = new Map(); // session_id -> summary
    this.hits = new Map(); // session_id -> {message_index, snippet} for the current query
    this.order = []; // session ids as shown
    this.nodes = new Map(); // session_id -> {li, key}
    this.hasMore = false;
    this.loading = false;
    this.token = 0; // a newer query makes older answers void
    this.totals = null;
    this.currentId = null;
    this.editing = null; // {id, kind} while an inline editor is open
    this.schedule = frameBatched(() => this.render());

    const refilter = debounce(() => this.reload(), 250);
    this.el.search.addEventListener('input', refilter);
    this.el.search.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') refilter.flush();
    });
    this.el.tag.addEventListener('input', refilter);
    for (const el of [this.el.type, this.el.since, this.el.until, this.el.archived]) {
      el.addEventListener('change', () => this.reload());
    }
    this.el.reset.addEventListener('click', () => {
      for (const el of [this.el.type, this.el.tag, this.el.since, this.el.until]) el.value = '';
      this.el.archived.checked = false;
      this.reload();
    });
    this.el.more.addEventListener('click', () => this.loadMore());
    // Infinite scroll: fetch the next page as the end of the list comes into view.
    if ('IntersectionObserver' in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) this.loadMore();
      }, { root: this.el.scroll, rootMargin: '300px' }).observe(this.el.more);
    }
    // One delegated listener for every row: thousands of rows, one handler.
    this.el.list.addEventListener('click', (e) => this.onClick(e));
    this.el.list.addEventListener('keydown', (e) => this.onKeydown(e));
    // One row menu open at a time; a click elsewhere closes it.
    document.addEventListener('click', (e) => {
      for (const menu of this.el.list.querySelectorAll('details.row-menu[open]')) {
        if (!menu.contains(e.target)) menu.open = false;
      }
    });
    this.el.list.addEventListener('toggle', (e) => {
      if (!e.target.open) return;
      for (const menu of this.el.list.querySelectorAll('details.row-menu[open]')) {
        if (menu !== e.target) menu.open = false;
      }
    }, true);
    this.el.list.addEventListener('submit', (e) => {
      e.preventDefault();
      const li = e.target.closest('li.session');
      if (li && this.editing) {
        this.saveEdit(li.dataset.sessionId, this.editing.kind, e.target.querySelector('input').value);
      }
    });

    manager.onList((ev) => this.onListEvent(ev));
  }

  filters() {
    return {
      query: this.el.search.value.trim(),
      type: this.el.type.value,
      tag: this.el.tag.value.trim().replace(/^#/, ''),
      since: this.el.since.value,
      until: this.el.until.value,
      // Checked: archived ones too (null = no archived filter); else hide them.
      archived: this.el.archived.checked ? null : false,
    };
  }

  /** Start over from the first page (new search, new filters, back online). */
  async reload() {
    const token = ++this.token;
    this.loading = true;
    this.el.list.setAttribute('aria-busy', 'true');
    try {
      const data = await this.manager.listSessions(PAGE_SIZE, 0, this.filters());
      if (token !== this.token) return;
      this.items.clear();
      this.hits.clear();
      this.order = [];
      this.accept(data);
      // A session started while this page was being fetched is still ours to show.
      const current = this.currentSummary?.();
      if (current && !this.items.has(current.session_id)) this.upsert(current);
    } catch (err) {
      if (token === this.token) this.onError(err, 'Could not list sessions');
    } finally {
      if (token === this.token) {
        this.loading = false;
        this.el.list.removeAttribute('aria-busy');
        this.render();
      }
    }
  }

  async loadMore() {
    if (this.loading || !this.hasMore) return;
    const token = this.token;
    this.loading = true;
    this.el.more.disabled = true;
    try {
      const data = await this.manager.listSessions(PAGE_SIZE, this.order.length, this.filters());
      if (token === this.token) this.accept(data);
    } catch (err) {
      if (token === this.token) this.onError(err, 'Could not load more sessions');
    } finally {
      if (token === this.token) {
        this.loading = false;
        this.el.more.disabled = false;
        this.render();
      }
    }
  }

  accept(data) {
    for (const hit of data.hits || []) this.hits.set(hit.session_id, hit);
    for (const s of data.sessions || []) {
      // Live changes shift pages under us: an id already shown is not shown twice.
      if (!this.items.has(s.session_id)) this.order.push(s.session_id);
      this.items.set(s.session_id, s);
    }
    this.hasMore = data.has_more ?? (data.sessions || []).length === PAGE_SIZE;
    this.totals = data;
  }

  setCurrent(sessionId) {
    if (this.currentId === sessionId) return;
    this.currentId = sessionId;
    this.schedule();
  }

  /** Could the server list this summary under the current filters? (best effort) */
  matches(s) {
    const f = this.filters();
    if (f.archived === false && s.archived) return false;
    if (f.type && (s.type || 'chat') !== f.type) return false;
    const tag = f.tag.toLowerCase(); // "work" and "Work" are one tag
    if (tag && !(s.tags || []).some((t) => t.toLowerCase() === tag)) return false;
    // As the server does: `since` bounds the last activity, `until` the start (UTC days).
    if (f.since && (s.last_updated || '').slice(0, 10) < f.since) return false;
    if (f.until && (s.started_at || '').slice(0, 10) > f.until) return false;
    return true;
  }

  onListEvent(ev) {
    const s = ev.session || {};
    const id = s.session_id ?? ev.session_id;
    if (!id) return;
    const shown = this.items.has(id);
    if (ev.type === 'session.deleted' || (shown && !this.matches({ ...this.items.get(id), ...s }))) {
      if (shown) this.remove(id);
      return;
    }
    if (shown) {
      this.items.set(id, { ...this.items.get(id), ...s });
      if (!this.filters().query) this.reposition(id); // ranked results keep their rank
    } else if (!this.filters().query && this.matches(s)) {
      // New or newly matching: show it if it sorts into the pages we hold.
      const last = this.items.get(this.order[this.order.length - 1]);
      if (!this.hasMore || !last || compare(s, last) < 0) {
        this.items.set(id, s);
        this.order.push(id);
        this.reposition(id);
      }
    }
    this.refreshTotals();
    this.schedule();
  }

  /** The totals line is the server's aggregate over the current filters; after live
   *  changes ask for it again (one cheap limit-1 list call, at most every 500 ms)
   *  rather than guess it here, where a row may or may not have been counted. */
  refreshTotals() {
    if (this.totalsTimer) return;
    this.totalsTimer = setTimeout(async () => {
      this.totalsTimer = null;
      const token = this.token;
      try {
        const data = await this.manager.listSessions(1, 0, this.filters());
        if (token !== this.token || !this.totals) return;
        for (const k of ['total_sessions', 'sessions_today', 'sessions_this_week', 'total_messages']) {
          this.totals[k] = data[k];
        }
        this.schedule();
      } catch {
        // offline: the totals catch up with the next list event or reload
      }
    }, 500);
  }

  reposition(id) {
    if (!this.items.has(id)) return;
    const i = this.order.indexOf(id);
    if (i >= 0) this.order.splice(i, 1);
    const s = this.items.get(id);
    let at = this.order.findIndex((other) => compare(s, this.items.get(other)) < 0);
    if (at < 0) at = this.order.length;
    this.order.splice(at, 0, id);
  }

  remove(id) {
    if (!this.items.delete(id)) return;
    this.order = this.order.filter((x) => x !== id);
    this.refreshTotals();
    this.schedule();
  }

  // ---- rendering ----------------------------------------------------------------

  render() {
    const { list } = this.el;
    let cursor = list.firstChild;
    const seen = new Set();
    for (const id of this.order) {
      seen.add(id);
      const s = this.items.get(id);
      const key = JSON.stringify([s, id === this.currentId,
        this.editing?.id === id ? this.editing.kind : null, this.hits.get(id) ?? null]);
      let node = this.nodes.get(id);
      if (!node || node.key !== key) {
        const li = this.row(s);
        if (node) {
          // A live update while editing must not throw away what is being typed.
          const typed = node.li.querySelector('.edit-input');
          const input = li.querySelector('.edit-input');
          if (typed && input) input.value = typed.value;
          // nor close the row's menu that someone has just opened
          if (node.li.querySelector('details.row-menu')?.open) {
            li.querySelector('details.row-menu').open = true;
          }
          if (cursor === node.li) cursor = li;
          node.li.replaceWith(li);
        }
        node = { li, key };
        this.nodes.set(id, node);
        if (this.editing?.id === id) this.focusEditor(li);
      }
      if (node.li !== cursor) list.insertBefore(node.li, cursor);
      else cursor = cursor.nextSibling;
    }
    for (const [id, node] of this.nodes) {
      if (!seen.has(id)) {
        node.li.remove();
        this.nodes.delete(id);
      }
    }
    const t = this.totals;
    const n = t?.total_sessions ?? this.order.length;
    const m = t?.total_messages ?? 0;
    this.el.stats.textContent = t
      ? `${n} session${n === 1 ? '' : 's'} · ${t.sessions_today ?? 0} today · `
        + `${t.sessions_this_week ?? 0} this week · ${m} message${m === 1 ? '' : 's'}`
      : '';
    this.el.more.hidden = !this.hasMore;
    this.el.empty.hidden = this.order.length > 0 || this.loading;
    const filtered = Object.entries(this.filters())
      .some(([k, v]) => (k === 'archived' ? v !== false : !!v));
    this.el.empty.textContent = filtered ? 'No session matches.' : 'No sessions yet.';
  }

  /** The words of the search box, as the page highlights them. */
  terms() {
    return this.filters().query.split(/\s+/).map((t) => t.replace(/^["']+|["'*]+$/g, ''))
      .filter(Boolean);
  }

  row(s) {
    const id = s.session_id;
    const label = sessionLabel(s);
    const current = id === this.currentId;
    const count = s.message_count ?? 0;
    const editing = this.editing?.id === id ? this.editing.kind : null;
    const hit = this.hits.get(id);
    const li = h('li', {
      class: `session${current ? ' current' : ''}${s.archived ? ' archived' : ''}`,
      'data-testid': 'session-item', 'data-session-id': id,
      'aria-current': current ? 'true' : null,
    });
    const mark = (name, title) => h('span', { class: 'row-mark', title }, icon(name, { size: 13 }),
      h('span', { class: 'sr-only', text: title }));
    li.append(h('button', {
      type: 'button', class: 'session-open', 'data-action': 'open', title: label,
      'aria-label': `Open ${label}, ${count} messages${current ? ' (current)' : ''}`,
    },
    h('span', { class: 'session-title' },
      s.pinned ? mark('pin', 'Pinned') : null,
      s.type === 'voice' ? mark('mic', 'Voice') : null,
      h('span', { class: 'session-name', text: label })),
    h('span', { class: 'session-meta' },
      h('time', { datetime: s.last_updated || '', text: formatDateTime(s.last_updated) }),
      ` · ${count} msg${count === 1 ? '' : 's'}`,
      s.archived ? ' · archived' : '',
      ...(s.tags || []).map((t) => h('span', { class: 'tag', text: t }))),
    // a journal that cannot be read is listed, with what `sessionlog verify` says
    s.damaged ? h('span', { class: 'session-damaged', 'data-testid': 'session-damaged',
      text: `Damaged: ${s.damaged}` }) : null,
    hit ? this.snippet(hit) : null));
    if (editing) li.append(this.editor(s, editing));
    const item = (action, testid, name, text, pressed) => h('button', {
      type: 'button', class: 'menu-item', role: 'menuitem', 'data-action': action,
      'data-testid': testid, 'aria-pressed': pressed == null ? null : String(pressed),
    }, icon(name), h('span', { text }));
    li.append(h('details', { class: 'row-menu' },
      h('summary', {
        class: 'icon-button row-menu-button', 'data-testid': 'session-menu',
        'aria-label': `Actions for ${label}`, title: 'Rename, tag, pin, archive or delete',
      }, icon('more')),
      h('div', { class: 'menu', role: 'menu', 'aria-label': `Actions for ${label}` },
        item('rename', 'rename', 'pencil', 'Rename'),
        item('tags', 'tags', 'tag', 'Edit tags'),
        item('pin', 'pin', 'pin', s.pinned ? 'Unpin' : 'Pin', !!s.pinned),
        item('archive', 'archive', 'archive', s.archived ? 'Unarchive' : 'Archive', !!s.archived),
        item('delete', 'session-delete', 'trash', 'Delete'))));
    return li;
  }

  /** A search hit's snippet, its matched terms highlighted (\u0002…\u0003 from the API). */
  snippet(hit) {
    const parts = [];
    let marked = false;
    for (const piece of hit.snippet.split(/([\u0002\u0003])/)) {
      if (piece === '\u0002') marked = true;
      else if (piece === '\u0003') marked = false;
      else if (piece) parts.push(marked ? h('mark', { text: piece }) : piece);
    }
    const where = hit.message_index == null ? 'title' : `message ${hit.message_index + 1}`;
    return h('span', { class: 'session-snippet', 'data-testid': 'search-snippet', title: `Found in ${where}` },
      ...parts);
  }

  /** The inline rename / tags form (Enter saves, Escape cancels). */
  editor(s, kind) {
    const isTags = kind === 'tags';
    const input = h('input', {
      type: 'text', class: 'edit-input', 'data-testid': isTags ? 'tags-input' : 'rename-input',
      'aria-label': isTags ? 'Tags, separated by commas' : 'Session title',
      placeholder: isTags ? 'tag, another tag' : sessionLabel({ preview: s.preview }),
      maxlength: isTags ? null : '500',
    });
    input.value = isTags ? (s.tags || []).join(', ') : (s.title || '');
    return h('form', { class: 'session-edit', 'data-action-form': kind },
      input,
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'edit-save', text: 'Save' }),
      h('button', { type: 'button', 'data-action': 'cancel-edit', text: 'Cancel' }));
  }

  focusEditor(li) {
    queueMicrotask(() => {
      const input = li.querySelector('.edit-input');
      input?.focus();
      input?.select();
    });
  }

  // ---- actions ------------------------------------------------------------------

  onClick(e) {
    const li = e.target.closest('li.session');
    if (!li) return;
    const actionEl = e.target.closest('[data-action]');
    // A click in the inline editor (its input, its Save) is not "open this session".
    if (!actionEl && e.target.closest('.session-edit, details.row-menu')) return;
    const id = li.dataset.sessionId;
    const action = actionEl?.dataset.action ?? 'open';
    if (actionEl?.closest('details.row-menu')) actionEl.closest('details.row-menu').open = false;
    if (action === 'open') {
      const hit = this.hits.get(id);
      this.onOpen(id, hit ? { message_index: hit.message_index, terms: this.terms() } : null);
    }
    else if (action === 'rename' || action === 'tags') this.startEdit(id, action);
    else if (action === 'cancel-edit') this.stopEdit(true);
    else if (action === 'pin') this.toggle(id, 'pinned');
    else if (action === 'archive') this.toggle(id, 'archived');
    else if (action === 'delete') this.confirmDelete(id);
  }

  onKeydown(e) {
    const menu = e.target.closest?.('details.row-menu[open]');
    if (e.key === 'Escape' && menu) {
      e.preventDefault();
      e.stopPropagation();
      menu.open = false;
      menu.querySelector('summary').focus();
      return;
    }
    if (e.key === 'Escape' && this.editing) {
      e.preventDefault();
      e.stopPropagation(); // do not also close the browser
      this.stopEdit(true);
    }
  }

  startEdit(id, kind) {
    this.editing = { id, kind };
    this.render();
  }

  stopEdit(restoreFocus) {
    const id = this.editing?.id;
    const kind = this.editing?.kind;
    this.editing = null;
    this.render();
    if (restoreFocus && id) {
      this.nodes.get(id)?.li.querySelector('.row-menu-button')?.focus();
    }
  }

  async saveEdit(id, kind, value) {
    const fields = kind === 'tags' ? { tags: parseTags(value) } : { title: value.trim() };
    this.patch(id, fields);
    this.stopEdit(true);
    await this.update(id, fields, kind === 'tags' ? 'Could not save the tags' : 'Could not rename');
  }

  async toggle(id, field) {
    const s = this.items.get(id);
    if (!s) return;
    const fields = { [field]: !s[field] };
    const action = field === 'pinned' ? 'pin' : 'archive';
    this.patch(id, fields);
    if (field === 'pinned' && !this.filters().query) this.reposition(id);
    this.render();
    // The row was rebuilt: keep focus on the same control (or the search box if the
    // row left the list, e.g. archived while archived ones are hidden).
    const again = this.nodes.get(id)?.li.querySelector('.row-menu-button');
    (again || this.el.search).focus();
    await this.update(id, fields, `Could not ${fields[field] ? '' : 'un'}${action}`);
  }

  /** Show or refresh one summary as if a list event had announced it. */
  upsert(summary) {
    this.onListEvent({ type: 'session.updated', session: summary });
  }

  /** Optimistic local change; the list event that follows confirms it. */
  patch(id, fields) {
    const s = this.items.get(id);
    if (!s) return;
    this.items.set(id, { ...s, ...fields });
    if (!this.matches(this.items.get(id))) this.remove(id);
    this.schedule();
  }

  async update(id, fields, what) {
    try {
      const data = await this.manager.updateSession(id, fields);
      if (data.session && this.items.has(id)) {
        this.items.set(id, { ...this.items.get(id), ...data.session });
        this.schedule();
      }
    } catch (err) {
      this.onError(err, what);
      this.reload(); // put the row back the way the server has it
    }
  }

  async confirmDelete(id) {
    const s = this.items.get(id);
    // eslint-disable-next-line no-alert -- the seed's "delete with confirmation"
    if (!window.confirm(`Delete “${sessionLabel(s)}”? This cannot be undone.`)) return;
    // Keep keyboard focus in the list: on the next row, else the previous one.
    const i = this.order.indexOf(id);
    const neighbour = this.order[i + 1] ?? this.order[i - 1];
    try {
      await this.manager.deleteSession(id);
      this.remove(id);
      this.render();
      const next = neighbour && this.nodes.get(neighbour)?.li.querySelector('.session-open');
      (next || this.el.search).focus();
    } catch (err) {
      this.onError(err, 'Could not delete the session');
    }
  }
}
