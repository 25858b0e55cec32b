// The open conversation: the message list (kept in step with the manager's live
// session by a keyed diff, so a streaming token touches one text node) and the
// composer (role picker, Enter to send, Shift+Enter for a new line).

import { frameBatched, formatDateTime, formatShortTime, h, setAttr } from './dom.js';

const ROLE_LABEL = { user: 'User', assistant: 'Assistant', system: 'System', tool: 'Tool' };
const NEAR_BOTTOM_PX = 96;

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

export class ConversationView {
  /**
   * @param {object} o
   * @param {import('./sessionManager.js').SessionManager} o.manager
   * @param {(err: Error, what: string) => void} o.onError
   */
  constructor({ manager, onError }) {
    this.manager = manager;
    this.onError = onError;
    this.scroller = document.getElementById('messages');
    this.list = document.getElementById('message-list');
    this.empty = document.getElementById('messages-empty');
    this.earlier = document.getElementById('load-earlier');
    this.form = document.getElementById('composer-form');
    this.composer = document.getElementById('composer');
    this.rolePicker = document.getElementById('role-picker');
    this.sendButton = document.getElementById('send');
    this.nodes = new Map(); // message_id -> {el, body, state, time, last}
    this.connection = manager.status;
    this.renderedSessionId = null;
    this.stickToBottom = true;
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
  }

  /** Connection state changes how pending messages are labelled (sending vs queued). */
  setConnection(status) {
    this.connection = status;
    for (const node of this.nodes.values()) node.last = null; // relabel pending ones
    this.schedule();
  }

  send() {
    const text = this.composer.value;
    if (!text.trim()) return;
    try {
      this.manager.addMessage(this.rolePicker.value, text);
    } catch (err) {
      this.onError(err, 'Could not add the message');
      return;
    }
    this.composer.value = '';
    this.autosize();
    this.stickToBottom = true;
    this.composer.focus();
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

  /** Re-render from the manager's current session (cheap: only changed nodes are touched). */
  render() {
    const session = this.manager.session;
    const sid = session?.session_id ?? null;
    if (sid !== this.renderedSessionId) {
      this.list.replaceChildren();
      this.nodes.clear();
      this.renderedSessionId = sid;
      this.stickToBottom = true;
    }
    const messages = session?.messages ?? [];
    const readOnly = !session || !!session.deleted;
    this.composer.disabled = readOnly;
    this.sendButton.disabled = readOnly;
    this.rolePicker.disabled = readOnly;
    this.earlier.hidden = !session || !session.message_start;
    this.empty.hidden = !session || messages.length > 0;

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
      this.update(node, m);
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
    const body = h('div', { class: 'msg-body' });
    const tools = h('div', { class: 'msg-tools', hidden: true });
    const typing = h('span', { class: 'typing', 'aria-hidden': 'true' }, h('i'), h('i'), h('i'));
    const el = h('li', { class: 'msg', 'data-testid': 'message', 'data-message-id': m.message_id },
      h('div', { class: 'msg-head' }, role, time, state), body, tools, typing);
    return { el, role, time, state, body, tools, last: null };
  }

  update(node, m) {
    const status = statusOf(m);
    const last = node.last;
    // Skip untouched messages: with thousands on screen, a token must stay cheap.
    if (last && last.content === m.content && last.status === status && last.role === m.role
        && last.timestamp === m.timestamp && last.tool_calls === m.tool_calls) return;
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
      node.body.textContent = m.content;
      renderTools(node, m);
    }
    el.dataset.status = status;
    setAttr(el, 'aria-busy', status === 'partial' ? 'true' : null);
    let label = '';
    if (status === 'pending') label = this.connection === 'online' ? 'sending…' : 'queued';
    else if (status === 'failed') label = 'not saved';
    else if (status === 'partial') label = 'streaming…';
    node.state.textContent = label;
    node.state.title = status === 'failed' ? (m.error || 'The server refused this message') : '';
    node.last = {
      content: m.content, status, role: m.role, timestamp: m.timestamp, tool_calls: m.tool_calls,
    };
  }
}
