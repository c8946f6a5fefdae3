// The live API's client: one WebSocket that stays subscribed to the symbols the page shows.
// API Gateway closes connections after two hours and networks drop them anytime, so it reconnects
// on its own, with exponential backoff and jitter, and subscribes again.

import { parseExactJson } from './exact-json.js';

const FIRST_RETRY_MS = 500;
const LONGEST_RETRY_MS = 30_000;
// A connection that lasted this long was a real one: the next drop starts the backoff afresh.
const STABLE_AFTER_MS = 10_000;
const MAX_SYMBOLS = 50; // per connection, the live API's limit

export class LiveFeed {
  #url;
  #onMessage;
  #onState;
  #onOpen;
  #symbols = new Set();
  #socket = null;
  #failures = 0;
  #openedAt = 0;
  #everOpened = false;

  /**
   * @param {object} options
   * @param {string} options.url the live API's URL (ws:// or wss://)
   * @param {string} options.key the API key, sent as `?key=` (browsers cannot set WebSocket headers)
   * @param {(message: object) => void} options.onMessage every message from the server, parsed
   * @param {(state: {state: string, text: string}) => void} options.onState connecting, open or closed
   * @param {(info: {reconnected: boolean}) => void} options.onOpen after each successful connect
   */
  constructor({ url, key, onMessage, onState, onOpen }) {
    this.#url = `${url}?key=${encodeURIComponent(key)}`;
    this.#onMessage = onMessage;
    this.#onState = onState;
    this.#onOpen = onOpen;
  }

  start() {
    this.#connect();
  }

  /** Adds symbols to the subscription (now if connected, else on connect), up to MAX_SYMBOLS. */
  subscribe(symbols) {
    const added = [];
    for (const symbol of symbols) {
      if (this.#symbols.has(symbol)) continue;
      if (this.#symbols.size >= MAX_SYMBOLS) {
        console.warn(`live: ${symbol} not subscribed, a connection takes at most ${MAX_SYMBOLS} symbols`);
        continue;
      }
      this.#symbols.add(symbol);
      added.push(symbol);
    }
    if (added.length) this.#send({ action: 'subscribe', symbols: added });
  }

  #connect() {
    this.#onState({ state: 'connecting', text: this.#everOpened ? 'Reconnecting…' : 'Connecting…' });
    const socket = new WebSocket(this.#url);
    this.#socket = socket;
    socket.addEventListener('open', () => {
      this.#openedAt = performance.now();
      const reconnected = this.#everOpened;
      this.#everOpened = true;
      this.#onState({ state: 'open', text: 'Live' });
      if (this.#symbols.size) this.#send({ action: 'subscribe', symbols: [...this.#symbols] });
      this.#onOpen({ reconnected });
    });
    socket.addEventListener('message', (event) => {
      let message;
      try {
        message = parseExactJson(event.data);
      } catch {
        console.warn('live: a message that is not JSON was ignored');
        return;
      }
      this.#onMessage(message);
    });
    // A refused handshake and a dropped connection look the same to a browser (close code 1006,
    // no status), and `error` is always followed by `close`: retrying is the one answer.
    socket.addEventListener('close', () => this.#retryLater());
  }

  #retryLater() {
    this.#socket = null;
    const wasStable = this.#openedAt && performance.now() - this.#openedAt >= STABLE_AFTER_MS;
    this.#failures = wasStable ? 0 : this.#failures + 1;
    this.#openedAt = 0;
    const ceiling = Math.min(LONGEST_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, this.#failures - 1));
    // Half fixed, half random: clients dropped together do not all come back in the same instant.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#onState({ state: 'closed', text: `Disconnected, retrying in ${Math.max(1, Math.round(delay / 1000))} s` });
    setTimeout(() => this.#connect(), delay);
  }

  #send(message) {
    if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message));
  }
}
