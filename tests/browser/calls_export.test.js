'use strict';
// Call-record export in the admin UI (issue 15): two SIPp calls (101 -> 102 and 103 -> 102) make
// two records; on the call list page the "Download CSV" link follows the filters (user, dates)
// and the browser downloads what the node streams: with user 103 only that call, with a "from"
// date of tomorrow the header only, without filters both calls as JSON. The CSV header is the
// documented column list. The buttons are labelled in German and in English.
const fs = require('fs');
const path = require('path');
const H = require('./lib/harness');
const { check, waitFor, log, uiLogin, setLanguage } = H;

const pw = (e) => `pw-${e}-Secret`;
const COLUMNS = 'id,correlation_id,start,answer,end,duration_s,direction,caller,caller_name,dialled,' +
  'answered_by,disposition,external_line,parties,forwarded,transferred_by,transfer_target';
const I18N = {};
for (const l of ['de', 'en']) I18N[l] = JSON.parse(fs.readFileSync(path.join(H.SOURCE_DIR, 'web', 'i18n', `${l}.json`), 'utf8'));

async function call(h, node, from, port) {
  for (let attempt = 1; attempt <= 2; attempt++) {
    const device = h.sipp(`dev102-${from}`, 'uas_answer.xml', { port, service: '102', pause: 300, recvTimeout: 15000, timeout: 30 });
    await H.sleep(300);
    const caller = h.sipp(`call${from}`, 'uac_call.xml', { target: node.udp, service: '102', auth: [from, pw(from)], keys: { authuser: from }, pause: 300, recvTimeout: 15000, timeout: 30 });
    const [rc1, rc2] = await Promise.all([caller.done, device.done]);
    if ((rc1 === 124 || rc2 === 124) && attempt === 1) { log('SIPp hung (3.6.1 flake): retrying once'); continue; }
    check(rc1 === 0 && rc2 === 0, `SIPp call ${from} -> 102 failed: rc ${rc1}/${rc2}\n${caller.diagnostics()}\n${device.diagnostics()}`);
    return;
  }
}

async function download(page, testid) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid=${testid}]`)]);
  const file = await dl.path();
  check(!(await dl.failure()), `download failed: ${await dl.failure()}`);
  return { name: dl.suggestedFilename(), text: fs.readFileSync(file, 'utf8') };
}

H.main('calls_export', async (h) => {
  const node = await h.startNode({ name: 'export' });
  for (const [e, n] of [['101', 'Anna'], ['102', 'Bernd'], ['103', 'Carla']]) await node.api.createUser(e, pw(e), n);
  const port = H.freePort();
  await h.registerSipp(node, '102', pw('102'), port);
  await call(h, node, '101', port);
  await call(h, node, '103', port);
  await waitFor('two call records', async () => ((await node.api.call('GET', '/api/v1/calls')).calls || []).length === 2 || null, { timeout: 5000, interval: 200 });

  const { page } = await h.browser();
  await uiLogin(page, node);
  await page.click('a[data-page=calls]');
  const f = '[data-testid=call-filters]';
  await page.waitForSelector(`${f} [data-testid=export-csv]`);
  for (const lang of ['de', 'en']) {
    await setLanguage(page, lang);
    await page.click('a[data-page=calls]');
    await page.waitForSelector(`${f} [data-testid=export-csv]`);
    const label = (await page.textContent(`${f} [data-testid=export-csv]`)).trim();
    check(label === I18N[lang]['calls.export.csv'], `${lang}: CSV button says "${label}"`);
    await h.screenshot(page, `${lang}-calls-export`);
  }

  // user 103: one call
  await page.selectOption(`${f} select[name=extension]`, '103');
  const href = await page.getAttribute(`${f} [data-testid=export-csv]`, 'href');
  check(href.includes('extension=103') && href.includes('format=csv'), `CSV link: ${href}`);
  let dl = await download(page, 'export-csv');
  let lines = dl.text.split('\r\n').filter(Boolean);
  check(dl.name === 'calls.csv', `file name ${dl.name}`);
  check(lines[0] === COLUMNS, `CSV header: ${lines[0]}`);
  check(lines.length === 2 && lines[1].includes(',103,') && lines[1].includes('answered'), `CSV for 103:\n${dl.text}`);
  log(`CSV for user 103: ${lines[1]}`);

  // from tomorrow: nothing
  const tomorrow = new Date(Date.now() + 86400000);
  const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  await page.fill(`${f} input[name=from]`, iso(tomorrow));
  dl = await download(page, 'export-csv');
  lines = dl.text.split('\r\n').filter(Boolean);
  check(lines.length === 1 && lines[0] === COLUMNS, `CSV from tomorrow:\n${dl.text}`);

  // no filters, JSON: both calls
  await page.selectOption(`${f} select[name=extension]`, '');
  await page.fill(`${f} input[name=from]`, '');
  dl = await download(page, 'export-json');
  const js = JSON.parse(dl.text);
  check(dl.name === 'calls.json' && js.calls.length === 2, `JSON export: ${dl.name} ${dl.text.slice(0, 300)}`);
  check(js.calls.map((c) => c.caller).join(',') === '101,103', `JSON callers (oldest first): ${js.calls.map((c) => c.caller)}`);
  log('downloads: user 103 -> 1 row, from tomorrow -> header only, all as JSON -> 2 calls (oldest first)');
  check(!page.consoleErrors.length, `browser console: ${page.consoleErrors.join('\n')}`);
});
