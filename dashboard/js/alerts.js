// The alert feed: recent history from GET /alerts, then live alerts from the socket as they fire,
// newest first, each once (history and socket overlap after a reconnect).

import { scheduleFrame } from './frames.js';
import { formatUtcTime, percentBetween, roundDecimal } from './format.js';

const MAX_SHOWN = 200;

export class AlertFeed {
  #list;
  #message;
  #shown = []; // {firedAt, element}, newest first
  #known = new Set(); // alert ids ever shown
  #pending = []; // {alert, isLive}

  constructor(list, message) {
    this.#list = list;
    this.#message = message;
  }

  /** Alerts from GET /alerts: shown without a highlight. */
  showHistory(alerts) {
    this.#record(alerts, false);
  }

  /** Alerts from the socket: highlighted when they appear. Returns whether any was new. */
  receive(alerts) {
    return this.#record(alerts, true);
  }

  showError(text) {
    this.#message.textContent = text;
    this.#message.hidden = false;
  }

  #record(alerts, isLive) {
    const fresh = alerts.filter((alert) => !this.#known.has(alert.alert_id));
    for (const alert of fresh) {
      this.#known.add(alert.alert_id);
      this.#pending.push({ alert, isLive });
    }
    if (fresh.length) scheduleFrame(this.#render);
    return fresh.length > 0;
  }

  #render = () => {
    for (const { alert, isLive } of this.#pending) this.#insert(alert, isLive);
    this.#pending = [];
    while (this.#shown.length > MAX_SHOWN) this.#shown.pop().element.remove();
    this.#message.hidden = this.#shown.length > 0;
    if (!this.#shown.length) this.#message.textContent = 'No alerts yet.';
  };

  // In fired_at order, not arrival order: history read after a reconnect can be older than what
  // the socket delivered before it.
  #insert(alert, isLive) {
    const firedAt = Date.parse(alert.fired_at);
    const element = alertEntry(alert);
    if (isLive) element.classList.add('alert-new');
    const index = this.#shown.findIndex((entry) => entry.firedAt < firedAt);
    const position = index < 0 ? this.#shown.length : index;
    this.#list.insertBefore(element, this.#shown[position]?.element ?? null);
    this.#shown.splice(position, 0, { firedAt, element });
  }
}

function alertEntry(alert) {
  const item = document.createElement('li');
  item.className = 'alert';
  item.dataset.alertId = alert.alert_id;
  item.dataset.kind = alert.kind;
  item.dataset.direction = alert.direction;

  const time = document.createElement('time');
  time.className = 'alert-time';
  time.dateTime = alert.fired_at;
  time.textContent = formatUtcTime(alert.fired_at);

  const symbol = document.createElement('span');
  symbol.className = 'alert-symbol';
  symbol.textContent = alert.symbol;

  const text = document.createElement('span');
  text.className = 'alert-text';
  text.textContent = alertText(alert);

  item.append(time, symbol, text);
  return item;
}

/** What happened, in the words of the alert's e-mail (after the symbol): the level and what it was measured from. */
function alertText(alert) {
  switch (alert.kind) {
    case 'change':
      // A day-change rule's level is a percentage from the open (reference), not a price.
      return `${alert.direction === 'above' ? 'rose' : 'fell'} ${alert.change} on the day at ${alert.price} (open ${alert.reference})`;
    case 'move': {
      // The reference is the window's low (a move up) or high (a move down).
      const way = alert.direction === 'above' ? 'up' : 'down';
      return `moved ${way} ${percentBetween(alert.reference, alert.price)} % within ${alert.within}, from ${alert.reference} to ${alert.price}`;
    }
    case 'cross':
      return `crossed ${alert.direction} its ${averageName(alert.cross)} (${roundDecimal(alert.reference, 4)}) at ${alert.price}`;
    default:
      return `crossed ${alert.direction} ${alert.threshold} at ${alert.price}`;
  }
}

/** "sma:20@1m" -> "SMA(20) of 1m bars". */
function averageName(average) {
  const found = /^(sma|ema):(\d+)@(\w+)$/i.exec(average ?? '');
  return found ? `${found[1].toUpperCase()}(${found[2]}) of ${found[3]} bars` : `average ${average}`;
}
