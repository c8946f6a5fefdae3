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

// Exact decimal arithmetic on the API's number texts (BigInt), for the few numbers the page derives
// from prices: rounded half to even, as the alert e-mails' Python Decimals are.

/** "130.1234567" -> "130.1235" (places 4): rounded, without trailing zeros, as the e-mails write it. */
export function roundDecimal(text, places) {
  const value = parseDecimal(text);
  if (!value) return text ?? '—';
  const rounded = divideHalfEven(value.units * 10n ** BigInt(places), 10n ** BigInt(value.scale));
  const fixed = scaledText(rounded, places);
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

/** The move from one price to another in percent of the first, unsigned, 2 decimals: "2.10". */
export function percentBetween(fromText, toText) {
  const from = parseDecimal(fromText);
  const to = parseDecimal(toText);
  if (!from || !to || from.units === 0n) return '—';
  const scale = Math.max(from.scale, to.scale);
  const widen = ({ units, scale: own }) => units * 10n ** BigInt(scale - own);
  const difference = widen(to) - widen(from);
  const size = difference < 0n ? -difference : difference;
  const base = widen(from) < 0n ? -widen(from) : widen(from);
  return scaledText(divideHalfEven(size * 100n * 100n, base), 2);
}

/** A JSON number's text as {units, scale}, its value units / 10^scale: "130.25" -> {13025n, 2}, "1.5E+2" -> {150n, 0}. */
function parseDecimal(text) {
  const found = /^([+-]?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(String(text ?? '').trim());
  if (!found) return null;
  const [, sign, whole, fraction = '', exponent = '0'] = found;
  let units = BigInt(whole + fraction);
  let scale = fraction.length - Number(exponent);
  if (scale < 0) {
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { units: sign === '-' ? -units : units, scale };
}

/** numerator / denominator (> 0), rounded to the nearest integer, ties to even. */
function divideHalfEven(numerator, denominator) {
  const negative = numerator < 0n;
  const size = negative ? -numerator : numerator;
  let quotient = size / denominator;
  const twice = 2n * (size % denominator);
  if (twice > denominator || (twice === denominator && quotient % 2n === 1n)) quotient += 1n;
  return negative ? -quotient : quotient;
}

/** 21n, 2 -> "0.21": an integer count of 10^-places as text with `places` decimals. */
function scaledText(units, places) {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(places + 1, '0');
  const whole = places ? `${digits.slice(0, -places)}.${digits.slice(-places)}` : digits;
  return negative ? `-${whole}` : whole;
}
