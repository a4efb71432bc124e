'use strict';
// Shared code of the browser tests: a `verbund serve` of its own per test (temp data dir,
// VERBUND_ADMIN_PASSWORD, port 0 on a loopback address, bound ports from the ready-file),
// headless Chromium through playwright-core (Debian's /usr/bin/chromium, no browser
// download), SIPp devices, steps with clear failure output, screenshots into the artifacts
// directory, and clean-up of everything started (by pid) on exit, failure or SIGTERM.
//
// usage in a test: const H = require('./lib/harness'); H.main('name', async (h) => {...})
// arguments: --verbund PATH (the binary); env VERBUND_BROWSER_ARTIFACTS (screenshots),
// VERBUND_CHROMIUM (default /usr/bin/chromium), VERBUND_SIPP (default sipp on PATH).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');

const ADMIN_PASSWORD = 'browser-Admin-Pa55word!';
const SOURCE_DIR = path.resolve(__dirname, '..', '..', '..');
const SCENARIOS = path.join(SOURCE_DIR, 'tests', 'integration', 'pbx', 'scenarios');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function log(...a) { console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class TestFailure extends Error {}
function check(cond, message) { if (!cond) throw new TestFailure(message); }

async function waitFor(what, f, { timeout = 10000, interval = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      if (e instanceof TestFailure) throw e; // a check inside f failed: no point in waiting
      last = e;
    }
    if (Date.now() > end) throw new TestFailure(`${what}: not within ${timeout} ms${last ? ` (last error: ${last.message})` : ''}`);
    await sleep(interval);
  }
}

function tail(file, lines = 60) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return '(no log)'; }
}

// A free UDP+TCP port on addr (bound and closed; good enough on a quiet loopback).
function freePort(addr = '127.0.0.1') {
  const py = `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('${addr}',0))\nprint(s.getsockname()[1])`;
  return Number(execFileSync('python3', ['-c', py]).toString().trim());
}

class Harness {
  constructor(name) {
    this.name = name;
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `verbund-browser-${name}-`));
    this.procs = new Set();
    this.nodes = [];
    this.cleanups = [];
    this.failed = false;
    this.verbund = path.resolve(arg('--verbund', process.env.VERBUND_BIN || 'verbund'));
    this.artifacts = process.env.VERBUND_BROWSER_ARTIFACTS || path.join(this.tmp, 'artifacts');
    fs.mkdirSync(this.artifacts, { recursive: true });
    this.chromium = process.env.VERBUND_CHROMIUM || '/usr/bin/chromium';
    this.sippBin = process.env.VERBUND_SIPP || 'sipp';
  }

  spawn(label, cmd, args, opts = {}) {
    const out = fs.openSync(opts.logfile || path.join(this.tmp, `${label.replace(/\W+/g, '-')}.log`), 'a');
    const p = spawn(cmd, args, { stdio: ['ignore', out, out], detached: true, ...opts.spawn });
    fs.closeSync(out);
    p.label = label;
    this.procs.add(p);
    p.on('exit', () => { p.exited = true; });
    return p;
  }

  async stopProcess(p, signal = 'SIGTERM', grace = 5000) {
    if (!p || p.exited) { this.procs.delete(p); return; }
    try { process.kill(-p.pid, signal); } catch { /* gone */ }
    const end = Date.now() + grace;
    while (!p.exited && Date.now() < end) await sleep(50);
    if (!p.exited) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } }
    this.procs.delete(p);
  }

  onCleanup(f) { this.cleanups.push(f); }

  // SIGTERM to every node: each must exit 0 within 15 s, with no sanitizer report in its log.
  async stopNodes() {
    for (const n of this.nodes) {
      if (n.proc.exited) throw new TestFailure(`node ${n.name} died during the test:\n${tail(n.logfile)}`);
      const code = new Promise((r) => n.proc.on('exit', (c, sig) => r(c === null ? sig : c)));
      process.kill(n.proc.pid, 'SIGTERM');
      const rc = await Promise.race([code, sleep(15000).then(() => 'timeout')]);
      await this.stopProcess(n.proc, 'SIGKILL', 1000);
      const san = fs.readFileSync(n.logfile, 'utf8').split('\n').filter((l) => /Sanitizer|runtime error:/.test(l));
      check(!san.length, `sanitizer report from node ${n.name}:\n${san.slice(0, 20).join('\n')}`);
      check(rc === 0, `node ${n.name} exited with ${rc} on SIGTERM:\n${tail(n.logfile, 40)}`);
    }
    this.nodes = [];
  }

  async cleanup() {
    for (const f of this.cleanups.reverse()) { try { await f(); } catch (e) { log('cleanup:', e.message); } }
    for (const p of [...this.procs]) await this.stopProcess(p, 'SIGTERM', 3000);
    if (!this.failed && !process.env.VERBUND_BROWSER_KEEP) fs.rmSync(this.tmp, { recursive: true, force: true });
    else log(`kept ${this.tmp}`);
  }

  // ------------------------------------------------------------------ the node
  async startNode({ name = 'pbx', address = '127.0.0.1', extraToml = '', password = ADMIN_PASSWORD } = {}) {
    const dir = path.join(this.tmp, `node-${name}`);
    const data = path.join(dir, 'data');
    fs.mkdirSync(data, { recursive: true });
    const config = path.join(dir, 'node.toml');
    const ready = path.join(dir, 'ready.json');
    fs.writeFileSync(config, [
      '[node]', `name = "${name}"`, `data_dir = "${data}"`, 'log_level = "debug"', `admin_listen = "${address}:0"`, '',
      '[sip]', `udp = ["${address}:0"]`, `tcp = ["${address}:0"]`,
      // SIPp 3.6.1 computes only MD5 and answers the first challenge
      'digest_algorithms = ["MD5", "SHA-256"]', 'digest_uri_without_user = true', '', extraToml,
      // Tests run in parallel: no node may take the default federation ports.
      extraToml.includes('[federation]') ? '' :
        `[federation]\nlisten = "${address}:0"\nsip_listen = "${address}:0"\n`].join('\n'));
    const logfile = path.join(dir, 'serve.log');
    const p = this.spawn(`verbund serve ${name}`, this.verbund, ['serve', '--config', config, '--ready-file', ready], {
      logfile, spawn: { cwd: dir, env: { ...process.env, VERBUND_ADMIN_PASSWORD: password } },
    });
    const t0 = Date.now();
    const info = await waitFor(`node ${name} ready-file`, () => {
      check(!p.exited, `verbund serve ${name} exited before it was ready:\n${tail(logfile)}`);
      if (!fs.existsSync(ready)) return null;
      const j = JSON.parse(fs.readFileSync(ready, 'utf8'));
      return j.admin && j.udp ? j : null;
    }, { timeout: 30000, interval: 50 });
    const node = {
      name, dir, logfile, proc: p, info, password,
      base: `http://${info.admin}`,
      udp: info.udp,
      api: new Api(`http://${info.admin}`),
    };
    this.onCleanup(async () => {
      if (this.failed) console.log(`--- node ${name} log, last 80 lines:\n${tail(logfile, 80)}`);
    });
    this.nodes.push(node);
    log(`node ${name} ready in ${Date.now() - t0} ms: ${JSON.stringify(info)}`);
    await node.api.login(password);
    return node;
  }

  // ------------------------------------------------------------------ the browser
  async browser({ width = 1280, height = 800, locale = 'en-US' } = {}) {
    let chromium;
    try {
      ({ chromium } = require('playwright-core'));
    } catch {
      throw new TestFailure('playwright-core is missing: run `npm ci` in the source tree');
    }
    check(fs.existsSync(this.chromium), `${this.chromium} not found (Debian package chromium; scripts/deps.sh test)`);
    const profile = fs.mkdtempSync(path.join(this.tmp, 'chromium-'));
    const home = path.join(this.tmp, 'home');
    fs.mkdirSync(home, { recursive: true });
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: this.chromium,
      headless: true,
      viewport: { width, height },
      locale,
      acceptDownloads: true,
      // No DNS or update traffic leaves the machine (Chromium asks for Google hosts otherwise).
      args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE 127.0.0.2 , EXCLUDE 127.0.0.3 , EXCLUDE localhost', '--disable-background-networking',
        '--disable-component-update', '--no-first-run', `--lang=${locale}`],
      env: { ...process.env, HOME: home, TMPDIR: this.tmp },
    });
    this.onCleanup(() => ctx.close());
    const page = ctx.pages()[0] || await ctx.newPage();
    page.consoleErrors = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') page.consoleErrors.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => page.consoleErrors.push(`pageerror: ${e.message}`));
    this.lastPage = page;
    return { ctx, page };
  }

  async screenshot(page, name) {
    const file = path.join(this.artifacts, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  }

  // ------------------------------------------------------------------ SIPp
  sipp(label, scenario, { target, port, service, auth, keys = {}, pause, recvTimeout = 15000, timeout = 60 } = {}) {
    const dir = fs.mkdtempSync(path.join(this.tmp, `sipp-${label}-`));
    const a = ['-k', '5', String(timeout), this.sippBin];
    if (target) a.push(target);
    a.push('-sf', path.join(SCENARIOS, scenario), '-s', service, '-i', '127.0.0.1', '-p', String(port || freePort()),
      '-mp', String(freePort()), '-t', 'u1', '-m', '1', '-nostdin', '-recv_timeout', String(recvTimeout),
      '-trace_err', '-error_file', path.join(dir, 'errors.log'), '-trace_msg', '-message_file', path.join(dir, 'messages.log'),
      '-trace_logs', '-log_file', path.join(dir, 'logs.log'));
    if (auth) a.push('-au', auth[0], '-ap', auth[1]);
    for (const [k, v] of Object.entries(keys)) a.push('-key', k, String(v));
    if (pause !== undefined) a.push('-d', String(pause));
    const p = this.spawn(`sipp ${label}`, 'timeout', a, { logfile: path.join(dir, 'stdout.log'), spawn: { cwd: dir } });
    p.dir = dir;
    p.done = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
    p.diagnostics = () => ['stdout', 'errors', 'messages'].map((k) => `--- sipp ${label} ${k}:\n${tail(path.join(dir, `${k}.log`), 40)}`).join('\n');
    return p;
  }

  // REGISTERs user from port (digest auth), retried once on the SIPp 3.6.1 <pause> hang.
  async registerSipp(node, user, password, port) {
    for (let attempt = 1; attempt <= 2; attempt++) {
      const s = this.sipp(`register-${user}`, 'register_auth.xml', { target: node.udp, port, service: user, auth: [user, password], keys: { expires: 600 }, recvTimeout: 5000, timeout: 15 });
      const rc = await s.done;
      if (rc === 0) return;
      if (rc !== 124 || attempt === 2) throw new TestFailure(`REGISTER of ${user} failed (rc ${rc})\n${s.diagnostics()}`);
      log('SIPp REGISTER hung (3.6.1 flake): retrying once');
    }
  }
}

// The REST API from Node (for set-up and checks the browser does not need to do).
class Api {
  constructor(base) { this.base = base; this.cookie = ''; this.csrf = ''; }
  async raw(method, p, body, headers = {}) {
    const h = { Accept: 'application/json', ...headers };
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (this.cookie) h.Cookie = this.cookie;
    if (this.csrf && method !== 'GET') h['X-CSRF-Token'] = this.csrf;
    const res = await fetch(this.base + p, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: res.status, json, headers: res.headers };
  }
  async call(method, p, body) {
    const r = await this.raw(method, p, body);
    if (r.status >= 300) throw new TestFailure(`API ${method} ${p} -> ${r.status}: ${JSON.stringify(r.json)}`);
    return r.json;
  }
  async login(password) {
    const r = await this.raw('POST', '/api/v1/session', { password });
    check(r.status === 200, `API login: ${r.status} ${JSON.stringify(r.json)}`);
    const sc = r.headers.get('set-cookie') || '';
    this.cookie = sc.split(';')[0];
    this.csrf = r.json.csrfToken;
  }
  createUser(ext, password, name) {
    return this.call('POST', '/api/v1/users', { extension: ext, displayName: name || `User ${ext}`, sipUser: ext, sipPassword: password });
  }
}

// Logs in through the UI's login form.
async function uiLogin(page, node, password = node.password) {
  await page.goto(`${node.base}/`);
  await page.waitForSelector('.login-form input[name=password]');
  await page.fill('.login-form input[name=password]', password);
  await page.click('.login-form button[type=submit]');
  await page.waitForSelector('.topbar [data-testid=logout]');
}

async function setLanguage(page, lang) {
  await page.click(`.lang-switch button[data-lang=${lang}]`);
  await page.waitForFunction((l) => document.documentElement.lang === l, lang);
}

async function main(name, body) {
  const h = new Harness(name);
  const t0 = Date.now();
  let stopping = false;
  const onSignal = async (sig) => {
    if (stopping) return;
    stopping = true;
    h.failed = true;
    log(`${sig}: cleaning up`);
    await h.cleanup();
    process.exit(1);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  let rc = 0;
  try {
    await body(h);
    await h.stopNodes();
    log(`PASS ${name} in ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${h.artifacts}`);
  } catch (e) {
    h.failed = true;
    rc = 1;
    console.log(`FAIL ${name}: ${e instanceof TestFailure ? e.message : (e.stack || e)}`);
    if (h.lastPage) {
      try {
        const f = await h.screenshot(h.lastPage, `FAILED-${name}`);
        console.log(`screenshot of the failure: ${f}`);
        if (h.lastPage.consoleErrors.length) console.log(`browser console:\n${h.lastPage.consoleErrors.join('\n')}`);
      } catch { /* browser gone */ }
    }
  }
  await h.cleanup();
  process.exit(rc);
}

module.exports = { main, check, waitFor, sleep, log, freePort, TestFailure, uiLogin, setLanguage, ADMIN_PASSWORD, SOURCE_DIR };
