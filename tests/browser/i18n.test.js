'use strict';
// Both languages: de.json and en.json have the same keys (none empty), every key the UI's
// code names exists, every page (and the user form) loads in German and in English with no
// untranslated key visible, the browser's language is the default, and screenshots of every
// page in both languages (1280x800) and on a phone-sized window go to the artifacts directory.
const fs = require('fs');
const path = require('path');
const H = require('./lib/harness');
const { check, log, uiLogin, setLanguage } = H;

const WEB = path.join(H.SOURCE_DIR, 'web');
const PAGES = ['dashboard', 'users', 'groups', 'trunk', 'calls', 'presence', 'federation'];
// Something every page shows once its data is there.
const READY = {
  dashboard: '.card[data-card=trunk]', users: 'tr[data-ext]', groups: 'tr[data-number]',
  trunk: '[data-testid=trunk-status]', calls: '[data-testid=call-filters]', presence: '.tile[data-state]',
  federation: '.content .intro',
};

function keySets() {
  const de = JSON.parse(fs.readFileSync(path.join(WEB, 'i18n', 'de.json'), 'utf8'));
  const en = JSON.parse(fs.readFileSync(path.join(WEB, 'i18n', 'en.json'), 'utf8'));
  const onlyDe = Object.keys(de).filter((k) => !(k in en));
  const onlyEn = Object.keys(en).filter((k) => !(k in de));
  check(!onlyDe.length && !onlyEn.length, `key sets differ: only in de.json: ${onlyDe.join(', ') || '-'}; only in en.json: ${onlyEn.join(', ') || '-'}`);
  for (const [lang, m] of [['de', de], ['en', en]])
    for (const [k, v] of Object.entries(m)) check(typeof v === 'string' && v.trim(), `${lang}.json: empty text for ${k}`);
  // Placeholders must match: "{name}" in one language and not in the other is a bug.
  for (const k of Object.keys(en)) {
    const ph = (s) => (s.match(/\{\w+\}/g) || []).sort().join(',');
    check(ph(en[k]) === ph(de[k]), `placeholders of ${k} differ: en "${en[k]}" / de "${de[k]}"`);
  }
  // Every literal key of the code exists.
  const used = new Set();
  const walk = (d) => {
    for (const f of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, f.name);
      if (f.isDirectory()) walk(p);
      else if (f.name.endsWith('.js')) {
        const s = fs.readFileSync(p, 'utf8');
        for (const m of s.matchAll(/\bt\('([a-z][\w.-]*\.[\w.-]+)'/g)) used.add(m[1]);
        for (const m of s.matchAll(/key: '([a-z][\w.-]*\.[\w.-]+)'/g)) used.add(m[1]);
      }
    }
  };
  walk(path.join(WEB, 'js'));
  const missing = [...used].filter((k) => !(k in en));
  check(!missing.length, `keys used in web/js but in no translation: ${missing.join(', ')}`);
  log(`i18n: de.json and en.json have the same ${Object.keys(en).length} keys; the code uses ${used.size} literal keys, all present`);
  return new Set(Object.keys(en));
}

// Text and labelling attributes of the page that look like one of our keys.
async function rawKeys(page, keys) {
  const texts = await page.evaluate(() => {
    const out = [document.title, document.body.innerText];
    for (const e of document.querySelectorAll('[placeholder], [aria-label], [title], [alt]'))
      for (const a of ['placeholder', 'aria-label', 'title', 'alt']) if (e.getAttribute(a)) out.push(e.getAttribute(a));
    return out.join('\n');
  });
  const found = new Set();
  for (const m of texts.matchAll(/[a-z][\w-]*(\.[\w-]+)+/g)) if (keys.has(m[0])) found.add(m[0]);
  return [...found];
}

H.main('i18n', async (h) => {
  const keys = keySets();
  const node = await h.startNode({ name: 'berlin' });
  for (const [e, n] of [['201', 'Anna Berger'], ['202', 'Bernd Köhler'], ['203', 'Carla Diaz']]) await node.api.createUser(e, `pw-${e}-Secret`, n);
  await node.api.call('POST', '/api/v1/groups', { number: '600', name: 'Vertrieb', members: ['201', '202'] });

  // The browser's language is the default: a German browser gets German.
  const { ctx, page } = await h.browser({ locale: 'de-DE' });
  await page.goto(`${node.base}/`);
  await page.waitForSelector('.login-form');
  const lang0 = await page.evaluate(() => document.documentElement.lang);
  check(lang0 === 'de', `German browser: UI language ${lang0}, expected de`);
  log('default language from navigator.languages: de');
  const shots = [];
  for (const lang of ['de', 'en']) {
    await setLanguage(page, lang);
    check(!(await rawKeys(page, keys)).length, `login page (${lang}) shows raw keys`);
    shots.push(await h.screenshot(page, `${lang}-login`));
  }
  await uiLogin(page, node);
  for (const lang of ['de', 'en']) {
    await setLanguage(page, lang);
    for (const p of PAGES) {
      await page.click(`a[data-page=${p}]`);
      await page.waitForSelector(`a[data-page=${p}][aria-current=page]`);
      await page.waitForSelector(READY[p]);
      await page.waitForTimeout(300); // pollers fill in their first answer
      const raw = await rawKeys(page, keys);
      check(!raw.length, `page ${p} (${lang}) shows untranslated keys: ${raw.join(', ')}`);
      const lang1 = await page.evaluate(() => document.documentElement.lang);
      check(lang1 === lang, `page ${p}: html lang ${lang1}, expected ${lang}`);
      shots.push(await h.screenshot(page, `${lang}-${p}`));
      if (p === 'users') {
        // The user form with its call forwarding section.
        await page.click('tr[data-ext="201"] button.secondary');
        await page.waitForSelector('[data-testid=user-form] [data-testid=user-features]');
        const rawForm = await rawKeys(page, keys);
        check(!rawForm.length, `user form (${lang}) shows untranslated keys: ${rawForm.join(', ')}`);
        shots.push(await h.screenshot(page, `${lang}-users-edit`));
        await page.click('[data-testid=user-form] .actions button.secondary');
      }
    }
    log(`${lang}: all ${PAGES.length} pages loaded, no untranslated key`);
  }
  // The choice sticks across a reload.
  await page.reload();
  await page.waitForSelector('.topbar');
  check(await page.evaluate(() => document.documentElement.lang) === 'en', 'language choice lost on reload');

  // Phone-sized window: every page in German.
  await page.setViewportSize({ width: 390, height: 844 });
  await setLanguage(page, 'de');
  for (const p of PAGES) {
    await page.click(`a[data-page=${p}]`);
    await page.waitForSelector(READY[p]);
    await page.waitForTimeout(200);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `phone-sized window: page ${p} is ${overflow}px wider than the window`);
    shots.push(await h.screenshot(page, `phone-de-${p}`));
  }
  log('phone-sized window (390x844): every page fits the width');
  // Keyboard: the navigation is reachable with Tab and shows a focus ring.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.keyboard.press('Tab');
  const focusVisible = await page.evaluate(() => {
    const e = document.activeElement;
    return e && getComputedStyle(e).outlineStyle !== 'none' ? e.textContent : null;
  });
  check(focusVisible, 'first Tab: no visible focus');
  const missing = page.consoleErrors.filter((e) => /i18n: missing/.test(e));
  check(!missing.length, `missing translations reported by the UI:\n${missing.join('\n')}`);
  log(`${shots.length} screenshots written to ${h.artifacts}`);
  void ctx;
});
