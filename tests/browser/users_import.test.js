'use strict';
// CSV import on the users page (issue 14): the import panel names the documented columns in
// German and in English; in German a file with one bad row (row 4) is checked: the UI names row
// 4 with its field and reason, Import stays disabled and the node's user count is unchanged; a
// file that is not UTF-8 and one over 16 MiB get a clear message and are not sent; in English
// the corrected file checks clean ("3 users valid"), imports ("3 users imported") and the users
// appear in the list. The file goes to the node as it is (text/csv) and is read by the node's
// CSV codec, the same as `verbund user import`.
const fs = require('fs');
const path = require('path');
const H = require('./lib/harness');
const { check, waitFor, log, uiLogin, setLanguage } = H;

const I18N = {};
for (const l of ['de', 'en']) I18N[l] = JSON.parse(fs.readFileSync(path.join(H.SOURCE_DIR, 'web', 'i18n', `${l}.json`), 'utf8'));
const tr = (lang, key, vars = {}) => I18N[lang][key].replace(/\{(\w+)\}/g, (_, k) => String(vars[k]));

const COLUMNS = ['extension', 'displayName', 'sipPassword', 'sipUser', 'externalNumber', 'language', 'shared'];
const HEADER = 'extension,displayName,sipUser,sipPassword,externalNumber,language,shared\r\n';
const rows = (third) => HEADER +
  '201,Anna Alt,,secret-pw-201,,de,\r\n' +
  '202,"Bau, Bernd",,secret-pw-202,+4930123202,en,true\r\n' +
  `${third},Carla Chor,,secret-pw-203,,de,no\r\n`;
const P = '[data-testid=user-import]';

async function userCount(node) {
  return ((await node.api.call('GET', '/api/v1/users')).users || []).length;
}

async function openImport(page) {
  await page.click('a[data-page=users]');
  await page.waitForSelector('tr[data-ext]');
  await page.click('[data-testid=user-import-open]');
  await page.waitForSelector(`${P} [data-testid=import-file]`);
}

async function checkFile(page, file) {
  await page.setInputFiles(`${P} [data-testid=import-file]`, file);
  await page.click(`${P} [data-testid=import-check]`);
}

H.main('users_import', async (h) => {
  const node = await h.startNode({ name: 'import' });
  await node.api.createUser('150', 'existing-pw-150', 'Existing');
  const dir = path.join(h.tmp, 'csv');
  fs.mkdirSync(dir);
  const write = (name, data) => { const f = path.join(dir, name); fs.writeFileSync(f, data); return f; };
  const badFile = write('users-bad.csv', rows('12a'));
  const goodFile = write('users.csv', rows('203'));
  const latin1File = write('users-latin1.csv', Buffer.from(`${HEADER}201,M\xfcller,,secret-pw-201,,de,\r\n`, 'latin1'));
  const hugeFile = write('users-huge.csv', Buffer.alloc(16 * 1024 * 1024 + 1, 0x41));

  const { page } = await h.browser();
  await uiLogin(page, node);

  // Both languages: the action, the panel and the documented columns.
  for (const lang of ['en', 'de']) {
    await setLanguage(page, lang);
    await openImport(page);
    const open = (await page.textContent('[data-testid=user-import-open]')).trim();
    check(open === I18N[lang]['users.import.open'], `${lang}: the import button says "${open}"`);
    const title = (await page.textContent(`${P} h2`)).trim();
    check(title === I18N[lang]['users.import.title'], `${lang}: the panel title is "${title}"`);
    for (const [id, key] of [['import-check', 'users.import.check'], ['import-submit', 'users.import.submit']]) {
      const label = (await page.textContent(`${P} [data-testid=${id}]`)).trim();
      check(label === I18N[lang][key], `${lang}: ${id} says "${label}"`);
    }
    const cols = await page.$$eval(`${P} [data-testid=import-columns] dt code`, (es) => es.map((e) => e.textContent));
    check(JSON.stringify(cols) === JSON.stringify(COLUMNS), `${lang}: documented columns ${cols}`);
    const dd = await page.textContent(`${P} [data-testid=import-columns] dd`);
    check(dd.trim() === I18N[lang]['users.import.col.extension'], `${lang}: extension column text "${dd}"`);
    check(await page.isDisabled(`${P} [data-testid=import-submit]`), `${lang}: Import enabled before a check`);
    await h.screenshot(page, `${lang}-users-import`);
  }

  // German: one bad row. The dry run names row 4; nothing is written; Import stays off.
  const before = await userCount(node);
  await checkFile(page, badFile);
  await page.waitForSelector(`${P} [data-testid=import-errors] tr[data-row]`);
  const listed = await page.$$eval(`${P} [data-testid=import-errors] tbody tr`,
    (es) => es.map((e) => [...e.querySelectorAll('td')].map((td) => td.textContent.trim())));
  check(listed.length === 1 && listed[0][0] === '4' && listed[0][1] === 'extension' && listed[0][2].length > 0,
    `the invalid rows shown: ${JSON.stringify(listed)}`);
  const summary = (await page.textContent(`${P} [data-testid=import-errors] .notice`)).trim();
  check(summary === tr('de', 'users.import.invalid', { n: 1 }), `German summary: "${summary}"`);
  check(await page.isDisabled(`${P} [data-testid=import-submit]`), 'Import enabled after a check with errors');
  check(await userCount(node) === before, 'a check of a file with a bad row wrote users');
  await h.screenshot(page, 'de-users-import-bad-row');
  log(`German: row 4 named (${listed[0].join(' | ')}); ${before} user(s) before and after`);

  // The same file through the API without a dry run: refused as a whole, row 4 named.
  const direct = await fetch(`${node.base}/api/v1/users/import`, {
    method: 'POST', body: fs.readFileSync(badFile),
    headers: { 'Content-Type': 'text/csv', Cookie: node.api.cookie, 'X-CSRF-Token': node.api.csrf, Accept: 'application/json' },
  });
  const dj = await direct.json();
  check(direct.status === 400 && dj.rows.length === 1 && dj.rows[0].row === 4, `API import of the bad file: ${direct.status} ${JSON.stringify(dj)}`);
  check(await userCount(node) === before, 'the API import of a file with a bad row wrote users');

  // Not UTF-8, too large: a message by the file field, nothing sent.
  for (const [file, key] of [[latin1File, 'users.import.notUtf8'], [hugeFile, 'users.import.tooLarge']]) {
    await checkFile(page, file);
    const err = `${P} .field[data-field=file] .field-error`;
    await waitFor(`${key} shown`, async () => (await page.isVisible(err)) && (await page.textContent(err)).trim() === I18N.de[key],
      { timeout: 10000 });
    check(await page.isDisabled(`${P} [data-testid=import-submit]`), `Import enabled after ${key}`);
  }
  check(await userCount(node) === before, 'a refused file wrote users');

  // English: the corrected file checks clean, imports, and the users are in the list.
  await setLanguage(page, 'en');
  await openImport(page);
  await checkFile(page, goodFile);
  const ok = `${P} [data-testid=import-result] .notice-success`;
  await page.waitForSelector(ok);
  const valid = (await page.textContent(ok)).trim();
  check(valid === tr('en', 'users.import.valid', { n: 3 }), `English dry run: "${valid}"`);
  check(await userCount(node) === before, 'the dry run wrote users');
  await waitFor('Import enabled', async () => !(await page.isDisabled(`${P} [data-testid=import-submit]`)));
  await page.click(`${P} [data-testid=import-submit]`);
  await page.waitForSelector('tr[data-ext="203"]');
  const done = (await page.textContent('.messages .notice-success')).trim();
  check(done === tr('en', 'users.import.done', { n: 3 }), `English import message: "${done}"`);
  check(!(await page.$(P)), 'the import panel is still open after the import');
  for (const ext of ['201', '202', '203']) check(await page.$(`tr[data-ext="${ext}"]`), `user ${ext} not in the list`);
  const bernd = await page.textContent('tr[data-ext="202"]');
  check(bernd.includes('Bau, Bernd') && bernd.includes('+4930123202'), `row of 202: ${bernd}`);
  check(await userCount(node) === before + 3, `users after the import: ${await userCount(node)}`);
  await h.screenshot(page, 'en-users-imported');
  log('English: clean dry run, 3 users imported and listed');

  // The only console errors allowed are the browser's own notes on the 400 answers.
  const unexpected = page.consoleErrors.filter((e) => !/status of 400/.test(e));
  check(!unexpected.length, `browser console: ${unexpected.join('\n')}`);
});
