// The rules panel: the list from GET /rules with a remove button per rule, and the form that adds
// one with POST /rules. The API validates; its 422 names the field, and the message goes there.

import { formatDuration, formatUtcDateTime } from './format.js';

const FORM_FIELDS = ['symbol', 'direction', 'threshold', 'cooldown', 'rearm', 'for'];
const MIN_REFRESH_GAP_MS = 2000;

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
    const level = values.get('threshold').trim();
    const rule = {
      symbol: values.get('symbol').trim().toUpperCase(),
      direction: values.get('direction'),
    };
    // "3%" is a change on the day; a number is a price, sent as a string so its digits stay exact.
    if (level.endsWith('%')) rule.change = level;
    else rule.threshold = level;
    const cooldown = values.get('cooldown').trim();
    // The API takes seconds as a number and durations ("15m") as text.
    if (cooldown) rule.cooldown = /^\d+$/.test(cooldown) ? Number(cooldown) : cooldown;
    const rearm = values.get('rearm').trim();
    if (rearm) rule.rearm = rearm.endsWith('%') ? rearm : `${rearm}%`;
    const lasts = values.get('for').trim();
    if (lasts) rule.for = lasts;
    if (values.get('once')) rule.once = true;
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
    // One input takes a price (threshold) or a percentage (change).
    const field = error.field === 'change' ? 'threshold' : error.field;
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

  #showMessage(text) {
    this.#message.textContent = text;
    this.#message.hidden = !text;
  }

  #ruleRow(rule) {
    const row = document.createElement('li');
    row.className = 'rule';
    row.dataset.ruleId = rule.rule_id;
    row.dataset.direction = rule.direction;

    const span = (className, text) => {
      const element = document.createElement('span');
      element.className = className;
      element.textContent = text;
      return element;
    };
    const firedAt = rule.last_fired_at ? formatUtcDateTime(rule.last_fired_at) : null;
    // ended (a one-shot rule that fired) and expired say more than armed or not.
    const state = {
      ended: `ended ${firedAt ?? ''}`.trim(),
      expired: 'expired',
      armed: 'armed',
      disarmed: firedAt ? `fired ${firedAt}` : 'not armed',
    }[rule.status];
    const details = [rule.cooldown_seconds ? `cooldown ${formatDuration(rule.cooldown_seconds)}` : 'no cooldown'];
    if (rule.rearm) details.push(`re-arm ${rule.rearm}`);
    if (rule.once && rule.status !== 'ended') details.push('once');
    if (rule.expires_at && rule.status !== 'expired') details.push(`until ${formatUtcDateTime(rule.expires_at)}`);
    if (rule.hours) {
      const days = rule.hours.weekdays ? ' weekdays' : '';
      details.push(`${rule.hours.start}–${rule.hours.end} ${rule.hours.tz}${days}`);
    }
    if (rule.status === 'armed' && firedAt) details.push(`last fired ${firedAt}`);

    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'rule-remove';
    remove.textContent = 'Remove';
    remove.setAttribute('aria-label', `Remove rule ${rule.rule_id}`);
    remove.addEventListener('click', () => this.#remove(rule, remove));

    row.append(
      span('rule-symbol', rule.symbol),
      span('rule-condition', rule.kind === 'change' ? `${rule.direction} ${rule.change}/day` : `${rule.direction} ${rule.threshold}`),
      span(`rule-state rule-${rule.status === 'armed' ? 'armed' : 'fired'}`, state),
      span('rule-details', details.join(' · ')),
      remove,
    );
    return row;
  }
}
