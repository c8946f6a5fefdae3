// Where the APIs are (config.json, written by whoever serves the page) and the user's API key
// (never in config.json: it comes from the user, once, and stays in this browser).

const KEY_STORAGE_ITEM = 'tickwatch.apiKey';

/** {queryApiUrl, liveApiUrl} from config.json next to the page. */
export async function loadConfig() {
  const response = await fetch('config.json', { cache: 'no-store' });
  if (!response.ok) throw new Error(`config.json could not be read (HTTP ${response.status}).`);
  const config = await response.json();
  for (const name of ['queryApiUrl', 'liveApiUrl']) {
    if (typeof config[name] !== 'string' || !config[name]) throw new Error(`config.json has no ${name}.`);
  }
  return { queryApiUrl: config.queryApiUrl.replace(/\/+$/, ''), liveApiUrl: config.liveApiUrl };
}

/**
 * The API key: from a `#key=...` link (saved, then taken out of the address bar so it is not left
 * on screen or in the history), else the one saved earlier; null when there is none.
 */
export function takeApiKey() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const linkedKey = fragment.get('key');
  if (linkedKey) {
    saveApiKey(linkedKey);
    fragment.delete('key');
    const rest = fragment.toString();
    history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
    return linkedKey;
  }
  return localStorage.getItem(KEY_STORAGE_ITEM);
}

export function saveApiKey(key) {
  localStorage.setItem(KEY_STORAGE_ITEM, key);
}

export function forgetApiKey() {
  localStorage.removeItem(KEY_STORAGE_ITEM);
}
