// One tile per symbol: last price, change since the day's open, bid/ask, day range and volume.
// Quotes may arrive a thousand times a second; they are only recorded (the latest per symbol) and
// applied once per animation frame, so the page stays smooth however fast the market is.

import { scheduleFrame } from './frames.js';
import { decimalsOf, formatPercent, formatSignedText, formatVolume } from './format.js';

const INTERPOLATION_MS = 150;

export class QuoteTiles {
  #container;
  #onSelect;
  #tiles = new Map(); // symbol -> tile (see #createTile)
  #pending = new Map(); // symbol -> latest quote not yet shown
  #animating = new Set(); // tiles whose price is moving to a new value
  #selected = null;

  /** @param {(symbol: string) => void} onSelect called when the user picks a tile */
  constructor(container, onSelect) {
    this.#container = container;
    this.#onSelect = onSelect;
  }

  /** Records quotes (from GET /quotes or the socket); they are shown at the next frame. */
  receive(quotes) {
    for (const quote of quotes) this.#pending.set(quote.symbol, quote);
    if (this.#pending.size) scheduleFrame(this.#render);
  }

  select(symbol) {
    this.#selected = symbol;
    for (const [tileSymbol, tile] of this.#tiles) tile.element.setAttribute('aria-pressed', String(tileSymbol === symbol));
  }

  // A field, not a method: scheduleFrame gets the same function each time and runs it once a frame.
  #render = (now) => {
    for (const quote of this.#pending.values()) this.#apply(quote, now);
    this.#pending.clear();
    for (const tile of this.#animating) this.#stepPrice(tile, now);
    if (this.#animating.size) scheduleFrame(this.#render);
  };

  #apply(quote, now) {
    let tile = this.#tiles.get(quote.symbol);
    if (!tile) tile = this.#createTile(quote.symbol);
    // A quote from GET /quotes can be older than one the socket already delivered.
    else if (Date.parse(quote.at) < Date.parse(tile.quote.at)) return;
    const previous = tile.quote.price;
    tile.quote = quote;
    const { fields } = tile;
    fields.price.dataset.price = quote.price;
    const price = Number(quote.price);
    if (previous !== null && price !== Number(previous)) {
      this.#flash(tile, price > Number(previous) ? 'up' : 'down');
      tile.animation = { from: tile.shownPrice, to: price, decimals: decimalsOf(quote.price), startedAt: now };
      this.#animating.add(tile);
    } else if (!this.#animating.has(tile)) {
      tile.shownPrice = price;
      setText(fields.price, quote.price);
    }
    const direction = quote.change_pct > 0 ? 'up' : quote.change_pct < 0 ? 'down' : 'flat';
    if (tile.element.dataset.direction !== direction) tile.element.dataset.direction = direction;
    setText(fields.change, formatSignedText(quote.change));
    setText(fields.change_pct, formatPercent(quote.change_pct));
    setText(fields.bid, quote.bid ?? '—');
    setText(fields.ask, quote.ask ?? '—');
    setText(fields.range, `${quote.day_low}–${quote.day_high}`);
    setText(fields.volume, formatVolume(quote.day_volume));
  }

  // The displayed number eases from the old price to the new one, then lands on the exact text.
  #stepPrice(tile, now) {
    const { from, to, decimals, startedAt } = tile.animation;
    const progress = Math.min(1, (now - startedAt) / INTERPOLATION_MS);
    const eased = 1 - (1 - progress) ** 3;
    tile.shownPrice = from + (to - from) * eased;
    if (progress < 1) {
      setText(tile.fields.price, tile.shownPrice.toFixed(decimals));
      return;
    }
    tile.shownPrice = to;
    setText(tile.fields.price, tile.quote.price);
    this.#animating.delete(tile);
  }

  // Two identical animations under different names: switching between them restarts the flash on
  // every change without forcing a layout to reset the animation.
  #flash(tile, direction) {
    tile.flashTurn = !tile.flashTurn;
    tile.fields.price.dataset.flash = `${direction}-${tile.flashTurn ? 'a' : 'b'}`;
  }

  #createTile(symbol) {
    const element = document.createElement('button');
    element.type = 'button';
    element.className = 'tile';
    element.dataset.symbol = symbol;
    element.setAttribute('aria-pressed', String(symbol === this.#selected));
    element.addEventListener('click', () => this.#onSelect(symbol));

    // A button holds only phrasing content, hence spans throughout.
    const fields = {};
    const field = (name, label) => {
      const span = document.createElement('span');
      span.className = `tile-${name.replace('_', '-')}`;
      span.dataset.field = name;
      if (label) span.dataset.label = label;
      span.textContent = '—';
      fields[name] = span;
      return span;
    };
    const group = (className, ...children) => {
      const span = document.createElement('span');
      span.className = className;
      span.append(...children);
      return span;
    };
    const symbolLabel = group('tile-symbol', symbol);
    element.append(
      group('tile-row tile-head', symbolLabel, group('tile-change', field('change'), field('change_pct'))),
      group('tile-row', field('price'), group('tile-detail', field('volume', 'Vol'))),
      group('tile-row tile-detail', field('bid', 'B'), field('ask', 'A')),
      group('tile-row tile-detail', field('range', 'L–H')),
    );

    const tile = { element, fields, quote: { price: null, at: '1970-01-01T00:00:00Z' }, shownPrice: 0, animation: null, flashTurn: false };
    this.#tiles.set(symbol, tile);
    this.#insertInOrder(element, symbol);
    return tile;
  }

  #insertInOrder(element, symbol) {
    const next = [...this.#tiles.keys()].filter((other) => other > symbol).sort()[0];
    this.#container.insertBefore(element, next ? this.#tiles.get(next).element : null);
  }
}

// Writing the same text again still costs the browser work; most fields do not change per quote.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}
