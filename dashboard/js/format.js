// How numbers and times are written on the page. Times are shown in UTC, like the chart's axis.

const volumeFormat = new Intl.NumberFormat('en-US');
const compactVolumeFormat = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/** Digits after the decimal point of a number's text: "187.420" -> 3. */
export function decimalsOf(text) {
  const point = text.indexOf('.');
  return point < 0 ? 0 : text.length - point - 1;
}

export function formatVolume(volume) {
  return volume == null ? '—' : volume >= 1e7 ? compactVolumeFormat.format(volume) : volumeFormat.format(volume);
}

/** "+0.18%" from the API's change_pct; two decimals are what a glance needs (the API keeps four). */
export function formatPercent(percent) {
  if (percent == null) return '—';
  const sign = percent > 0 ? '+' : percent < 0 ? '−' : '';
  return `${sign}${Math.abs(percent).toFixed(2)}%`;
}

/** "+0.42" / "−0.42" from the change's exact text. */
export function formatSignedText(text) {
  if (text == null) return '—';
  if (text.startsWith('-')) return `−${text.slice(1)}`;
  return Number(text) === 0 ? text : `+${text}`;
}

/** "14:30:05" (UTC) of an RFC 3339 time. */
export function formatUtcTime(rfc3339) {
  return new Date(rfc3339).toISOString().slice(11, 19);
}

/** "11-30 14:30" (UTC), for times that may be on another day. */
export function formatUtcDateTime(rfc3339) {
  return new Date(rfc3339).toISOString().slice(5, 16).replace('T', ' ');
}

/** "90s" -> "1m30s": the duration form the API takes back as a cooldown. */
export function formatDuration(seconds) {
  const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  let rest = seconds;
  let text = '';
  for (const [unit, length] of units) {
    if (rest >= length) {
      text += `${Math.floor(rest / length)}${unit}`;
      rest %= length;
    }
  }
  return text || '0s';
}
