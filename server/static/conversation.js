// The open conversation: the message list (kept in step with the manager's live
// session by a keyed diff, so a streaming token touches one node), each message as
// Markdown with its actions (copy, edit), long ones collapsed, a search hit scrolled to
// and highlighted, and the composer (role picker, Enter to send, Shift+Enter for a new
// line). A new chat has no session until its first message is sent.

import { frameBatched, formatDateTime, formatShortTime, h, setAttr } from './dom.js';
import { icon } from './icons.js';
import { MarkdownRenderer, showHtml, showText } from './markdown.js';

const ROLE_LABEL = { user: 'User', assistant: 'Assistant', system: 'System', tool: 'Tool' };
const NEAR_BOTTOM_PX = 96;
// Longer messages start collapsed behind "Show more" (by size, not by measuring the
// layout: the same message collapses the same way in every window).
const LONG_CHARS = 1500;
const LONG_LINES = 24;

/** What `data-status` says: our delivery state first, then the server's status. */
function statusOf(m) {
  if (m.failed) return 'failed';
  if (m.pending) return 'pending';
  return m.status === 'partial' ? 'partial' : 'complete';
}

const PREVIEW_CHARS = 80;

/** JSON arguments re-printed (`indent` 2: for reading; 0: one line), as sent if not JSON. */
function printArgs(args, indent) {
  try {
    return JSON.stringify(JSON.parse(args), null, indent);
  } catch {
    return String(args ?? '');
  }
}

function preview(text) {
  const flat = String(text ?? '').replace(/\s+/g, ' ').trim();
  return flat.length > PREVIEW_CHARS ? `${flat.slice(0, PREVIEW_CHARS - 1)}…` : flat;
}

/**
 * Tool traffic, compact and collapsible: an assistant's calls as `name(arguments…)`
 * that open to the full arguments; a tool message's output folded under its name.
 */
function renderTools(node, m) {
  const blocks = [];
  for (const call of m.tool_calls ?? []) {
    const fn = call.function ?? {};
    blocks.push(h('details', { class: 'tool-call', 'data-testid': 'tool-call' },
      h('summary', {}, h('span', { class: 'tool-tag' }, 'call'), ' ',
        h('code', { class: 'tool-name' }, fn.name ?? '?'),
        h('code', { class: 'tool-args' }, `(${preview(printArgs(fn.arguments, 0))})`)),
      h('pre', { class: 'tool-full' }, printArgs(fn.arguments, 2))));
  }
  const isOutput = m.role === 'tool';
  if (isOutput) {
    blocks.push(h('details', { class: 'tool-output', 'data-testid': 'tool-output' },
      h('summary', {}, h('span', { class: 'tool-tag' }, 'output'), ' ',
        h('code', { class: 'tool-name' }, m.name ?? 'tool'),
        h('span', { class: 'tool-args' }, ` ${preview(m.content)}`)),
      h('pre', { class: 'tool-full' }, m.content)));
  }
  node.body.hidden = isOutput || (!m.content && blocks.length > 0);
  node.tools.replaceChildren(...blocks);
  node.tools.hidden = blocks.length === 0;
}

const isEdited = (m) => !!(m.edited || m.metadata?.edited_at);
const isLong = (text) => text.length > LONG_CHARS || text.split('\n', LONG_LINES + 1).length > LONG_LINES;

/** Copy text to the clipboard; the old way where the Clipboard API is unavailable. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    /* no permission or no secure context: fall back */
  }
  const ta = h('textarea', { class: 'sr-only', readonly: true });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  const ok = document.execCommand('copy');
  ta.remove();
  if (!ok) throw new Error('the browser refused to copy');
}

/** Wrap each occurrence of `terms` (case-insensitive) in text under `root` in <mark>. */
export function highlightTerms(root, terms) {
  const words = terms.map((t) => t.toLowerCase()).filter(Boolean);
  if (!words.length) return 0;
  const pattern = new RegExp(words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gi');
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.parentElement.closest('mark, .code-head')) nodes.push(n);
  }
  let count = 0;
  for (const node of nodes) {
    const text = node.nodeValue;
    pattern.lastIndex = 0;
    if (!pattern.test(text)) continue;
    pattern.lastIndex = 0;
    const parts = [];
    let at = 0;
    for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
      if (m.index > at) parts.push(text.slice(at, m.index));
      parts.push(h('mark', { class: 'hit-term', text: m[0] }));
      at = m.index + m[0].length;
      count++;
    }
    if (at < text.length) parts.push(text.slice(at));
    node.replaceWith(...parts);
  }
  return count;
}

export class ConversationView {
  /**
   * @param {object} o
   * @param {import('./sessionManager.js').SessionManager} o.manager
   * @param {(err: Error, what: string) => void} o.onError
   * @param {() => Promise<unknown>} o.ensureSession  creates the session of a new chat
   */
  constructor({ manager, onError, ensureSession }) {
    this.manager = manager;
    this.onError = onError;
    this.ensureSession = ensureSession;
    this.renderer = new MarkdownRenderer(manager);
    this.scroller = document.getElementById('messages');
    this.list = document.getElementById('message-list');
    this.empty = document.getElementById('messages-empty');
    this.earlier = document.getElementById('load-earlier');
    this.form = document.getElementById('composer-form');
    this.composer = document.getElementById('composer');
    this.rolePicker = document.getElementById('role-picker');
    this.sendButton = document.getElementById('send');
    this.nodes = new Map(); // message_id -> {el, body, …, last}
    this.connection = manager.status;
    this.renderedSessionId = null;
    this.stickToBottom = true;
    this.sending = false;
    this.hit = null; // {messageId, terms} of the search hit shown
    this.schedule = frameBatched(() => this.render());

    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    this.composer.addEventListener('keydown', (e) => {
      // isComposing: Enter that confirms an IME composition must not send.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey) {
        e.preventDefault();
        this.send();
      }
    });
    this.composer.addEventListener('input', () => this.autosize());
    this.scroller.addEventListener('scroll', () => {
      const el = this.scroller;
      this.stickToBottom = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
    }, { passive: true });
    this.earlier.addEventListener('click', () => this.loadEarlier());
    this.list.addEventListener('click', (e) => this.onClick(e));
    this.list.addEventListener('keydown', (e) => this.onEditorKey(e));
  }

  /** Connection state changes how pending messages are labelled (sending vs queued). */
  setConnection(status) {
    this.connection = status;
    for (const node of this.nodes.values()) {
      node.last = null; // relabel pending ones; retry renders that failed while offline
    }
    this.schedule();
  }

  /**
   * Send what is in the box. In a new chat the first message creates the session:
   * messages sent while that is under way wait in order and follow it; if it fails,
   * their text goes back into the box.
   */
  async send() {
    const text = this.composer.value;
    if (!text.trim()) return;
    const message = { role: this.rolePicker.value, text };
    this.composer.value = '';
    this.autosize();
    this.stickToBottom = true;
    this.composer.focus();
    if (this.manager.session && !this.waiting?.length) {
      this.add(message);
      return;
    }
    (this.waiting ??= []).push(message);
    if (this.sending) return; // the session is being created: this one follows
    this.sending = true;
    this.sendButton.disabled = true;
    try {
      await this.ensureSession();
    } catch (err) {
      const texts = this.waiting.splice(0).map((m) => m.text);
      if (!this.composer.value) this.composer.value = texts.join('\n\n');
      this.autosize();
      this.onError(err, err?.code === 'network'
        ? 'Cannot start a chat while the server is unreachable (your message is back in the box)'
        : 'Could not start a session');
      return;
    } finally {
      this.sending = false;
      this.sendButton.disabled = false;
    }
    for (const m of this.waiting.splice(0)) this.add(m);
  }

  add({ role, text }) {
    try {
      this.manager.addMessage(role, text);
    } catch (err) {
      this.onError(err, 'Could not add the message');
    }
  }

  autosize() {
    const ta = this.composer;
    ta.style.height = 'auto';
    ta.style.height = `${ta.scrollHeight}px`; // CSS max-height caps it, then it scrolls
  }

  async loadEarlier() {
    this.earlier.disabled = true;
    const before = this.scroller.scrollHeight - this.scroller.scrollTop;
    try {
      await this.manager.loadEarlier(200);
      this.render();
      // Keep the message the reader was looking at in place.
      this.scroller.scrollTop = this.scroller.scrollHeight - before;
    } catch (err) {
      this.onError(err, 'Could not load earlier messages');
    } finally {
      this.earlier.disabled = false;
    }
  }

  /**
   * Scroll to the message at `index` of the open session (a search hit), loading
   * earlier messages if it is before the ones held, and highlight it and `terms`.
   */
  async showHit(index, terms) {
    const s = this.manager.session;
    if (!s || index == null) return false;
    for (let i = 0; i < 1000 && s.message_start > index; i++) {
      if (!(await this.manager.loadEarlier(200))) break;
    }
    const m = s.messages[index - (s.message_start || 0)];
    if (!m) return false;
    this.hit = { messageId: m.message_id, terms };
    this.stickToBottom = false;
    this.render();
    const node = this.nodes.get(m.message_id);
    if (!node) return false;
    for (const other of this.nodes.values()) other.el.classList.remove('hit');
    node.el.classList.add('hit');
    if (node.collapsed) this.setCollapsed(node, false);
    this.applyHit(node);
    node.el.scrollIntoView({ block: 'center' });
    return true;
  }

  applyHit(node) {
    if (this.hit?.messageId === node.id) highlightTerms(node.body, this.hit.terms);
  }

  /** Re-render from the manager's current session (cheap: only changed nodes are touched). */
  render() {
    const session = this.manager.session;
    const sid = session?.session_id ?? null;
    if (sid !== this.renderedSessionId) {
      this.list.replaceChildren();
      this.nodes.clear();
      this.renderedSessionId = sid;
      this.stickToBottom = true;
      this.hit = null;
    }
    const messages = session?.messages ?? [];
    const readOnly = !!session?.deleted;
    this.composer.disabled = readOnly;
    this.sendButton.disabled = readOnly || this.sending;
    this.rolePicker.disabled = readOnly;
    this.earlier.hidden = !session || !session.message_start;
    this.empty.hidden = messages.length > 0;
    this.empty.textContent = session
      ? 'No messages yet. Write the first one below.'
      : 'A new chat. It is saved as a session once you send its first message.';

    const wasAtBottom = this.stickToBottom;
    const seen = new Set();
    let cursor = this.list.firstChild;
    for (const m of messages) {
      seen.add(m.message_id);
      let node = this.nodes.get(m.message_id);
      if (!node) {
        node = this.create(m);
        this.nodes.set(m.message_id, node);
      }
      this.update(node, m, readOnly);
      if (node.el !== cursor) this.list.insertBefore(node.el, cursor);
      else cursor = cursor.nextSibling;
    }
    for (const [id, node] of this.nodes) {
      if (!seen.has(id)) {
        node.el.remove();
        this.nodes.delete(id);
      }
    }
    if (wasAtBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  create(m) {
    const role = h('span', { class: 'msg-role' });
    const time = h('time', { class: 'msg-time' });
    const state = h('span', { class: 'msg-state' });
    const edited = h('span', { class: 'msg-edited', 'data-testid': 'message-edited', hidden: true },
      'edited');
    const body = h('div', { class: 'msg-body' });
    const more = h('button', {
      type: 'button', class: 'msg-more', 'data-action': 'toggle-more', 'data-testid': 'show-more',
      'aria-expanded': 'false', hidden: true, text: 'Show more',
    });
    const copy = h('button', {
      type: 'button', class: 'icon-button', 'data-action': 'copy', 'data-testid': 'message-copy',
      title: 'Copy the message', 'aria-label': 'Copy the message',
    }, icon('copy'));
    const edit = h('button', {
      type: 'button', class: 'icon-button', 'data-action': 'edit', 'data-testid': 'message-edit',
      title: 'Edit the message', 'aria-label': 'Edit the message',
    }, icon('pencil'));
    const actions = h('span', { class: 'msg-actions' }, copy, edit);
    const tools = h('div', { class: 'msg-tools', hidden: true });
    const typing = h('span', { class: 'typing', 'aria-hidden': 'true' }, h('i'), h('i'), h('i'));
    const el = h('li', { class: 'msg', 'data-testid': 'message', 'data-message-id': m.message_id },
      h('div', { class: 'msg-head' }, role, time, edited, state, actions), body, tools, more, typing);
    return {
      id: m.message_id, el, role, time, state, edited, body, tools, more, edit, last: null,
      content: null, hasHtml: false, collapsed: null, editing: false,
    };
  }

  update(node, m, readOnly) {
    const status = statusOf(m);
    const last = node.last;
    const edited = isEdited(m);
    // Skip untouched messages: with thousands on screen, a token must stay cheap.
    if (last && last.content === m.content && last.status === status && last.role === m.role
        && last.timestamp === m.timestamp && last.edited === edited
        && last.readOnly === readOnly && last.tool_calls === m.tool_calls) return;
    const { el } = node;
    if (!last || last.role !== m.role) {
      el.dataset.role = m.role;
      el.className = `msg msg-${m.role}`;
      node.role.textContent = ROLE_LABEL[m.role] ?? m.role;
    }
    if (!last || last.timestamp !== m.timestamp) {
      node.time.dateTime = m.timestamp || '';
      node.time.textContent = formatShortTime(m.timestamp);
      node.time.title = formatDateTime(m.timestamp);
    }
    if (!last || last.content !== m.content || last.tool_calls !== m.tool_calls) {
      renderTools(node, m);
    }
    node.edited.hidden = !edited;
    node.edited.title = m.metadata?.edited_at ? `Edited ${formatDateTime(m.metadata.edited_at)}` : 'Edited';
    if (!node.editing && (!last || last.content !== m.content || !node.hasHtml)) {
      this.showContent(node, m);
    }
    // Long messages start collapsed once complete (never while streaming); after that
    // the reader's choice is kept, unless an edit makes the message short.
    if (status === 'partial') {
      if (node.collapsed) this.setCollapsed(node, false);
      node.collapsed = null;
      node.more.hidden = true;
    } else if (node.collapsed === null || !last || last.content !== m.content) {
      const long = isLong(m.content);
      node.more.hidden = !long;
      if (!long && node.collapsed) this.setCollapsed(node, false);
      if (long && node.collapsed === null) this.setCollapsed(node, true);
      if (!long) node.collapsed = false;
    }
    el.dataset.status = status;
    setAttr(el, 'aria-busy', status === 'partial' ? 'true' : null);
    node.edit.disabled = readOnly || status !== 'complete';
    let label = '';
    if (status === 'pending') label = this.connection === 'online' ? 'sending…' : 'queued';
    else if (status === 'failed') label = 'not saved';
    else if (status === 'partial') label = 'streaming…';
    node.state.textContent = label;
    node.state.title = status === 'failed' ? (m.error || 'The server refused this message') : '';
    node.last = {
      content: m.content, status, role: m.role, timestamp: m.timestamp, edited, readOnly,
      tool_calls: m.tool_calls,
    };
  }

  /** The body as Markdown (tool output stays plain text: it is usually JSON or logs). */
  showContent(node, m) {
    const text = m.content;
    node.content = text;
    if (m.role === 'tool') {
      showText(node.body, text);
      node.hasHtml = true; // nothing to wait for
      this.applyHit(node);
      return;
    }
    const html = this.renderer.cached(text);
    if (html !== null) {
      showHtml(node.body, html);
      node.hasHtml = true;
      this.applyHit(node);
      return;
    }
    // While a streaming message grows, its previous HTML stays until the new one is
    // there (no flicker between plain text and Markdown at every token).
    if (!node.hasHtml) showText(node.body, text);
    this.renderer.request(text, (rendered) => {
      if (node.content !== text || node.editing) return; // superseded
      showHtml(node.body, rendered);
      node.hasHtml = true;
      this.applyHit(node);
    });
  }

  setCollapsed(node, collapsed) {
    node.collapsed = collapsed;
    node.el.classList.toggle('collapsed', collapsed);
    node.more.replaceChildren(icon(collapsed ? 'chevronDown' : 'chevronUp', { size: 14 }),
      collapsed ? 'Show more' : 'Show less');
    node.more.setAttribute('aria-expanded', String(!collapsed));
  }

  // ---- per-message actions ------------------------------------------------------------

  messageOf(id) {
    const s = this.manager.session;
    return s?.messages.find((m) => m.message_id === id) ?? null;
  }

  async onClick(e) {
    const button = e.target.closest('[data-action]');
    const li = e.target.closest('li.msg');
    if (!button || !li) return;
    const node = this.nodes.get(li.dataset.messageId);
    const m = this.messageOf(li.dataset.messageId);
    if (!node || !m) return;
    switch (button.dataset.action) {
      case 'copy':
        await this.copyWithFeedback(button, m.content);
        break;
      case 'copy-code': {
        const code = button.closest('.code-block')?.querySelector('code');
        if (code) await this.copyWithFeedback(button, code.textContent);
        break;
      }
      case 'toggle-more':
        this.setCollapsed(node, !node.collapsed);
        break;
      case 'edit':
        this.startEdit(node, m);
        break;
      case 'save-edit':
        this.saveEdit(node);
        break;
      case 'cancel-edit':
        this.stopEdit(node);
        break;
      default:
        break;
    }
  }

  async copyWithFeedback(button, text) {
    try {
      await copyText(text);
      button.classList.add('copied');
      button.dataset.copied = 'true';
      const label = button.querySelector('.code-copy-label');
      if (label) label.textContent = 'Copied';
      button.title = 'Copied';
      setTimeout(() => {
        button.classList.remove('copied');
        delete button.dataset.copied;
        if (label) label.textContent = 'Copy';
        button.title = button.dataset.action === 'copy' ? 'Copy the message' : 'Copy the code';
      }, 1500);
    } catch (err) {
      this.onError(err, 'Could not copy');
    }
  }

  startEdit(node, m) {
    node.editing = true;
    const input = h('textarea', {
      class: 'msg-edit-input', 'data-testid': 'message-edit-input', rows: 3,
      'aria-label': 'Message text (Ctrl+Enter saves, Escape cancels)',
    });
    input.value = m.content;
    const form = h('div', { class: 'msg-editor' }, input,
      h('div', { class: 'msg-editor-actions' },
        h('button', { type: 'button', class: 'primary', 'data-action': 'save-edit',
          'data-testid': 'message-edit-save', text: 'Save' }),
        h('button', { type: 'button', 'data-action': 'cancel-edit', text: 'Cancel' })));
    node.body.replaceChildren(form);
    node.body.classList.remove('rendered');
    node.hasHtml = false;
    node.el.classList.add('editing');
    input.style.height = `${Math.min(input.scrollHeight + 4, 400)}px`;
    input.focus();
  }

  saveEdit(node) {
    const input = node.body.querySelector('.msg-edit-input');
    const m = this.messageOf(node.id);
    if (!input || !m) return;
    const text = input.value;
    if (text === m.content) {
      this.stopEdit(node);
      return;
    }
    if (!text.trim()) {
      this.onError(null, 'A message cannot be empty: delete its text only to replace it');
      return;
    }
    try {
      this.manager.editMessage(node.id, text);
    } catch (err) {
      this.onError(err, 'Could not edit the message');
      return;
    }
    this.stopEdit(node);
  }

  stopEdit(node) {
    node.editing = false;
    node.el.classList.remove('editing');
    node.last = null; // show the (possibly new) content again
    this.render();
    node.el.querySelector('[data-action="edit"]')?.focus();
  }

  onEditorKey(e) {
    if (!e.target.classList?.contains('msg-edit-input')) return;
    const node = this.nodes.get(e.target.closest('li.msg')?.dataset.messageId);
    if (!node) return;
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      this.stopEdit(node);
    } else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      this.saveEdit(node);
    }
  }
}
