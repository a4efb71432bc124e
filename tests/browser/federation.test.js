'use strict';
// The seed's flow through the browser alone, on two nodes at distinct loopback addresses:
// on A "Verbund erstellen" (name), "Zertifikat erstellen" (passphrase) -> the file downloads;
// on B "aktivem Verbund beitreten": first with a wrong passphrase (the error is shown in plain
// words next to the field, B stays outside any federation), then with the right one; both
// members tables then show the other node as up. Screenshots in German and English. Then a user
// and a group on B with numbers A already uses: saved, with a warning naming A (issue 11).
// Then DND of A's user, set in A's user form, shows on B's presence board (issue 12).
const fs = require('fs');
const path = require('path');
const H = require('./lib/harness');
const { check, waitFor, log, uiLogin, setLanguage } = H;

const PASSPHRASE = 'Verbund-Pass-2024!';

function fedToml(ip) {
  return ['[federation]', `listen = "${ip}:${H.freePort(ip)}"`, `sip_listen = "${ip}:${H.freePort(ip)}"`,
    `advertise = ["${ip}"]`, ''].join('\n');
}

H.main('federation', async (h) => {
  const a = await h.startNode({ name: 'berlin', address: '127.0.0.2', extraToml: fedToml('127.0.0.2') });
  const b = await h.startNode({ name: 'hamburg', address: '127.0.0.3', extraToml: fedToml('127.0.0.3') });
  for (const n of [a, b]) {
    const r = await n.api.raw('GET', '/api/v1/federation');
    check(r.status === 200, `node ${n.name}: GET /api/v1/federation answered ${r.status} (federation routes missing?) ${JSON.stringify(r.json)}`);
    check(r.json.member === false, `node ${n.name} is already in a federation`);
  }
  const { ctx, page: pa } = await h.browser();
  const pb = await ctx.newPage();
  pb.consoleErrors = [];
  for (const [n, p] of [[a, pa], [b, pb]]) {
    await uiLogin(p, n);
    await setLanguage(p, 'de');
    await p.click('a[data-page=federation]');
  }

  // --- A: Verbund erstellen
  const cf = '[data-testid=federation-create-form]';
  await pa.waitForSelector(cf);
  check((await pa.textContent(cf)).includes('Verbund erstellen'), 'German create form does not say "Verbund erstellen"');
  await pa.fill(`${cf} input[name=name]`, 'Muster GmbH');
  await pa.click('[data-testid=federation-create]');
  await pa.waitForSelector('[data-testid=federation-name]');
  check((await pa.textContent('[data-testid=federation-name]')).includes('Muster GmbH'), 'federation name not shown on A');
  log('A: federation "Muster GmbH" created');

  // --- A: Zertifikat erstellen (a too short passphrase first: the reason shows at the field)
  const kf = '[data-testid=federation-certificate-form]';
  await pa.fill(`${kf} input[name=passphrase]`, 'short');
  await pa.fill(`${kf} input[name=passphrase2]`, 'short');
  await pa.click('[data-testid=federation-certificate]');
  await pa.waitForSelector(`${kf} .field[data-field=passphrase] .field-error:not([hidden])`);
  log(`A: weak passphrase refused: "${await pa.textContent(`${kf} .field[data-field=passphrase] .field-error`)}"`);
  await pa.fill(`${kf} input[name=passphrase]`, PASSPHRASE);
  await pa.fill(`${kf} input[name=passphrase2]`, PASSPHRASE);
  const [dl] = await Promise.all([pa.waitForEvent('download'), pa.click('[data-testid=federation-certificate]')]);
  const file = path.join(h.tmp, dl.suggestedFilename() || 'verbund-federation.pem');
  await dl.saveAs(file);
  const pem = fs.readFileSync(file, 'utf8');
  check(/-----BEGIN /.test(pem), `downloaded file ${path.basename(file)} is not PEM: ${pem.slice(0, 80)}`);
  log(`A: certificate file downloaded (${path.basename(file)}, ${pem.length} bytes)`);
  await h.screenshot(pa, 'de-federation-member');

  // --- B: aktivem Verbund beitreten, wrong passphrase first
  const jf = '[data-testid=federation-join-form]';
  await pb.waitForSelector(jf);
  check((await pb.textContent(jf)).includes('Aktivem Verbund beitreten'), 'German join form does not say "Aktivem Verbund beitreten"');
  await pb.setInputFiles(`${jf} input[name=file]`, file);
  await pb.fill(`${jf} input[name=passphrase]`, 'falsche-Passphrase-123');
  await pb.click('[data-testid=federation-join]');
  const err = `${jf} .field-error:not([hidden]), ${jf} .form-error:not([hidden])`;
  await pb.waitForSelector(err, { timeout: 20000 });
  const errText = await pb.textContent(err);
  check(/Passphrase ist falsch/.test(errText), `wrong passphrase: error "${errText}", expected the plain words of reason wrong-passphrase`);
  check(await pb.isVisible(`${jf} .field[data-field=passphrase] .field-error:not([hidden])`), 'wrong passphrase: error not next to the passphrase field');
  const stillOut = await b.api.call('GET', '/api/v1/federation');
  check(stillOut.member === false, `B changed by a wrong passphrase: ${JSON.stringify(stillOut).slice(0, 300)}`);
  log(`B: wrong passphrase -> "${errText}"; B unchanged`);
  await h.screenshot(pb, 'de-federation-wrong-passphrase');

  // --- B: right passphrase
  await pb.fill(`${jf} input[name=passphrase]`, PASSPHRASE);
  await pb.click('[data-testid=federation-join]');
  await pb.waitForSelector('[data-testid=federation-members]', { timeout: 30000 });
  log('B: joined');
  const upRow = (name) => `[data-testid=federation-members] tr[data-name="${name}"][data-state=up]`;
  await pb.waitForSelector(upRow('berlin'), { timeout: 30000 });
  await pa.waitForSelector(upRow('hamburg'), { timeout: 30000 });
  log('members tables: B shows berlin up, A shows hamburg up');
  const rowA = await pa.textContent(upRow('hamburg'));
  check(rowA.includes('127.0.0.3'), `A's row of hamburg shows no address: ${rowA}`);
  for (const [p, n] of [[pa, 'a'], [pb, 'b']]) {
    await h.screenshot(p, `de-federation-${n}-up`);
    await setLanguage(p, 'en');
    await p.waitForSelector('[data-testid=federation-members] tr[data-state=up]');
    await h.screenshot(p, `en-federation-${n}-up`);
  }

  // --- Issue 11: a number another site already uses is accepted with a warning naming the site
  // (English: a user on B with berlin's extension 201; German: a group on B with berlin's 250).
  await a.api.createUser('201', 'pw-201-Secret', 'Anna Berlin');
  await a.api.call('POST', '/api/v1/groups', { number: '250', name: 'Vertrieb Berlin', members: [] });
  await waitFor('berlin\'s 201 and 250 in hamburg\'s federation directory', async () => {
    const d = await b.api.call('GET', '/api/v1/federation/directory');
    return (d.users || []).some((u) => String(u.extension) === '201' && u.nodeName === 'berlin') &&
      (d.groups || []).some((g) => String(g.number) === '250' && g.nodeName === 'berlin');
  }, { timeout: 5000 });
  const warning = '[data-testid=conflict-warning]';
  await pb.click('a[data-page=users]');
  await pb.click('[data-testid=user-new]');
  const uf = '[data-testid=user-form]';
  await pb.fill(`${uf} input[name=extension]`, '201');
  await pb.fill(`${uf} input[name=displayName]`, 'Hanna Hamburg');
  await pb.fill(`${uf} input[name=sipPassword]`, 'hanna-secret-1');
  await pb.click(`${uf} button[type=submit]`);
  await pb.waitForSelector(warning);
  const enWarn = await pb.textContent(warning);
  check(/Number 201 is also used at site berlin \(user Anna Berlin\)/.test(enWarn), `English warning does not name berlin's user 201: "${enWarn}"`);
  check(await pb.isVisible('tr[data-ext="201"]'), 'the conflicting user was not saved');
  log(`B (en): user 201 saved with the warning "${enWarn}"`);
  await h.screenshot(pb, 'en-users-conflict-warning');
  await setLanguage(pb, 'de');
  await pb.click('a[data-page=groups]');
  await pb.click('[data-testid=group-new]');
  const gf = '[data-testid=group-form]';
  await pb.waitForSelector(gf);
  await pb.fill(`${gf} input[name=number]`, '250');
  await pb.fill(`${gf} input[name=name]`, 'Vertrieb Hamburg');
  await pb.click(`${gf} button[type=submit]`);
  await pb.waitForSelector(warning);
  const deWarn = await pb.textContent(warning);
  check(/Die Nummer 250 ist auch am Standort berlin vergeben \(Gruppe Vertrieb Berlin\)/.test(deWarn), `German warning does not name berlin's group 250: "${deWarn}"`);
  log(`B (de): group 250 saved with the warning "${deWarn}"`);
  await h.screenshot(pb, 'de-groups-conflict-warning');
  // No conflict, no warning.
  await pb.click('[data-testid=group-new]');
  await pb.fill(`${gf} input[name=number]`, '260');
  await pb.fill(`${gf} input[name=name]`, 'Lager');
  await pb.click(`${gf} button[type=submit]`);
  await pb.waitForSelector('.messages .notice-success');
  await waitFor('success line of group 260', async () => /260/.test(await pb.textContent('.messages .notice-success')));
  check(!(await pb.isVisible(warning)), 'a group without conflict was saved with a warning');

  // --- Issue 12: DND switched on for berlin's 201 through berlin's user form shows on
  // hamburg's presence board (replicated user record), only on that tile; switched off again,
  // the mark goes away.
  const remoteTile = `.tile[data-node="${a.info.node_id}"][data-ext="201"]`;
  for (const dnd of [true, false]) {
    await pa.click('a[data-page=users]');
    await pa.click('tr[data-ext="201"] button.secondary');
    if (dnd) await pa.check(`${uf} input[name=dnd]`);
    else await pa.uncheck(`${uf} input[name=dnd]`);
    await pa.click(`${uf} button[type=submit]`);
    await pa.waitForSelector(uf, { state: 'detached' });
    const t0 = Date.now();
    await pb.click('a[data-page=presence]');
    await pb.waitForSelector(`${remoteTile}[data-dnd=${dnd}]`, { timeout: 10000 });
    const label = await pb.textContent(`${remoteTile} .state-label`);
    check(/nicht stören/.test(label) === dnd, `hamburg's board: berlin's 201 says "${label}" with DND ${dnd ? 'on' : 'off'}`);
    check(await pb.getAttribute('.tile[data-node=""][data-ext="201"]', 'data-dnd') === 'false', 'hamburg\'s own 201 shown with DND');
    log(`DND ${dnd ? 'on' : 'off'} for berlin's 201: hamburg's presence board shows "${label}" after ${Date.now() - t0} ms`);
    if (dnd) await h.screenshot(pb, 'de-presence-remote-dnd');
  }

  const raw = pa.consoleErrors.concat(pb.consoleErrors).filter((e) => /i18n: missing/.test(e));
  check(!raw.length, `missing translations: ${raw.join('\n')}`);
  void waitFor;
});
