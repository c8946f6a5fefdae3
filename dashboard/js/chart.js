// The chart panel: candles and volume of the selected symbol at the chosen interval, SMA and EMA
// overlays, history from GET /bars and the live candle from the socket's one-minute bars.
//
// The one-minute bars of the last two intervals are kept (fetched with the history, then updated
// from the socket), and their candles aggregated from them, so a candle is exactly what GET /bars
// would answer. Two, not one: the pipeline lags by seconds, so the previous minute's last trades
// often arrive after the next minute has begun. Times are UTC seconds, shown as UTC.

import {
  CandlestickSeries,
  createChart,
  HistogramSeries,
  LineSeries,
} from '../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs';
import {
  aggregate,
  bucketStart,
  chartBar,
  HISTORY_SECONDS,
  INDICATOR_PERIOD,
  INTERVAL_SECONDS,
  movingAverages,
  newerBar,
  priceDecimals,
} from './bars.js';
import { scheduleFrame } from './frames.js';

const MAX_HISTORY_BARS = 5000; // pages followed at most: more than a screen can show
const RETRY_MS = 5000;
const COLORS = {
  background: '#0f131a',
  text: '#8b949e',
  grid: '#1a2029',
  up: '#2ebd85',
  down: '#f6465d',
  upVolume: 'rgba(46, 189, 133, 0.35)',
  downVolume: 'rgba(246, 70, 93, 0.35)',
  sma: '#e3b341',
  ema: '#a371f7',
};

export class PriceChart {
  #api;
  #container; // [data-chart], which says what it shows: data-chart-symbol, -interval, -candles
  #title;
  #status;
  #chart;
  #candles;
  #volume;
  #averages; // {sma, ema}: line series
  #symbol = null;
  #interval = '1m';
  #bars = []; // bars of the interval, oldest first, as bars.js's chartBar
  #recentMinutes = new Map(); // time -> every one-minute bar of the last two bars' intervals
  #pending = new Map(); // time -> live one-minute bar of the symbol, not applied yet
  #loadId = 0;
  #loading = false;

  constructor(panel, api) {
    this.#api = api;
    this.#title = panel.querySelector('[data-chart-title]');
    this.#status = panel.querySelector('[data-chart-status]');
    this.#container = panel.querySelector('[data-chart]');
    this.#container.dataset.chartInterval = this.#interval;
    this.#createChart(this.#container);
    for (const button of panel.querySelectorAll('[data-interval]')) {
      button.addEventListener('click', () => {
        for (const other of panel.querySelectorAll('[data-interval]')) other.setAttribute('aria-pressed', String(other === button));
        this.#interval = button.dataset.interval;
        this.#container.dataset.chartInterval = this.#interval;
        this.#clear();
        this.reload();
      });
    }
    for (const checkbox of panel.querySelectorAll('[data-indicator]')) {
      const series = this.#averages[checkbox.dataset.indicator];
      series.applyOptions({ visible: checkbox.checked });
      checkbox.addEventListener('change', () => series.applyOptions({ visible: checkbox.checked }));
    }
  }

  /** Charts `symbol` (history first, then live). */
  show(symbol) {
    if (symbol === this.#symbol) return;
    this.#symbol = symbol;
    this.#title.textContent = symbol;
    this.#container.dataset.chartSymbol = symbol;
    this.#pending.clear();
    this.#clear();
    this.reload();
  }

  /** Reads the history again: after another interval is picked, or a reconnect that may have missed bars. */
  reload() {
    if (this.#symbol) this.#load(this.#symbol, this.#interval);
  }

  /** Records the socket's one-minute bars; the selected symbol's are drawn at the next frame. */
  receive(bars) {
    for (const bar of bars) {
      if (bar.symbol !== this.#symbol || bar.interval !== '1m') continue;
      const minute = chartBar(bar);
      this.#pending.set(minute.time, newerBar(this.#pending.get(minute.time), minute));
    }
    if (this.#pending.size && !this.#loading) scheduleFrame(this.#render);
  }

  async #load(symbol, interval) {
    const loadId = ++this.#loadId;
    this.#loading = true;
    this.#status.textContent = `Loading ${symbol} ${interval} bars…`;
    let history;
    let minutes;
    try {
      history = (await this.#history(symbol, interval)).map(chartBar);
      // The one-minute bars of the last two intervals (see the top of this file): on a 1m chart,
      // the last two bars themselves.
      const since = history.at(-2)?.time ?? history.at(-1)?.time;
      if (interval === '1m' || since === undefined) minutes = history.slice(-2);
      else minutes = (await this.#pages(symbol, { interval: '1m', from: isoTime(since) })).map(chartBar);
    } catch (error) {
      // The chart stays empty (and live bars wait) until a load succeeds: a candle built from the
      // socket alone could miss the interval's earlier minutes.
      if (loadId === this.#loadId) {
        this.#clear();
        this.#status.textContent = `Could not load the bars: ${error.message} Trying again in ${RETRY_MS / 1000} s.`;
        setTimeout(() => loadId === this.#loadId && this.reload(), RETRY_MS);
      }
      return;
    }
    if (loadId !== this.#loadId) return; // another symbol or interval was picked meanwhile
    this.#bars = history;
    this.#recentMinutes.clear();
    // Read after the history, the minutes may be newer: the last two candles are rebuilt from them.
    for (const minute of minutes) this.#applyMinute(minute);
    this.#drawAll();
    this.#status.textContent = this.#bars.length ? '' : `No ${interval} bars for ${symbol} in this range yet.`;
    this.#loading = false;
    if (this.#pending.size) scheduleFrame(this.#render);
  }

  #history(symbol, interval) {
    const query = { interval, indicators: `sma:${INDICATOR_PERIOD},ema:${INDICATOR_PERIOD}`, limit: 1000 };
    // Without `from` the API starts two hours back, which is the 1m chart's range.
    if (interval !== '1m') query.from = isoTime(Date.now() / 1000 - HISTORY_SECONDS[interval]);
    return this.#pages(symbol, query);
  }

  async #pages(symbol, query) {
    let page = await this.#api.bars(symbol, query);
    const bars = [...page.bars];
    while (page.next && bars.length < MAX_HISTORY_BARS) {
      page = await this.#api.barsPage(symbol, page.next);
      bars.push(...page.bars);
    }
    return bars;
  }

  // A field, not a method: scheduleFrame gets the same function each time and runs it once a frame.
  #render = () => {
    if (this.#loading) return;
    const minutes = [...this.#pending.values()].sort((a, b) => a.time - b.time);
    this.#pending.clear();
    for (const minute of minutes) {
      for (const bar of this.#applyMinute(minute)) this.#draw(bar);
    }
    this.#container.dataset.chartCandles = String(this.#bars.length);
  };

  /** Folds a one-minute bar into the chart's bars; returns the bars that changed, oldest first. */
  #applyMinute(minute) {
    const length = INTERVAL_SECONDS[this.#interval];
    const time = bucketStart(minute.time, length);
    const count = this.#bars.length;
    let index;
    if (!count || time > this.#bars[count - 1].time) index = count;
    else if (time === this.#bars[count - 1].time) index = count - 1;
    else if (count > 1 && time === this.#bars[count - 2].time) index = count - 2;
    else return []; // an older interval: its minutes are no longer kept, the next load shows it
    const known = this.#recentMinutes.get(minute.time);
    if (newerBar(known, minute) === known) return [];
    this.#recentMinutes.set(minute.time, minute);
    if (index === count && count) this.#forgetMinutesBefore(this.#bars[count - 1].time);
    const minutes = [...this.#recentMinutes.values()].filter((kept) => bucketStart(kept.time, length) === time);
    this.#bars[index] = aggregate(time, minutes.sort((a, b) => a.time - b.time));
    // Its averages, and those of the bar after it, which follow from its close.
    for (let later = index; later < this.#bars.length; later += 1) {
      Object.assign(this.#bars[later], movingAverages(this.#bars, later, this.#bars[later].close));
    }
    return this.#bars.slice(index);
  }

  #forgetMinutesBefore(time) {
    for (const kept of this.#recentMinutes.keys()) if (kept < time) this.#recentMinutes.delete(kept);
  }

  #clear() {
    this.#bars = [];
    this.#recentMinutes.clear();
    this.#drawAll();
  }

  #drawAll() {
    const decimals = priceDecimals(this.#bars);
    this.#candles.applyOptions({ priceFormat: { type: 'price', precision: decimals, minMove: 10 ** -decimals } });
    this.#candles.setData(this.#bars.map(candleData));
    this.#volume.setData(this.#bars.map(volumeData));
    for (const [name, series] of Object.entries(this.#averages)) {
      series.setData(this.#bars.filter((bar) => bar[name] != null).map((bar) => ({ time: bar.time, value: bar[name] })));
    }
    this.#chart.timeScale().fitContent();
    this.#container.dataset.chartCandles = String(this.#bars.length);
  }

  #draw(bar) {
    const isPrevious = bar.time < this.#bars.at(-1).time; // lightweight-charts asks to be told
    this.#candles.update(candleData(bar), isPrevious);
    this.#volume.update(volumeData(bar), isPrevious);
    for (const [name, series] of Object.entries(this.#averages)) {
      if (bar[name] != null) series.update({ time: bar.time, value: bar[name] }, isPrevious);
    }
  }

  #createChart(container) {
    this.#chart = createChart(container, {
      autoSize: true,
      // The logo would inject a <style> element, which the page's CSP forbids; the footer carries
      // TradingView's attribution notice and link instead.
      layout: { background: { type: 'solid', color: COLORS.background }, textColor: COLORS.text, fontSize: 11, attributionLogo: false },
      grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
      rightPriceScale: { borderColor: COLORS.grid, scaleMargins: { top: 0.08, bottom: 0.28 } },
      timeScale: { borderColor: COLORS.grid, timeVisible: true, secondsVisible: false, rightOffset: 3, maxBarSpacing: 24 },
      crosshair: { horzLine: { labelBackgroundColor: '#30363d' }, vertLine: { labelBackgroundColor: '#30363d' } },
    });
    this.#candles = this.#chart.addSeries(CandlestickSeries, {
      upColor: COLORS.up,
      downColor: COLORS.down,
      borderVisible: false,
      wickUpColor: COLORS.up,
      wickDownColor: COLORS.down,
    });
    // Volume on a scale of its own, in the bottom fifth, under the candles.
    this.#volume = this.#chart.addSeries(HistogramSeries, { priceScaleId: 'volume', priceFormat: { type: 'volume' }, lastValueVisible: false, priceLineVisible: false });
    this.#chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    const line = (color, title) => this.#chart.addSeries(LineSeries, { color, title, lineWidth: 2, priceLineVisible: false, crosshairMarkerVisible: false });
    this.#averages = { sma: line(COLORS.sma, `SMA ${INDICATOR_PERIOD}`), ema: line(COLORS.ema, `EMA ${INDICATOR_PERIOD}`) };
  }
}

function candleData(bar) {
  return { time: bar.time, open: bar.open, high: bar.high, low: bar.low, close: bar.close };
}

function volumeData(bar) {
  return { time: bar.time, value: bar.volume, color: bar.close >= bar.open ? COLORS.upVolume : COLORS.downVolume };
}

function isoTime(seconds) {
  return new Date(seconds * 1000).toISOString();
}
