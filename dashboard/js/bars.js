// Bars as the chart needs them, and the arithmetic of the live candle (pure functions, no DOM).
// The definitions are the query API's (README, *Query API*): intervals aligned to UTC multiples of
// their length since the epoch, aggregated from one-minute bars; SMA and EMA on closes.

import { decimalsOf } from './format.js';

export const INTERVAL_SECONDS = { '1m': 60, '5m': 300, '15m': 900, '1h': 3600 };

// How far back the chart reads: about 120 to 200 bars of each interval, one API page at most.
export const HISTORY_SECONDS = { '1m': 2 * 3600, '5m': 12 * 3600, '15m': 2 * 86400, '1h': 7 * 86400 };

export const INDICATOR_PERIOD = 20;

/** A bar of the API (`start` RFC 3339, indicator fields optional) as the chart keeps it. */
export function chartBar(bar) {
  return {
    time: Date.parse(bar.start) / 1000,
    open: bar.open,
    high: bar.high,
    low: bar.low,
    close: bar.close,
    volume: bar.volume,
    trades: bar.trades,
    sma: bar[`sma_${INDICATOR_PERIOD}`] ?? null,
    ema: bar[`ema_${INDICATOR_PERIOD}`] ?? null,
  };
}

/** The start (UTC seconds) of the interval of `length` seconds that holds `seconds`. */
export function bucketStart(seconds, length) {
  return Math.floor(seconds / length) * length;
}

/**
 * The later of two states of the same minute's bar. A bar only grows while its minute lasts, so
 * the one with more trades is the newer (on a tie, the one that arrived last).
 */
export function newerBar(known, arrived) {
  return known && known.trades > arrived.trades ? known : arrived;
}

/** One bar from the minutes of a bucket, oldest first: first open, last close, extremes, sums. */
export function aggregate(time, minutes) {
  let { high, low } = minutes[0];
  let volume = 0;
  let trades = 0;
  for (const minute of minutes) {
    high = Math.max(high, minute.high);
    low = Math.min(low, minute.low);
    volume += minute.volume;
    trades += minute.trades;
  }
  return { time, open: minutes[0].open, high, low, close: minutes.at(-1).close, volume, trades };
}

/**
 * SMA and EMA of a live bar closing at `close`, after the first `count` bars of `bars` (closed,
 * with the API's values). SMA: the mean of the last n closes. EMA: the previous bar's EMA carried
 * on with a = 2 / (n + 1), or, for the very first value, the SMA of the first n closes. Computed
 * here rather than fetched again: the live bar changes several times a second.
 */
export function movingAverages(bars, count, close, period = INDICATOR_PERIOD) {
  let sma = null;
  if (count >= period - 1) {
    let sum = close;
    for (let index = count - period + 1; index < count; index += 1) sum += bars[index].close;
    sma = sum / period;
  }
  const previousEma = count > 0 ? bars[count - 1].ema : null;
  const alpha = 2 / (period + 1);
  let ema = null;
  if (previousEma != null) ema = alpha * close + (1 - alpha) * previousEma;
  else if (count === period - 1) ema = sma;
  return { sma, ema };
}

/** Decimals to show prices with: as many as the closes have, between 2 and 8. */
export function priceDecimals(bars) {
  let decimals = 2;
  for (const bar of bars.slice(-50)) decimals = Math.max(decimals, decimalsOf(String(bar.close)));
  return Math.min(decimals, 8);
}
