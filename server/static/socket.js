// One self-healing WebSocket to /api/sessions/ws (SPEC §5).
//
// It only knows about frames: connecting, reconnecting with capped exponential
// backoff and jitter, keep-alive pings, and matching `ack`/`error` replies to
// requests by `req_id`. What the frames mean (subscriptions, folding, the offline
// queue) is the SessionManager's business; it re-subscribes from `onOpen`.

/** A failure of the transport itself: the operation may be retried as is. */
export function networkError(message) {
  const err = new Error(message);
  err.code = 'network';
  err.status = 0;
  return err;
}

export class LiveConnection {
  /**
   * @param {object} o
   * @param {() => string} o.url  the ws(s):// address, read at each attempt
   * @param {(frame: object) => void} o.onFrame  every frame not consumed as a reply
   * @param {() => void} o.onOpen  after each successful (re)connect
   * @param {(status: string) => void} o.onStatus  'connecting' | 'online' | 'offline'
   */
  constructor({ url, onFrame, onOpen, onStatus, WebSocketImpl = globalThis.WebSocket,
    pingMs = 20_000, ackTimeoutMs = 15_000, maxBackoffMs = 10_000, connectTimeoutMs = 10_000 }) {
    Object.assign(this, { url, onFrame, onOpen, onStatus, WebSocketImpl, pingMs, ackTimeoutMs,
      maxBackoffMs, connectTimeoutMs });
    this.ws = null;
    // 'connecting' only until the first attempt settles; afterwards the page is
    // either online or offline, so retries in the background do not flicker it.
    this.status = 'connecting';
    this.started = false;
    this.attempt = 0;
    this.nextReqId = 1;
    this.pending = new Map(); // req_id -> {resolve, reject, timer}
    this.retryTimer = null;
    this.pingTimer = null;
    this.connectTimer = null;
    this.lastFrameAt = 0;
    this.pingSentAt = 0;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === 1;
  }

  /** Begin connecting (idempotent). */
  start() {
    if (this.started) return;
    this.started = true;
    this._connect();
  }

  /** Close for good: no reconnect, pending requests fail. */
  stop() {
    this.started = false;
    clearTimeout(this.retryTimer);
    this._drop('stopped');
  }

  /** Skip the rest of the backoff wait (e.g. the browser says it is online again). */
  reconnectNow() {
    if (!this.started || this.ws) return;
    clearTimeout(this.retryTimer);
    this._connect();
  }

  /** Send a frame if the socket is open; false otherwise (nothing is buffered here). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Send a frame with a fresh `req_id` and wait for its `ack` (resolved with the
   * frame) or `error` (rejected with an Error carrying `.code`). A closed socket
   * or a missing reply rejects with code 'network', which callers retry.
   */
  request(frame) {
    if (!this.isOpen) return Promise.reject(networkError('not connected'));
    const reqId = this.nextReqId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId);
        reject(networkError('no reply from the server'));
        // A server that stops answering is as good as gone: start over.
        this._drop('ack timeout');
      }, this.ackTimeoutMs);
      this.pending.set(reqId, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...frame, req_id: reqId }));
    });
  }

  _setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.onStatus?.(status);
  }

  _connect() {
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url());
    } catch (err) {
      console.warn('sessionlog: cannot open WebSocket', err);
      this._scheduleRetry();
      return;
    }
    this.ws = ws;
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws && ws.readyState !== 1) this._drop('connect timeout');
    }, this.connectTimeoutMs);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      clearTimeout(this.connectTimer);
      this.attempt = 0;
      this.lastFrameAt = Date.now();
      this.pingSentAt = 0;
      this.pingTimer = setInterval(() => this._keepAlive(), this.pingMs);
      this._setStatus('online');
      this.onOpen?.();
    };
    ws.onmessage = (msg) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        console.warn('sessionlog: ignoring a frame that is not JSON');
        return;
      }
      if ((frame.op === 'ack' || frame.op === 'error') && this.pending.has(frame.req_id)) {
        const p = this.pending.get(frame.req_id);
        this.pending.delete(frame.req_id);
        clearTimeout(p.timer);
        if (frame.op === 'ack') p.resolve(frame);
        else p.reject(Object.assign(new Error(frame.error || frame.code || 'error'),
          { code: frame.code || 'error', status: 0 }));
        return;
      }
      this.onFrame?.(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this._drop(`closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`);
    };
    ws.onerror = () => {}; // a close event always follows; that is where we act
  }

  _keepAlive() {
    // No frame at all since the previous ping (answered within milliseconds when
    // alive): the connection is half-open after a sleep or a network change.
    // Judged per ping, not by the clock: background tabs run timers late.
    if (this.pingSentAt && this.lastFrameAt < this.pingSentAt) {
      this._drop('no pong');
      return;
    }
    this.pingSentAt = Date.now();
    this.send({ op: 'ping' });
  }

  /** Forget the current socket at once (not waiting for a close handshake). */
  _drop(reason) {
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.connectTimer);
    clearInterval(this.pingTimer);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        /* already closed */
      }
    }
    const failed = [...this.pending.values()];
    this.pending.clear();
    for (const p of failed) {
      clearTimeout(p.timer);
      p.reject(networkError(`connection lost: ${reason}`));
    }
    if (this.started) {
      this._setStatus('offline');
      this._scheduleRetry();
    }
  }

  _scheduleRetry() {
    clearTimeout(this.retryTimer);
    this._setStatus('offline');
    // Full jitter between half and all of the capped exponential step, so many
    // windows do not reconnect in lockstep after a server restart.
    const step = Math.min(this.maxBackoffMs, 250 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    const delay = step / 2 + Math.random() * (step / 2);
    this.retryTimer = setTimeout(() => {
      if (this.started && !this.ws) this._connect();
    }, delay);
  }
}
