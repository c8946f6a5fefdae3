// JSON parsing that keeps prices as the API wrote them.
//
// The API writes prices digit for digit ("510.0", "190.50"); JSON.parse would make them 510 and
// 190.5. For the fields below the page keeps the source text instead, so a tile shows exactly what
// the API said. They are strings from here on: Number() them for arithmetic.

const DECIMAL_TEXT_FIELDS = new Set([
  'price', 'bid', 'ask', 'day_open', 'day_high', 'day_low', 'change', 'threshold', 'reference',
]);

/** JSON.parse, with the price fields as their source text. */
export function parseExactJson(text) {
  return JSON.parse(text, keepDecimalText);
}

// `context.source` is the number's text in the JSON (Chromium 114+, Firefox 135+, Safari 18.4+);
// elsewhere String(value), which loses only trailing zeros.
function keepDecimalText(key, value, context) {
  if (typeof value !== 'number' || !DECIMAL_TEXT_FIELDS.has(key)) return value;
  return context?.source ?? String(value);
}
