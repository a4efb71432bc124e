// Translations: web/i18n/<lang>.json hold flat "dotted.key": "text" maps with the same keys.
// The language comes from the visible switch (remembered in localStorage), else from the
// browser's navigator.languages, else English.
export const LANGUAGES = ['de', 'en'];
const STORE_KEY = 'verbund.lang';
let lang = 'en';
let strings = {};
const listeners = [];

function fromBrowser() {
  for (const l of navigator.languages || [navigator.language || 'en']) {
    const base = String(l).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

async function load(l) {
  const res = await fetch(`/i18n/${l}.json`, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`i18n ${l}: HTTP ${res.status}`);
  return res.json();
}

export async function initI18n() {
  let l = null;
  try { l = localStorage.getItem(STORE_KEY); } catch { /* storage may be off */ }
  if (!LANGUAGES.includes(l)) l = fromBrowser();
  await setLanguage(l, false);
}

export async function setLanguage(l, remember = true) {
  if (!LANGUAGES.includes(l)) return;
  strings = await load(l);
  lang = l;
  document.documentElement.lang = l;
  if (remember) {
    try { localStorage.setItem(STORE_KEY, l); } catch { /* ignore */ }
  }
  for (const f of listeners) f(l);
}

export function onLanguageChange(f) { listeners.push(f); }
export function language() { return lang; }
export function has(key) { return Object.prototype.hasOwnProperty.call(strings, key); }

// t('users.deleted', {name: 'Anna'}): "{name}" placeholders are replaced. A missing key shows
// as the key itself (the browser tests look for exactly that) and is reported on the console.
export function t(key, params) {
  let s = strings[key];
  if (s === undefined) {
    console.warn(`i18n: missing key ${key} (${lang})`);
    return key;
  }
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (params[k] !== undefined ? String(params[k]) : m));
  return s;
}

export function formatDateTime(ms) {
  if (!ms) return '–';
  return new Intl.DateTimeFormat(lang === 'de' ? 'de-DE' : 'en-GB', {
    dateStyle: 'short', timeStyle: 'medium',
  }).format(new Date(ms));
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return '–';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (n) => String(n).padStart(2, '0');
  return h ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
}
