// The rules panel: the list from GET /rules with a remove button per rule, and the form that adds
// one with POST /rules. The API validates; its 422 names the field, and the message goes there.

import { formatDuration, formatUtcDateTime } from './format.js';

const FORM_FIELDS = [
  'symbol', 'direction', 'threshold', 'within', 'cooldown', 'rearm', 'for', 'hours', 'tz', 'weekdays', 'holidays',
];
// The API's field -> the form's: one input takes every kind's level, and the form's expiry is `for`.
const FIELD_OF = { change: 'threshold', move: 'threshold', cross: 'threshold', expires: 'for' };
const MIN_REFRESH_GAP_MS = 2000;

// What the form asks for each kind of rule. The direction's values stay above/below; a move reads
// up/down, as its rule does.
const KINDS = {
  price: { directionLabel: 'Crosses', directions: ['above', 'below'], levelLabel: 'Price', placeholder: '190.50 or 3%' },
  change: { directionLabel: 'Change on the day', directions: ['above', 'below'], levelLabel: 'Change', placeholder: '3% or -2%' },
  move: { directionLabel: 'Moves', directions: ['up', 'down'], levelLabel: 'By', placeholder: '2%' },
  cross: { directionLabel: 'Crosses', directions: ['above', 'below'], levelLabel: 'Moving average', placeholder: 'sma:20@1m' },
};

export class RulesPanel {
  #api;
  #form;
  #formError;
  #list;
  #message;
  #reads = 0; // GET /rules sent
  #shownRead = 0; // the one whose answer the list shows
  #lastRefresh = 0;
  #refreshTimer = 0;

  constructor(panel, api) {
    this.#api = api;
    this.#form = panel.querySelector('[data-rules-form]');
    this.#formError = this.#form.querySelector('[data-role="form-error"]');
    this.#list = panel.querySelector('[data-rules]');
    this.#message = panel.querySelector('[data-rules-message]');
    this.#form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#add();
    });
    this.#form.elements.namedItem('kind').addEventListener('change', () => {
      this.#clearErrors();
      this.#showKind();
    });
    // After the reset itself: the event comes before the fields change.
    this.#form.addEventListener('reset', () => setTimeout(() => this.#showKind()));
    this.#offerTimeZones();
    this.#showKind();
  }

  /** Reads the rules again; when reads overlap, the answer to the latest one is what shows. */
  async refresh() {
    const read = ++this.#reads;
    this.#lastRefresh = performance.now();
    try {
      const { rules } = await this.#api.rules();
      if (read < this.#shownRead) return;
      this.#shownRead = read;
      this.#list.replaceChildren(...rules.map((rule) => this.#ruleRow(rule)));
      this.#showMessage(rules.length ? '' : 'No rules yet: add one above.');
    } catch (error) {
      if (read >= this.#shownRead) this.#showMessage(`Could not load the rules: ${error.message}`);
    }
  }

  /** A refresh, at most every MIN_REFRESH_GAP_MS: alerts change a rule's state, and may come in bursts. */
  refreshSoon() {
    const wait = Math.max(0, this.#lastRefresh + MIN_REFRESH_GAP_MS - performance.now());
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = setTimeout(() => this.refresh(), wait);
  }

  async #add() {
    this.#clearErrors();
    const values = new FormData(this.#form);
    const text = (name) => (values.get(name) ?? '').trim();
    const rule = {
      symbol: text('symbol').toUpperCase(),
      direction: values.get('direction'),
      ...levelOf(values.get('kind'), text('threshold'), text('within')),
    };
    const cooldown = text('cooldown');
    // The API takes seconds as a number and durations ("15m") as text.
    if (cooldown) rule.cooldown = /^\d+$/.test(cooldown) ? Number(cooldown) : cooldown;
    const rearm = text('rearm');
    if (rearm) rule.rearm = withPercent(rearm);
    const lasts = text('for');
    if (lasts) rule.for = lasts;
    if (values.get('once')) rule.once = true;
    // "09:30 – 16:00" is read as 09:30-16:00. The zone goes only with hours: the API refuses it alone.
    const hours = text('hours').replace(/\s+/g, '').replace(/[\u2013\u2014]/g, '-');
    if (hours) {
      rule.hours = hours;
      if (text('tz')) rule.tz = text('tz');
    }
    // Sent even without hours, so the API's answer says what is missing.
    if (values.get('weekdays')) rule.weekdays = true;
    if (text('holidays')) rule.holidays = text('holidays').toUpperCase();
    const submit = this.#form.querySelector('[type="submit"]');
    submit.disabled = true;
    try {
      await this.#api.addRule(rule);
      this.#form.reset();
      await this.refresh();
    } catch (error) {
      this.#showError(error);
    } finally {
      submit.disabled = false;
    }
  }

  async #remove(rule, button) {
    button.disabled = true;
    try {
      await this.#api.deleteRule(rule.rule_id);
    } catch (error) {
      // 404: someone else removed it; the refresh below shows the list as it is.
      if (error.status !== 404) this.#showMessage(`Could not remove ${rule.rule_id}: ${error.message}`);
    }
    await this.refresh();
  }

  #showError(error) {
    const field = FIELD_OF[error.field] ?? error.field;
    const fieldError = FORM_FIELDS.includes(field) && this.#form.querySelector(`[data-error-for="${field}"]`);
    if (fieldError) {
      fieldError.textContent = error.message;
      const input = this.#form.elements.namedItem(field);
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    this.#formError.textContent = error.message;
    this.#formError.hidden = false;
  }

  #clearErrors() {
    for (const name of FORM_FIELDS) {
      this.#form.querySelector(`[data-error-for="${name}"]`).textContent = '';
      this.#form.elements.namedItem(name).removeAttribute('aria-invalid');
    }
    this.#formError.textContent = '';
    this.#formError.hidden = true;
  }

  /** The level field's label and hint, the direction's words and the Within field for the kind chosen. */
  #showKind() {
    const fields = this.#form.elements;
    const kind = fields.namedItem('kind').value;
    const shown = KINDS[kind];
    this.#form.dataset.kind = kind;
    this.#form.querySelector('[data-direction-label]').textContent = shown.directionLabel;
    [...fields.namedItem('direction').options].forEach((option, index) => {
      option.textContent = shown.directions[index];
    });
    this.#form.querySelector('[data-level-label]').textContent = shown.levelLabel;
    const level = fields.namedItem('threshold');
    level.placeholder = shown.placeholder;
    level.inputMode = kind === 'cross' ? 'text' : 'decimal';
    if (kind === 'cross') level.setAttribute('list', 'rule-averages');
    else level.removeAttribute('list');
    this.#form.querySelector('.field-within').hidden = kind !== 'move';
  }

  // The zone defaults to the browser's: hours are wall-clock times, and the ones a user types are
  // most likely their own; the field shows it, so it is never a surprise, and any zone can be typed.
  #offerTimeZones() {
    const zone = this.#form.elements.namedItem('tz');
    const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (own) zone.defaultValue = own;
    const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    this.#form.querySelector('#rule-zones').replaceChildren(
      ...['UTC', ...zones.filter((name) => name !== 'UTC')].map((name) => new Option(name)),
    );
  }

  #showMessage(text) {
    this.#message.textContent = text;
    this.#message.hidden = !text;
  }

  #ruleRow(rule) {
    const row = document.createElement('li');
    row.className = 'rule';
    row.dataset.ruleId = rule.rule_id;
    row.dataset.kind = rule.kind;
    row.dataset.direction = rule.direction;

    const span = (className, text) => {
      const element = document.createElement('span');
      element.className = className;
      element.textContent = text;
      return element;
    };
    const firedAt = rule.last_fired_at ? formatUtcDateTime(rule.last_fired_at) : null;
    // ended (a one-shot rule that fired) and expired say more than armed or not.
    const state = span(`rule-state rule-${rule.status === 'armed' ? 'armed' : 'fired'}`, {
      ended: `ended ${firedAt ?? ''}`.trim(),
      expired: 'expired',
      armed: 'armed',
      disarmed: firedAt ? `fired ${firedAt}` : 'not armed',
    }[rule.status]);
    if (rule.kind === 'cross' && rule.status === 'disarmed' && !firedAt) {
      state.title = `It arms once the price has been ${rule.direction === 'above' ? 'below' : 'above'} ${rule.cross}`;
    }
    const details = [rule.cooldown_seconds ? `cooldown ${formatDuration(rule.cooldown_seconds)}` : 'no cooldown'];
    if (rule.rearm) details.push(`re-arm ${rule.rearm}`);
    if (rule.once && rule.status !== 'ended') details.push('once');
    if (rule.expires_at && rule.status !== 'expired') details.push(`until ${formatUtcDateTime(rule.expires_at)}`);
    if (rule.hours) {
      const days = rule.hours.weekdays ? ', weekdays' : '';
      const closed = rule.hours.holidays ? `, not on ${rule.hours.holidays} holidays` : '';
      details.push(`${rule.hours.start}–${rule.hours.end} ${rule.hours.tz}${days}${closed}`);
    }
    if (rule.status === 'armed' && firedAt) details.push(`last fired ${firedAt}`);

    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'rule-remove';
    remove.textContent = 'Remove';
    remove.setAttribute('aria-label', `Remove rule ${rule.rule_id}`);
    remove.addEventListener('click', () => this.#remove(rule, remove));

    // Each detail stays whole; a line breaks only after a separator.
    const about = document.createElement('p');
    about.className = 'rule-details';
    about.append(state, ...details.flatMap((detail) => ['\u00a0· ', span('rule-detail', detail)]));
    row.append(span('rule-symbol', rule.symbol), span('rule-condition', conditionText(rule)), remove, about);
    return row;
  }
}

/** The request's level fields for the kind chosen, from the level (and Within) fields' text. */
function levelOf(kind, level, within) {
  switch (kind) {
    case 'change':
      return { change: withPercent(level) };
    case 'move':
      // "15" is taken as minutes, the unit a window is counted in.
      return { move: withPercent(level), ...(within && { within: /^\d+$/.test(within) ? `${within}m` : within }) };
    case 'cross':
      return { cross: level };
    default:
      // "3%" is a change on the day; a number is a price, sent as a string so its digits stay exact.
      return level.endsWith('%') ? { change: level } : { threshold: level };
  }
}

/** "0.5" -> "0.5%"; an empty field stays empty, so the API names it. */
function withPercent(text) {
  return !text || text.endsWith('%') ? text : `${text}%`;
}

/** A rule's condition in words: "above 190.5", "above +3%/day", "up 2% within 15m", "crosses above sma:20@1m". */
function conditionText(rule) {
  switch (rule.kind) {
    case 'change':
      return `${rule.direction} ${rule.change}/day`;
    case 'move':
      return `${rule.direction === 'above' ? 'up' : 'down'} ${rule.move} within ${rule.within}`;
    case 'cross':
      return `crosses ${rule.direction} ${rule.cross}`;
    default:
      return `${rule.direction} ${rule.threshold}`;
  }
}
