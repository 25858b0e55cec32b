// Message contents as Markdown: the server renders and sanitises them (POST /api/render,
// server/markdown.py) and this module asks for what the page shows, batched into one
// request per animation frame, with a cache, so a streaming message is re-rendered as it
// grows without one request per token. Until the HTML is there (or while the server is
// away) a message shows as plain text.
//
// The HTML is put in place with innerHTML: it comes from our server's allow-list
// sanitiser, never straight from a message, and the page's CSP forbids inline script.

import { h } from './dom.js';
import { icon } from './icons.js';

const CACHE_MAX = 2000; // rendered contents kept (least recently used dropped)
const BATCH_MAX = 200; // texts per request

export class MarkdownRenderer {
  /** @param {{request: (op: string, body: object) => Promise<any>}} api */
  constructor(api) {
    this.api = api;
    this.cache = new Map(); // content -> html
    this.waiting = new Map(); // content -> [callback]
    this.queued = [];
    this.scheduled = false;
  }

  /** The HTML for `text` if it is known now, else null. */
  cached(text) {
    const html = this.cache.get(text);
    if (html === undefined) return null;
    this.cache.delete(text); // refresh its place in the LRU order
    this.cache.set(text, html);
    return html;
  }

  /** Call `done(html)` once `text` is rendered (at once if cached). Returns nothing. */
  request(text, done) {
    const html = this.cached(text);
    if (html !== null) {
      done(html);
      return;
    }
    const callbacks = this.waiting.get(text);
    if (callbacks) {
      callbacks.push(done);
      return;
    }
    this.waiting.set(text, [done]);
    this.queued.push(text);
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  /** Forget what is waiting (e.g. offline): callers ask again later. */
  drop(text) {
    this.waiting.delete(text);
  }

  async flush() {
    this.scheduled = false;
    while (this.queued.length) {
      const batch = this.queued.splice(0, BATCH_MAX);
      let html;
      try {
        ({ html } = await this.api.request('/api/render', { texts: batch }));
      } catch {
        for (const text of batch) this.waiting.delete(text); // shown as plain text meanwhile
        continue;
      }
      batch.forEach((text, i) => {
        this.cache.set(text, html[i]);
        if (this.cache.size > CACHE_MAX) this.cache.delete(this.cache.keys().next().value);
        const callbacks = this.waiting.get(text) || [];
        this.waiting.delete(text);
        for (const fn of callbacks) fn(html[i]);
      });
    }
  }
}

/**
 * Put rendered HTML into `el`, then give each code block its language label and a
 * copy button (fenced code arrives as <pre data-lang="…"><code>…</code></pre>).
 */
export function showHtml(el, html) {
  el.innerHTML = html;
  el.classList.add('rendered');
  for (const pre of el.querySelectorAll('pre')) {
    const lang = pre.dataset.lang || '';
    const button = h('button', {
      type: 'button', class: 'code-copy', 'data-action': 'copy-code',
      title: 'Copy the code', 'aria-label': `Copy the ${lang || 'code'} block`,
    }, icon('copy', { size: 14 }), h('span', { class: 'code-copy-label', text: 'Copy' }));
    const head = h('div', { class: 'code-head' },
      h('span', { class: 'code-lang', text: lang || 'text' }), button);
    const block = h('div', { class: 'code-block' }, head);
    pre.replaceWith(block);
    block.append(pre);
  }
}

/** Show `text` as plain text (before its HTML is there). */
export function showText(el, text) {
  el.textContent = text;
  el.classList.remove('rendered');
}
