// The page's wiring: config and key first, the key checked against the query API, then the panels
// fed from the API (history) and the live socket (everything after). Data flows one way: socket or
// API -> a panel's pending state -> the DOM, once per animation frame.

import { AlertFeed } from './alerts.js';
import { createQueryApi } from './api.js';
import { PriceChart } from './chart.js';
import { forgetApiKey, loadConfig, saveApiKey, takeApiKey } from './config.js';
import { LiveFeed } from './live.js';
import { RulesPanel } from './rules.js';
import { QuoteTiles } from './tiles.js';

// GET /quotes again now and then: the socket only sends symbols it was subscribed to, so a symbol
// the pipeline starts to see later is found here (sooner while there is none at all).
const SYMBOLS_REFRESH_MS = 30_000;
const FIRST_SYMBOLS_REFRESH_MS = 5_000;

const page = {
  dashboard: document.querySelector('[data-dashboard]'),
  pageError: document.querySelector('[data-role="page-error"]'),
  keyPanel: document.querySelector('[data-key-panel]'),
  keyError: document.querySelector('[data-role="key-error"]'),
  keyForm: document.querySelector('[data-key-form]'),
  changeKey: document.querySelector('[data-change-key]'),
  connection: document.querySelector('[data-connection]'),
  connectionText: document.querySelector('[data-connection-text]'),
};

async function start() {
  wireKeyControls();
  const key = takeApiKey(); // first: a key in the link leaves the address bar whatever happens next
  let config;
  try {
    config = await loadConfig();
  } catch (error) {
    showPageError(`${error.message} The page needs it to find the APIs.`);
    return;
  }
  if (!key) {
    askForKey();
    return;
  }
  page.changeKey.hidden = false;

  const api = createQueryApi(config.queryApiUrl, key);
  // The key is checked here, over REST: a refused WebSocket handshake does not tell the browser why.
  let quotes;
  try {
    ({ quotes } = await api.quotes());
  } catch (error) {
    if (error.isKeyRefusal) {
      const status = error.status ? ` (${error.status})` : '';
      askForKey(`The API key was refused${status}. Check it with \`tickwatch api-key\`.`);
    } else {
      showPageError(`${error.message} Reload the page to try again.`);
    }
    return;
  }
  page.dashboard.hidden = false;
  runDashboard(config, key, api, quotes);
}

function runDashboard(config, key, api, quotes) {
  const chart = new PriceChart(document.querySelector('.chart-panel'), api);
  const rules = new RulesPanel(document.querySelector('.rules-panel'), api);
  const alerts = new AlertFeed(document.querySelector('[data-alerts]'), document.querySelector('[data-alerts-message]'));
  const tiles = new QuoteTiles(document.querySelector('[data-tiles]'), select);
  let selected = null;

  function select(symbol) {
    selected = symbol;
    tiles.select(symbol);
    chart.show(symbol);
  }

  const live = new LiveFeed({
    url: config.liveApiUrl,
    key,
    onMessage(message) {
      if (message.type === 'update') {
        tiles.receive(message.quotes ?? []);
        chart.receive(message.bars ?? []);
        if (alerts.receive(message.alerts ?? [])) rules.refreshSoon();
      } else if (message.type === 'error') {
        console.warn(`live API: ${message.message}${message.field ? ` (${message.field})` : ''}`);
      }
    },
    onState({ state, text }) {
      page.connection.dataset.state = state;
      page.connectionText.textContent = text;
    },
    onOpen({ reconnected }) {
      // Whatever happened while the socket was down is read again.
      if (reconnected) {
        loadQuotes();
        loadAlerts();
        chart.reload();
        rules.refreshSoon();
      }
    },
  });

  function showQuotes(latest) {
    tiles.receive(latest);
    live.subscribe(latest.map((quote) => quote.symbol));
    if (!selected && latest.length) select(latest[0].symbol);
  }

  async function loadQuotes() {
    try {
      showQuotes((await api.quotes()).quotes);
    } catch (error) {
      console.warn(`quotes: ${error.message}`);
    }
  }

  async function refreshSymbols() {
    await loadQuotes();
    setTimeout(refreshSymbols, selected ? SYMBOLS_REFRESH_MS : FIRST_SYMBOLS_REFRESH_MS);
  }

  async function loadAlerts() {
    try {
      alerts.showHistory((await api.alerts({ limit: 50 })).alerts);
    } catch (error) {
      alerts.showError(`Could not load the alerts: ${error.message}`);
    }
  }

  showQuotes(quotes);
  live.start();
  setTimeout(refreshSymbols, quotes.length ? SYMBOLS_REFRESH_MS : FIRST_SYMBOLS_REFRESH_MS);
  loadAlerts();
  rules.refresh();
}

function wireKeyControls() {
  page.keyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const key = new FormData(page.keyForm).get('key').trim();
    if (!key) return;
    saveApiKey(key);
    // A fresh start with the new key: no socket, chart or timer of the old one lingers.
    location.reload();
  });
  page.changeKey.addEventListener('click', () => {
    forgetApiKey();
    location.reload();
  });
}

function askForKey(problem) {
  page.keyPanel.hidden = false;
  page.keyError.hidden = !problem;
  page.keyError.replaceChildren(...withCode(problem ?? ''));
  page.keyForm.elements.namedItem('key').focus();
}

/** Text nodes, with `backquoted` parts as <code> elements. */
function withCode(text) {
  return text.split('`').map((part, index) => {
    if (index % 2 === 0) return part;
    const code = document.createElement('code');
    code.textContent = part;
    return code;
  });
}

function showPageError(text) {
  page.pageError.textContent = text;
  page.pageError.hidden = false;
}

start();
