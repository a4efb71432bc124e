'use strict';
// Call forwarding and do-not-disturb in the admin UI (issue 12), in German and in English:
// for each language the user form's "call forwarding" section is shown in that language; an
// invalid target (and an invalid no-answer time) is refused by the API with the field named
// ("field": "forward.busy" ...) and the UI shows the error next to exactly that field; valid
// targets and DND are saved through the form, the user list shows them, the REST API agrees,
// and after a reload of the page the form still holds them; DND shows on the presence board;
// then everything is cleared through the form and the API agrees again. A user created
// through the form with forwarding keeps it, and a change made through the API's features
// endpoint shows in the UI. Last, a SIPp call to a user who forwards always is answered by
// the target, and the call list names who forwarded to whom and what the caller dialled, in
// both languages; the call list's rendering of a transfer (API answer with a transfer added).
const fs = require('fs');
const path = require('path');
const H = require('./lib/harness');
const { check, waitFor, log, uiLogin, setLanguage } = H;

const I18N = {};
for (const l of ['de', 'en']) I18N[l] = JSON.parse(fs.readFileSync(path.join(H.SOURCE_DIR, 'web', 'i18n', `${l}.json`), 'utf8'));

const KINDS = ['always', 'busy', 'noAnswer', 'unregistered'];
const UF = '[data-testid=user-form]';
const row = (ext) => `tr[data-ext="${ext}"]`;
const input = (name) => `${UF} [name="${name}"]`;
const fieldError = (name) => `${UF} .field[data-field="${name}"] .field-error`;

// What each language sets; both differ so that the second run really changes every value.
const SETTINGS = {
  de: { dnd: true, forward: { always: '', busy: '202', noAnswer: '+4930123456', noAnswerSeconds: 25, unregistered: '203' } },
  en: { dnd: true, forward: { always: '203', busy: '', noAnswer: '202', noAnswerSeconds: 40, unregistered: '+4989123456' } },
};
// Invalid input per field: the API must refuse it naming that field.
const INVALID = [
  ['forward.busy', '12ab'],
  ['forward.unregistered', '1'.repeat(33)],
  ['forward.always', '+'],
  ['forward.noAnswerSeconds', '3'],
];

async function userOf(node, ext) {
  const u = (await node.api.call('GET', `/api/v1/users?extension=${ext}`)).users[0];
  check(u, `user ${ext} missing in GET /api/v1/users`);
  return u;
}

function sameForward(a, b) {
  return KINDS.every((k) => (a[k] || '') === (b[k] || '')) && a.noAnswerSeconds === b.noAnswerSeconds;
}

async function openEditor(page, ext) {
  await page.click(`${row(ext)} button.secondary`);
  await page.waitForSelector(`${UF} [data-testid=user-features]`);
}

// Submits the form and returns the API's answer to the PATCH/POST (status and JSON).
async function submit(page) {
  const [res] = await Promise.all([
    page.waitForResponse((r) => /\/api\/v1\/users(\/[^/?]+)?$/.test(new URL(r.url()).pathname) && ['PATCH', 'POST'].includes(r.request().method())),
    page.click(`${UF} button[type=submit]`),
  ]);
  let json = null;
  try { json = await res.json(); } catch { /* no body */ }
  return { status: res.status(), json };
}

async function fillFeatures(page, s) {
  if (s.dnd) await page.check(input('dnd'));
  else await page.uncheck(input('dnd'));
  for (const k of KINDS) await page.fill(input(`forward.${k}`), s.forward[k]);
  await page.fill(input('forward.noAnswerSeconds'), String(s.forward.noAnswerSeconds));
}

// The form shows exactly s.
async function formShows(page, s, what) {
  check(await page.isChecked(input('dnd')) === s.dnd, `${what}: DND switch is ${!s.dnd ? 'on' : 'off'}`);
  for (const k of KINDS) {
    const v = await page.inputValue(input(`forward.${k}`));
    check(v === s.forward[k], `${what}: forward.${k} shows "${v}", expected "${s.forward[k]}"`);
  }
  const secs = await page.inputValue(input('forward.noAnswerSeconds'));
  check(secs === String(s.forward.noAnswerSeconds), `${what}: no-answer seconds show "${secs}", expected ${s.forward.noAnswerSeconds}`);
}

// The list row of ext shows s in language lang.
async function listShows(page, ext, s, lang, what) {
  const cell = `${row(ext)} [data-testid=user-features-summary]`;
  await waitFor(`${what}: list row of ${ext}`, async () => (await page.getAttribute(cell, 'data-dnd')) === String(s.dnd));
  const text = await page.textContent(cell);
  const tr = I18N[lang];
  check(text.includes(tr['users.dndShort']) === s.dnd, `${what}: DND mark in the list row is wrong: "${text}"`);
  for (const k of KINDS) {
    const item = `${cell} li[data-forward=${k}]`;
    if (!s.forward[k]) {
      check(!(await page.$(item)), `${what}: list shows a ${k} forwarding that is off: "${text}"`);
      continue;
    }
    const t = await page.textContent(item);
    const label = tr[`users.fwd.short.${k}`].replace('{n}', String(s.forward.noAnswerSeconds));
    check(t.includes(s.forward[k]) && t.includes(label), `${what}: list item ${k} is "${t}", expected "${label}" and ${s.forward[k]}`);
  }
  if (!s.dnd && KINDS.every((k) => !s.forward[k]))
    check(!(await page.$(`${cell} li`)), `${what}: list shows "${text}" for a user without features`);
  else
    check(await page.getAttribute(`${cell} ul`, 'aria-label') === tr['users.fwd.title'], `${what}: the feature list has no ${lang} label`);
}

H.main('forwarding', async (h) => {
  const node = await h.startNode({ name: 'fwd' });
  for (const [e, n] of [['201', 'Anna Berger'], ['202', 'Bernd Köhler'], ['203', 'Carla Diaz']]) await node.api.createUser(e, `pw-${e}-Secret`, n);
  const u0 = await userOf(node, '201');
  check(u0.dnd === false && u0.forward && KINDS.every((k) => u0.forward[k] === ''),
    `a new user must have DND off and no forwarding: ${JSON.stringify({ dnd: u0.dnd, forward: u0.forward })}`);

  const { page } = await h.browser();
  await uiLogin(page, node);
  for (const lang of ['de', 'en']) {
    const tr = I18N[lang];
    const s = SETTINGS[lang];
    await setLanguage(page, lang);
    await page.click('a[data-page=users]');
    await page.waitForSelector(row('201'));

    // The section and its labels are in this language.
    await openEditor(page, '201');
    const legend = await page.textContent(`${UF} [data-testid=user-features] legend`);
    check(legend === tr['users.fwd.title'], `${lang}: section title "${legend}", expected "${tr['users.fwd.title']}"`);
    for (const [name, key] of [['dnd', 'users.dnd'], ['forward.always', 'users.fwd.always'], ['forward.busy', 'users.fwd.busy'],
      ['forward.noAnswer', 'users.fwd.noAnswer'], ['forward.noAnswerSeconds', 'users.fwd.noAnswerSeconds'], ['forward.unregistered', 'users.fwd.unregistered']]) {
      const id = await page.getAttribute(input(name), 'id');
      const label = await page.textContent(`${UF} label[for="${id}"]`);
      check(label.trim() === tr[key], `${lang}: label of ${name} is "${label}", expected "${tr[key]}"`);
    }
    check(await page.getAttribute(input('dnd'), 'role') === 'switch', `${lang}: the DND control is not a switch`);

    // Invalid input: the API names the field, the UI puts the error next to it (and nowhere
    // else), marks the input invalid and focuses it. Nothing is saved.
    const before = await userOf(node, '201');
    for (const [name, bad] of INVALID) {
      await fillFeatures(page, s);
      await page.fill(input(name), bad);
      const r = await submit(page);
      check(r.status === 400, `${lang}: ${name} = "${bad}" answered ${r.status}, expected 400: ${JSON.stringify(r.json)}`);
      const apiField = r.json && r.json.error && r.json.error.field;
      check(apiField === name, `${lang}: the API named field "${apiField}" for an invalid ${name}: ${JSON.stringify(r.json)}`);
      await page.waitForSelector(`${fieldError(name)}:not([hidden])`);
      const shown = await page.$$eval(`${UF} .field-error:not([hidden]), ${UF} .form-error:not([hidden])`,
        (es) => es.map((e) => e.closest('.field') ? e.closest('.field').dataset.field : 'form'));
      check(shown.length === 1 && shown[0] === name, `${lang}: error shown at ${JSON.stringify(shown)}, expected only at ${name}`);
      const text = await page.textContent(fieldError(name));
      const prefix = tr['error.invalid'].split('{message}')[0];
      const rule = tr[name === 'forward.noAnswerSeconds' ? 'users.fwd.invalidSeconds' : 'users.fwd.invalidTarget'];
      check(text.startsWith(prefix) && text.includes(rule), `${lang}: error text "${text}" is not in ${lang} ("${prefix}${rule}")`);
      check(await page.getAttribute(input(name), 'aria-invalid') === 'true', `${lang}: ${name} not marked aria-invalid`);
      check(await page.evaluate(() => document.activeElement && document.activeElement.name) === name, `${lang}: focus not on ${name}`);
      log(`${lang}: ${name} = "${bad.length > 12 ? `${bad.slice(0, 6)}…(${bad.length})` : bad}": 400, field ${apiField}, shown next to it: "${text}"`);
    }
    const unchanged = await userOf(node, '201');
    check(unchanged.dnd === before.dnd && sameForward(unchanged.forward, before.forward), `${lang}: a refused change was saved: ${JSON.stringify(unchanged.forward)}`);
    await h.screenshot(page, `forwarding-${lang}-error`);

    // Valid settings through the form.
    await fillFeatures(page, s);
    const ok = await submit(page);
    check(ok.status === 200, `${lang}: saving the forwarding answered ${ok.status}: ${JSON.stringify(ok.json)}`);
    await page.waitForSelector(UF, { state: 'detached' });
    await page.waitForSelector('.notice-success');
    await listShows(page, '201', s, lang, `${lang} after saving`);
    const saved = await userOf(node, '201');
    check(saved.dnd === s.dnd && sameForward(saved.forward, s.forward), `${lang}: GET API disagrees with the form: ${JSON.stringify({ dnd: saved.dnd, forward: saved.forward })}`);
    check(saved.displayName === 'Anna Berger', `${lang}: saving the features changed the name: ${saved.displayName}`);
    log(`${lang}: DND and forwarding saved through the form; list and GET agree: ${JSON.stringify(saved.forward)}`);

    // A reload: the list and the form show what is stored.
    await page.reload();
    await page.waitForSelector(row('201'));
    await listShows(page, '201', s, lang, `${lang} after reload`);
    await openEditor(page, '201');
    await formShows(page, s, `${lang} after reload`);
    await h.screenshot(page, `forwarding-${lang}-form`);
    await page.click(`${UF} button.secondary`); // cancel
    log(`${lang}: after a reload the list and the form show the stored settings`);

    // DND on the presence board.
    await page.click('a[data-page=presence]');
    await page.waitForSelector('.tile[data-ext="201"][data-dnd=true]');
    const tileText = await page.textContent('.tile[data-ext="201"] .state-label');
    check(tileText.includes(tr['presence.dnd']), `${lang}: presence tile of 201 says "${tileText}", expected "${tr['presence.dnd']}"`);
    check(await page.getAttribute('.tile[data-ext="202"]', 'data-dnd') === 'false', `${lang}: 202 shown with DND`);
    await h.screenshot(page, `forwarding-${lang}-presence`);
    log(`${lang}: presence board shows 201 as "${tileText}"`);

    // Clear everything through the form.
    await page.click('a[data-page=users]');
    await page.waitForSelector(row('201'));
    await openEditor(page, '201');
    const cleared = { dnd: false, forward: { always: '', busy: '', noAnswer: '', noAnswerSeconds: s.forward.noAnswerSeconds, unregistered: '' } };
    await fillFeatures(page, cleared);
    const r = await submit(page);
    check(r.status === 200, `${lang}: clearing answered ${r.status}: ${JSON.stringify(r.json)}`);
    await page.waitForSelector(UF, { state: 'detached' });
    await listShows(page, '201', cleared, lang, `${lang} after clearing`);
    const after = await userOf(node, '201');
    check(after.dnd === false && KINDS.every((k) => after.forward[k] === ''), `${lang}: not cleared in the API: ${JSON.stringify({ dnd: after.dnd, forward: after.forward })}`);
    await page.click('a[data-page=presence]');
    await page.waitForSelector('.tile[data-ext="201"][data-dnd=false]');
    log(`${lang}: cleared through the form; API and presence board agree`);
  }

  // A new user created with forwarding and DND through the form (POST).
  await page.click('a[data-page=users]');
  await page.click('[data-testid=user-new]');
  await page.fill(input('extension'), '204');
  await page.fill(input('displayName'), 'Dora Engel');
  await page.fill(input('sipPassword'), 'dora-secret-1');
  const created = { dnd: true, forward: { always: '', busy: '201', noAnswer: '', noAnswerSeconds: 15, unregistered: '' } };
  await fillFeatures(page, created);
  const c = await submit(page);
  check(c.status === 201 || c.status === 200, `creating 204 with forwarding answered ${c.status}: ${JSON.stringify(c.json)}`);
  await page.waitForSelector(row('204'));
  await listShows(page, '204', created, 'en', 'created user');
  const u204 = await userOf(node, '204');
  check(u204.dnd === true && sameForward(u204.forward, created.forward), `204 not created with its features: ${JSON.stringify(u204)}`);
  log('create: user 204 created through the form with DND and busy forwarding');

  // A change through the features endpoint (as a phone's user or a script would make it)
  // shows in the UI.
  const viaApi = { dnd: false, forward: { always: '202', busy: '', noAnswer: '', noAnswerSeconds: 20, unregistered: '' } };
  const put = await node.api.call('PUT', `/api/v1/users/${u204.id}/features`, viaApi);
  check(put.dnd === false && sameForward(put.forward, viaApi.forward), `PUT features answered ${JSON.stringify(put)}`);
  await page.reload();
  await page.waitForSelector(row('204'));
  await listShows(page, '204', viaApi, 'en', 'after PUT features');
  await openEditor(page, '204');
  await formShows(page, viaApi, 'after PUT features');
  log('PUT /users/{id}/features: the UI shows the change after a reload');

  // A forwarded call in the call list: 203 calls 204, which forwards always to 202 (a SIPp
  // device that answers); the call list names who forwarded to whom, in both languages.
  const port202 = H.freePort();
  await h.registerSipp(node, '202', 'pw-202-Secret', port202);
  let done = false;
  for (let attempt = 1; attempt <= 2 && !done; attempt++) {
    const device = h.sipp('dev202', 'uas_answer.xml', { port: port202, service: '202', pause: 500, recvTimeout: 15000, timeout: 30 });
    await H.sleep(300); // SIPp binds its socket
    const caller = h.sipp('call203', 'uac_call.xml', { target: node.udp, service: '204', auth: ['203', 'pw-203-Secret'], keys: { authuser: '203' }, pause: 500, recvTimeout: 15000, timeout: 30 });
    const [rc1, rc2] = await Promise.all([caller.done, device.done]);
    if ((rc1 === 124 || rc2 === 124) && attempt === 1) { log('SIPp hung (3.6.1 flake): retrying once'); continue; }
    check(rc1 === 0 && rc2 === 0, `forwarded call 203 -> 204 -> 202 failed: caller rc ${rc1}, device rc ${rc2}\n${caller.diagnostics()}\n${device.diagnostics()}`);
    done = true;
  }
  // The record is written when the call ends.
  let lastCalls = [];
  const fc = await waitFor('the forwarded call in GET /api/v1/calls', async () => {
    lastCalls = (await node.api.call('GET', '/api/v1/calls?limit=10')).calls || [];
    return lastCalls.find((c) => c.caller === '203' && (c.parties || []).some((p) => p.forwarded));
  }, { timeout: 5000 }).catch((e) => { throw new H.TestFailure(`${e.message}: ${JSON.stringify(lastCalls)}`); });
  const hop = fc && (fc.parties || []).find((p) => p.forwarded && p.forwarded.from === '204');
  check(hop && hop.extension === '202' && hop.forwarded.reason === 'always' && fc.answeredBy === '202',
    `call list API: no answered call 204 -> 202 (always): ${JSON.stringify(fc)}`);
  await page.click('a[data-page=calls]');
  const callRow = `tr[data-call="${fc.correlationId}"]`;
  await page.waitForSelector(callRow);
  for (const lang of ['en', 'de']) {
    await setLanguage(page, lang);
    const item = `${callRow} [data-testid=call-forwards] li[data-reason=always]`;
    await page.waitForSelector(item);
    const want = I18N[lang]['calls.fwd.hop'].replace('{from}', '204').replace('{to}', '202').replace('{reason}', I18N[lang]['calls.fwd.reason.always']);
    const got = (await page.textContent(item)).trim();
    check(got === want, `${lang}: call list shows "${got}", expected "${want}"`);
    check(await page.getAttribute(`${callRow} [data-testid=call-forwards]`, 'aria-label') === I18N[lang]['calls.fwd.title'], `${lang}: forwards not labelled`);
    log(`${lang}: call list row of the forwarded call shows "${got}"`);
    const dialled = (await page.textContent(`${callRow} td[data-col=dialled]`)).trim();
    check(dialled.startsWith('204'), `${lang}: "dialled" shows "${dialled}", not what the caller dialled (204)`);
    await h.screenshot(page, `forwarding-${lang}-calls`);
  }

  // How the call list names a transfer (the API's "transfer" object; transfers themselves are
  // tested with real phones in integration.federation.transfer): the answer of
  // GET /api/v1/calls is passed through with a transfer added to this record, so what is
  // checked here is the rendering in both languages.
  await page.route('**/api/v1/calls?*', async (route) => {
    const response = await route.fetch();
    const json = await response.json();
    for (const c of json.calls || []) {
      if (c.correlationId === fc.correlationId) c.transfer = { by: '205', target: '204', correlationId: 'other-call' };
    }
    await route.fulfill({ response, json });
  });
  for (const lang of ['en', 'de']) {
    await setLanguage(page, lang);
    await page.click('a[data-page=calls]');
    const item = `${callRow} [data-testid=call-transfer] li[data-other-call="other-call"]`;
    await page.waitForSelector(item);
    const want = I18N[lang]['calls.xfer.hop'].replace('{by}', '205').replace('{target}', '204');
    const got = (await page.textContent(item)).trim();
    check(got === want, `${lang}: call list shows the transfer as "${got}", expected "${want}"`);
    check(await page.getAttribute(`${callRow} [data-testid=call-transfer]`, 'aria-label') === I18N[lang]['calls.xfer.title'], `${lang}: transfer not labelled`);
    log(`${lang}: call list row of a transferred call shows "${got}"`);
  }
  await page.unroute('**/api/v1/calls?*');

  const missing = page.consoleErrors.filter((e) => /i18n: missing/.test(e));
  check(!missing.length, `missing translations reported by the UI:\n${missing.join('\n')}`);
});
