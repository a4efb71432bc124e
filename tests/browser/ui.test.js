'use strict';
// The admin UI through the browser: login (wrong password, then right), session expiry,
// logout; a change without session or CSRF token is refused; users and groups created,
// edited and deleted through the forms, with an API validation error shown next to its
// field; the external line page shows the registration state; a user's devices.
const H = require('./lib/harness');
const { check, waitFor, log, uiLogin } = H;

H.main('ui', async (h) => {
  const node = await h.startNode({ name: 'ui' });
  const { ctx, page } = await h.browser();

  // --- login / logout / expiry
  await page.goto(`${node.base}/`);
  await page.waitForSelector('.login-form');
  await page.fill('.login-form input[name=password]', 'not-the-password');
  await page.click('.login-form button[type=submit]');
  await page.waitForSelector('.login-form .field[data-field=password] .field-error:not([hidden])');
  check(await page.getAttribute('.login-form input[name=password]', 'aria-invalid') === 'true', 'wrong password: field not marked invalid');
  log('login with a wrong password: error shown next to the field');
  await uiLogin(page, node);
  await page.waitForSelector('.card[data-card=node]');
  check((await page.textContent('[data-testid=node-name]')).includes('ui'), 'node name missing in the top bar');
  log('login: dashboard shown');

  await page.click('[data-testid=logout]');
  await page.waitForSelector('.login-form');
  check(await page.isVisible('.notice-info'), 'logout: no "logged out" message');
  const after = await page.evaluate(() => fetch('/api/v1/users').then((r) => r.status));
  check(after === 401, `after logout GET /api/v1/users answered ${after}, expected 401`);
  log('logout: login page, the session is gone (401)');

  await uiLogin(page, node);
  await ctx.clearCookies(); // the session ends behind the UI's back
  await page.click('a[data-page=users]');
  await page.waitForSelector('.login-form');
  await page.waitForSelector('.notice-error');
  log('session expiry: back to the login page with a message');

  // --- changes without session or CSRF token are refused
  await uiLogin(page, node);
  const refused = await page.evaluate(async () => {
    const body = JSON.stringify({ extension: '555', displayName: 'X', sipPassword: 'secret-123' });
    const noCsrf = await fetch('/api/v1/users', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    const wrongCsrf = await fetch('/api/v1/users', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'forged' }, body });
    const noSession = await fetch('/api/v1/users', { method: 'POST', credentials: 'omit', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': sessionStorage.getItem('verbund.csrf') }, body });
    return [noCsrf.status, wrongCsrf.status, noSession.status];
  });
  check(refused[0] === 403 && refused[1] === 403 && refused[2] === 401, `changes without CSRF/session: ${refused} (expected 403,403,401)`);
  const users0 = await node.api.call('GET', '/api/v1/users');
  check(!users0.users.some((u) => u.extension === '555'), 'a refused change created the user anyway');
  log(`refused: no CSRF token ${refused[0]}, forged token ${refused[1]}, no session ${refused[2]}`);
  // The UI's files carry the security headers.
  const hdr = await node.api.raw('GET', '/');
  check(/default-src 'self'/.test(hdr.headers.get('content-security-policy') || '') && hdr.headers.get('x-frame-options') === 'DENY' &&
    hdr.headers.get('x-content-type-options') === 'nosniff', 'security headers missing on /');

  // The UI shows the session as expired too when the server forgets it (e.g. restart): the
  // UI must not stay on a page that fails silently. (Covered above by clearCookies.)

  // --- users: create with a validation error, fix, edit, delete
  await page.click('a[data-page=users]');
  await page.click('[data-testid=user-new]');
  const uf = '[data-testid=user-form]';
  await page.fill(`${uf} input[name=extension]`, '1a');
  await page.fill(`${uf} input[name=displayName]`, 'Anna Admin');
  await page.fill(`${uf} input[name=sipPassword]`, 'anna-secret-1');
  await page.click(`${uf} button[type=submit]`);
  const extErr = `${uf} .field[data-field=extension] .field-error:not([hidden])`;
  await page.waitForSelector(extErr);
  log(`users: validation error next to the extension field: "${await page.textContent(extErr)}"`);
  check(await page.evaluate(() => document.activeElement && document.activeElement.name) === 'extension', 'focus not on the invalid field');
  await page.fill(`${uf} input[name=extension]`, '201');
  await page.click(`${uf} button[type=submit]`);
  await page.waitForSelector('tr[data-ext="201"]');
  check(!(await page.isVisible(uf)), 'user form still open after saving');
  await page.click('tr[data-ext="201"] button.secondary');
  await page.fill(`${uf} input[name=displayName]`, 'Anna Berger');
  await page.fill(`${uf} input[name=externalNumber]`, '12345');
  await page.click(`${uf} button[type=submit]`);
  await page.waitForSelector(`${uf} .field[data-field=externalNumber] .field-error:not([hidden])`);
  await page.fill(`${uf} input[name=externalNumber]`, '+4930123456');
  await page.click(`${uf} button[type=submit]`);
  await waitFor('edited user in the list', async () => (await page.textContent('tr[data-ext="201"]')).includes('Anna Berger'));
  const u201 = (await node.api.call('GET', '/api/v1/users?extension=201')).users[0];
  check(u201 && u201.displayName === 'Anna Berger' && u201.externalNumber === '+4930123456', `user 201 not edited: ${JSON.stringify(u201)}`);
  log('users: created and edited through the form');
  await page.fill('#user-search', 'zzz-nobody');
  await page.waitForSelector('.list .empty');
  await page.fill('#user-search', 'Berger');
  await page.waitForSelector('tr[data-ext="201"]');
  log('users: search');
  await node.api.createUser('202', 'bernd-secret-1', 'Bernd');
  await node.api.createUser('203', 'carla-secret-1', 'Carla');
  await page.fill('#user-search', '');
  await page.waitForSelector('tr[data-ext="203"]');

  // delete: the dialog can be cancelled (nothing happens), then confirmed
  await page.click('tr[data-ext="203"] button.danger');
  await page.waitForSelector('dialog.confirm[open]');
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog.confirm', { state: 'detached' });
  check(await page.isVisible('tr[data-ext="203"]'), 'cancelled delete removed the user');
  await page.click('tr[data-ext="203"] button.danger');
  await page.click('dialog.confirm button[type=submit]');
  await page.waitForSelector('tr[data-ext="203"]', { state: 'detached' });
  check(!(await node.api.call('GET', '/api/v1/users?extension=203')).users.length, 'user 203 not deleted');
  log('users: delete with confirmation (cancel keeps it, confirm deletes it)');

  // devices of a user: a registration shows under the user
  const port = H.freePort();
  await h.registerSipp(node, '202', 'bernd-secret-1', port);
  await page.click('a[data-page=dashboard]');
  await page.click('a[data-page=users]');
  await page.click('tr[data-ext="202"] button.link');
  await page.waitForSelector('.devices table');
  check((await page.textContent('.devices')).includes(String(port)), 'device registration of 202 not shown');
  log('users: registered device shown');

  // --- groups: create with a validation error, edit members, toggle login, delete
  await page.click('a[data-page=groups]');
  await page.click('[data-testid=group-new]');
  const gf = '[data-testid=group-form]';
  await page.fill(`${gf} input[name=number]`, '201'); // taken by a user
  await page.fill(`${gf} input[name=name]`, 'Sales');
  await page.check(`${gf} input[data-ext="201"]`);
  await page.click(`${gf} button[type=submit]`);
  await page.waitForSelector(`${gf} .field[data-field=number] .field-error:not([hidden])`);
  log(`groups: validation error next to the number field: "${await page.textContent(`${gf} .field[data-field=number] .field-error`)}"`);
  await page.fill(`${gf} input[name=number]`, '600');
  await page.click(`${gf} button[type=submit]`);
  await page.waitForSelector('tr[data-number="600"]');
  await page.click('tr[data-number="600"] button.secondary');
  await page.fill(`${gf} input[name=name]`, 'Sales team');
  await page.check(`${gf} input[data-ext="202"]`);
  await page.click(`${gf} button[type=submit]`);
  await page.waitForSelector('tr[data-number="600"] li[data-member="/202"]');
  check((await page.textContent('tr[data-number="600"]')).includes('Sales team'), 'group not renamed');
  await page.click('tr[data-number="600"] li[data-member="/202"] button.link');
  await page.waitForSelector('tr[data-number="600"] li[data-member="/202"] .badge[data-state=out]');
  let g = (await node.api.call('GET', '/api/v1/groups?number=600')).groups[0];
  check(g.members.find((m) => m.extension === '202').loggedIn === false, 'member 202 still logged in after the toggle');
  await page.click('tr[data-number="600"] li[data-member="/202"] button.link');
  await page.waitForSelector('tr[data-number="600"] li[data-member="/202"] .badge[data-state=in]');
  log('groups: created, edited (members), member logged out and in again');
  await page.click('tr[data-number="600"] button.danger');
  await page.click('dialog.confirm button[type=submit]');
  await page.waitForSelector('tr[data-number="600"]', { state: 'detached' });
  g = (await node.api.call('GET', '/api/v1/groups?number=600')).groups;
  check(!g.length, 'group 600 not deleted');
  log('groups: deleted');

  // --- external line: state shown; a validation error next to its field; enabling it shows
  // the registration state change
  await page.click('a[data-page=trunk]');
  await page.waitForSelector('[data-testid=trunk-status][data-state=disabled]');
  const tf = '[data-testid=trunk-form]';
  await page.check(`${tf} input[name=enabled]`);
  await page.fill(`${tf} input[name=registrar]`, '');
  await page.click(`${tf} button[type=submit]`);
  await page.waitForSelector(`${tf} .field-error:not([hidden]), ${tf} .form-error:not([hidden])`);
  log(`trunk: error shown: "${(await page.textContent(`${tf} .field-error:not([hidden]), ${tf} .form-error:not([hidden])`)).trim()}"`);
  const sipPort = H.freePort();
  await page.fill(`${tf} input[name=registrar]`, `127.0.0.1:${sipPort}`);
  await page.fill(`${tf} input[name=domain]`, '127.0.0.1');
  await page.fill(`${tf} input[name=username]`, 'line1');
  await page.fill(`${tf} input[name=password]`, 'line-secret-1');
  await page.selectOption(`${tf} select[name=transport]`, 'udp');
  await page.click(`${tf} button[type=submit]`);
  await page.waitForSelector('.notice-success');
  await waitFor('trunk state leaves "disabled"', async () => {
    const s = await page.getAttribute('[data-testid=trunk-status]', 'data-state');
    return s && s !== 'disabled' ? s : null;
  }, { timeout: 15000 });
  log(`trunk: enabled, state shown as "${await page.getAttribute('[data-testid=trunk-status]', 'data-state')}" without reload`);
  check(!page.consoleErrors.some((e) => /i18n/.test(e)), `missing translations: ${page.consoleErrors.join('\n')}`);
});
