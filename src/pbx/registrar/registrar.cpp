#include "pbx/registrar/registrar.h"

#include "base/log.h"
#include "base/metrics.h"
#include "sip/dialog/uac_request.h"
#include "sip/message/builder.h"
#include "sip/message/headers.h"
#include "sip/message/text.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <thread>

namespace verbund::pbx {

namespace {

Counter g_registered("verbund_pbx_registrar_registrations_total",
                     "REGISTER requests accepted with 200 (registrations, refreshes, removals)");
Counter g_challenges("verbund_pbx_registrar_challenges_total",
                     "REGISTER requests answered with a 401 digest challenge");
Counter g_authFailures("verbund_pbx_registrar_auth_failures_total",
                       "REGISTER requests with a wrong digest response or another user's AoR");
Counter g_throttled("verbund_pbx_registrar_throttled_total",
                    "REGISTER requests refused with 403 because their source is throttled");
Counter g_rejected("verbund_pbx_registrar_rejected_total",
                   "REGISTER requests refused for other reasons (400, 423, 500, 503)");
Counter g_bindingsAdded("verbund_pbx_registrar_bindings_added_total",
                        "Bindings created or loaded at start (bindings = added - removed)");
Counter g_bindingsRemoved("verbund_pbx_registrar_bindings_removed_total",
                          "Bindings removed by the device, by expiry, by an administrator or "
                          "because their connection closed");
Counter g_flowLost("verbund_pbx_registrar_flow_lost_total",
                   "Bindings removed because the device's TCP/TLS connection closed (also "
                   "counted in bindings_removed_total)");

// Caps on what a device may make us store (untrusted input, bounded memory per binding).
constexpr size_t kMaxContactLength = 512;
constexpr size_t kMaxInstanceLength = 128;
constexpr size_t kMaxCallIdLength = 256;
constexpr size_t kMaxPathLength = 1024;
constexpr size_t kMaxUserAgentLength = 96;
// RFC 3261 §20.10 and §20.19: malformed expiry values are treated as 3600.
constexpr uint32_t kMalformedExpires = 3600;

// RFC 3261 §10.3 step 7 leaves the status of an out-of-order REGISTER open ("the request
// fails"); 400 is what Kamailio and OpenSIPS answer, and a retry with the next CSeq succeeds.
constexpr int kOutOfOrderStatus = 400;

std::shared_ptr<spdlog::logger> log() {
  return logger("registrar");
}

uint32_t parseExpiresValue(std::string_view v) {
  auto r = sip::parseUint(sip::text::trim(v));
  return r ? r.value() : kMalformedExpires;
}

// RFC 3261 §25.1: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
std::optional<int16_t> parseQ(std::string_view v) {
  if (v.empty() || (v[0] != '0' && v[0] != '1')) return std::nullopt;
  int value = (v[0] - '0') * 1000;
  if (v.size() == 1) return int16_t(value);
  if (v[1] != '.' || v.size() > 5) return std::nullopt;
  int scale = 100;
  for (size_t i = 2; i < v.size(); ++i, scale /= 10) {
    if (!sip::text::isDigit(v[i])) return std::nullopt;
    value += (v[i] - '0') * scale;
  }
  if (value > 1000) return std::nullopt;
  return int16_t(value);
}

std::string formatQ(int16_t q) {
  if (q >= 1000) return "1";
  std::string s = "0." + std::to_string(1000 + q).substr(1);
  while (s.size() > 3 && s.back() == '0') s.pop_back();
  return s;
}

// RFC 3261 §20.17: rfc1123-date, always in English whatever the locale.
std::string httpDate(int64_t ms) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = std::time_t(ms / 1000);
  std::tm tm{};
  if (!gmtime_r(&t, &tm)) return {};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

// Cuts at a byte limit without splitting a UTF-8 sequence.
std::string truncateUtf8(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

bool printable(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  return true;
}

// A value we write back inside a quoted-string must not need escapes.
bool quotable(std::string_view s) {
  return printable(s) && s.find('"') == std::string_view::npos &&
         s.find('\\') == std::string_view::npos;
}

bool sameFlow(const sip::Peer& a, const sip::Peer& b) {
  return a.transport == b.transport && a.remote == b.remote && a.connection == b.connection;
}

int64_t transportCode(sip::TransportType t) {
  return static_cast<int64_t>(t);
}
std::optional<sip::TransportType> transportFromCode(int64_t v) {
  switch (v) {
  case 0:
    return sip::TransportType::Udp;
  case 1:
    return sip::TransportType::Tcp;
  case 2:
    return sip::TransportType::Tls;
  default:
    return std::nullopt;
  }
}

} // namespace

bool behindNat(const sip::Uri& contact, const sip::Peer& source, std::string_view path) {
  if (source.transport != sip::TransportType::Udp || !path.empty()) return false;
  auto host = IpAddress::parse(contact.host);
  return host && host->isPrivate() && !(*host == source.remote.ip);
}

uint32_t Binding::expiresIn(TimePoint now) const {
  if (expires <= now) return 0;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(expires - now).count();
  return uint32_t((ms + 999) / 1000);
}

std::string_view Binding::instanceUrn() const {
  std::string_view s = instance;
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
  return s;
}

bool Binding::onDeviceFlow() const {
  return peer.transport != sip::TransportType::Udp && path.empty();
}

DeviceRoute routeTo(const Binding& b) {
  DeviceRoute r;
  r.requestUri = b.contact;
  r.next = b.peer;
  if (b.path.empty()) return r;
  bool ok = sip::forEachListElement(b.path, [&](std::string_view e) {
    r.routes.emplace_back(sip::text::trim(e));
    return true;
  });
  if (!ok || r.routes.empty()) {
    r.routes.clear(); // checked when stored; a row edited by hand falls back to the flow
    return r;
  }
  auto first = sip::parseNameAddr(r.routes.front());
  if (!first) return r;
  auto hop = sip::resolveNumeric(first->uri);
  if (!hop) return r; // a host name: the proxy that sent the REGISTER
  if (hop->transport == b.peer.transport && hop->remote == b.peer.remote) return r;
  r.next = *hop;
  r.next.local = {};
  return r;
}

std::vector<store::Migration> Registrar::migrations() {
  return {{"registrar", 1, "bindings", R"SQL(
CREATE TABLE registrar_bindings(
  id INTEGER PRIMARY KEY,
  sip_user TEXT NOT NULL,
  contact TEXT NOT NULL,
  instance TEXT NOT NULL DEFAULT '',
  reg_id INTEGER NOT NULL DEFAULT 0,
  q INTEGER NOT NULL DEFAULT -1,
  call_id TEXT NOT NULL,
  cseq INTEGER NOT NULL,
  path TEXT NOT NULL DEFAULT '',
  user_agent TEXT NOT NULL DEFAULT '',
  transport INTEGER NOT NULL,
  remote TEXT NOT NULL,
  local TEXT NOT NULL,
  expires_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL);
CREATE INDEX registrar_bindings_user ON registrar_bindings(sip_user);
)SQL"}};
}

Result<void> Registrar::adoptLegacyBindings(store::Database& from, store::Database& to) {
  auto t = from.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                      "name = 'registrar_bindings'");
  if (!t) return t.error();
  if (t->empty()) return {};
  static constexpr const char* kColumns = "id, sip_user, contact, instance, reg_id, q, call_id, "
                                          "cseq, path, user_agent, transport, remote, local, "
                                          "expires_ms, updated_ms";
  auto rows = from.query(std::string("SELECT ") + kColumns + " FROM registrar_bindings");
  if (!rows) return rows.error();
  auto present = to.query("SELECT COUNT(*) FROM registrar_bindings");
  if (!present) return present.error();
  if (store::asInt(present->at(0).at(0)).value_or(0) == 0) {
    auto c = to.transaction([&]() -> Result<void> {
      for (const auto& row : *rows)
        if (auto e = to.exec(std::string("INSERT INTO registrar_bindings(") + kColumns +
                                 ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                                 "?13, ?14, ?15)",
                             row);
            !e)
          return e;
      return {};
    });
    if (!c) return c;
  }
  log()->info("moved {} bindings to their own database file", rows->size());
  return from.transaction([&]() -> Result<void> {
    if (auto d = from.exec("DROP TABLE registrar_bindings"); !d) return d;
    return from.exec("DELETE FROM schema_migrations WHERE module = 'registrar'");
  });
}

Registrar::Registrar(store::Database& db, Timers& timers, RegistrarConfig config)
    : db_(db), timers_(timers), config_(std::move(config)) {
  config_.maxExpires = std::max(config_.maxExpires, config_.minExpires);
  config_.defaultExpires =
      std::clamp(config_.defaultExpires, config_.minExpires, config_.maxExpires);
  sip::DigestServerConfig dc;
  dc.realm = config_.realm;
  dc.algorithms = config_.algorithms;
  dc.nonceLifetime = config_.nonceLifetime;
  digest_ = std::make_unique<sip::DigestServer>(dc, timers_);
  throttle_ = config_.throttle;
  if (!throttle_) {
    sip::AuthThrottleConfig tc;
    tc.maxFailures = config_.maxAuthFailures;
    tc.failureWindow = config_.failureWindow;
    tc.cooldown = config_.cooldown;
    tc.maxTrackedSources = config_.maxTrackedSources;
    ownThrottle_ = std::make_unique<sip::AuthThrottle>(tc, timers_);
    throttle_ = ownThrottle_.get();
  }
}

Registrar::~Registrar() {
  if (sweepTimer_) timers_.cancel(sweepTimer_);
  if (flushTimer_) timers_.cancel(flushTimer_);
  flushTimer_ = 0;
  // What is pending goes to the store before the connection can close; a write blocked by a lock
  // held elsewhere is not retried forever on the way out.
  stopping_ = true;
  flush();
}

Result<std::unique_ptr<Registrar>> Registrar::open(store::Database& db, Timers& timers,
                                                   RegistrarConfig config) {
  std::unique_ptr<Registrar> r(new Registrar(db, timers, std::move(config)));
  if (auto l = r->load(); !l) return l.error();
  return r;
}

int64_t Registrar::wallNowMs() const {
  if (config_.wallClockMs) return config_.wallClockMs();
  return timers_.wallMs();
}

// Bindings survive a restart; the flows they came over do not. Connection ids are per process,
// so a stored id could name another device's connection now: it is dropped, and requests go to
// the remote address (a phone behind NAT is reachable again after its next REGISTER).
Result<void> Registrar::load() {
  int64_t wall = wallNowMs();
  if (auto d = db_.exec("DELETE FROM registrar_bindings WHERE expires_ms <= ?1", {wall}); !d)
    return d;
  auto rows = db_.query(
      "SELECT id, sip_user, contact, instance, reg_id, q, call_id, cseq, path, user_agent, "
      "transport, remote, local, expires_ms, updated_ms FROM registrar_bindings "
      "ORDER BY updated_ms, id");
  if (!rows) return rows.error();
  if (auto maxId = db_.query("SELECT MAX(id) FROM registrar_bindings"); maxId && !maxId->empty())
    nextId_ = store::asInt(maxId->at(0).at(0)).value_or(0) + 1;
  TimePoint now = timers_.now();
  std::vector<int64_t> bad;
  size_t flowless = 0;
  for (const auto& row : *rows) {
    if (row.size() != 15) continue;
    auto id = store::asInt(row[0]);
    auto user = store::asText(row[1]);
    auto contact = store::asText(row[2]);
    auto instance = store::asText(row[3]);
    auto regId = store::asInt(row[4]);
    auto q = store::asInt(row[5]);
    auto callId = store::asText(row[6]);
    auto cseq = store::asInt(row[7]);
    auto path = store::asText(row[8]);
    auto ua = store::asText(row[9]);
    auto transport = store::asInt(row[10]);
    auto remote = store::asText(row[11]);
    auto local = store::asText(row[12]);
    auto expiresMs = store::asInt(row[13]);
    auto updatedMs = store::asInt(row[14]);
    if (!id) continue;
    nextId_ = std::max(nextId_, *id + 1);
    std::optional<sip::TransportType> tt = transport ? transportFromCode(*transport) : std::nullopt;
    std::optional<SockAddr> ra = remote ? SockAddr::parse(*remote) : std::nullopt;
    std::optional<SockAddr> la = local ? SockAddr::parse(*local) : std::nullopt;
    if (!user || user->empty() || !contact || !sip::parseUri(*contact) || !instance || !regId ||
        *regId < 0 || *regId > UINT32_MAX || !q || *q < -1 || *q > 1000 || !callId || !cseq ||
        *cseq < 0 || *cseq > UINT32_MAX || !path || !ua || !tt || !ra || !la || !expiresMs ||
        !updatedMs) {
      log()->warn("dropping unreadable binding row {}", *id);
      bad.push_back(*id);
      continue;
    }
    Binding b;
    b.id = *id;
    b.sipUser = *user;
    b.contact = *contact;
    b.instance = *instance;
    b.regId = uint32_t(*regId);
    b.q = int16_t(*q);
    b.callId = *callId;
    b.cseq = uint32_t(*cseq);
    b.path = *path;
    b.userAgent = *ua;
    b.peer.transport = *tt;
    b.peer.remote = *ra;
    b.peer.local = *la;
    b.peer.connection = 0;
    // A wall clock that jumped back must not stretch a binding beyond the longest we grant.
    int64_t left = std::min<int64_t>(*expiresMs - wall, int64_t(config_.maxExpires) * 1000);
    b.expires = now + Duration(left);
    b.updatedMs = *updatedMs;
    b.sequence = ++nextSequence_;
    if (b.onDeviceFlow()) {
      // Its TCP/TLS connection died with the previous process; a new one to the device's
      // ephemeral port would go nowhere. The device re-registers over a new connection.
      bad.push_back(b.id);
      ++flowless;
      continue;
    }
    users_[b.sipUser].push_back(std::move(b));
    ++count_;
    g_bindingsAdded.inc();
  }
  if (flowless)
    log()->info("dropped {} bindings whose TCP/TLS connection ended with the previous run",
                flowless);
  for (int64_t id : bad) (void)db_.exec("DELETE FROM registrar_bindings WHERE id = ?1", {id});
  TimePoint earliest = TimePoint::max();
  for (auto& [user, list] : users_) {
    std::sort(list.begin(), list.end(),
              [](const Binding& a, const Binding& b) { return a.sequence > b.sequence; });
    for (const auto& b : list) {
      earliest = std::min(earliest, b.expires);
      expiry_.emplace(b.expires, user);
    }
  }
  if (earliest != TimePoint::max()) armSweep(earliest);
  if (count_) log()->info("loaded {} bindings of {} users", count_, users_.size());
  return {};
}

// ---- REGISTER --------------------------------------------------------------------------------

void Registrar::reply(sip::TransactionLayer& txl, sip::ServerTxId tx, int status,
                      std::string_view reason, uint32_t retryAfter) {
  auto b = txl.responseBuilder(tx, status, reason);
  if (!b) return;
  if (status == 423)
    b->header(sip::HeaderId::MinExpires, std::to_string(config_.minExpires)); // RFC 3261 §20.23
  if (retryAfter) b->header("Retry-After", std::to_string(retryAfter));
  (void)txl.respond(tx, b->finish());
}

void Registrar::challenge(sip::TransactionLayer& txl, sip::ServerTxId tx, bool stale) {
  g_challenges.inc();
  auto b = txl.responseBuilder(tx, 401);
  if (!b) return;
  for (const auto& c : digest_->challenges(stale)) b->header(sip::HeaderId::WwwAuthenticate, c);
  (void)txl.respond(tx, b->finish());
}

void Registrar::handleRegister(sip::TransactionLayer& txl, sip::ServerTxId tx,
                               const sip::Message& request) {
  if (request.method() != sip::Method::Register) {
    reply(txl, tx, 405);
    return;
  }
  // Checked before anything that depends on the user, so a throttled source learns nothing.
  const SockAddr& source = request.source().remote;
  if (auto left = throttle_->refuse(source, "REGISTER", sip::claimedUser(request))) {
    g_throttled.inc();
    reply(txl, tx, 403, sip::kAuthBlockedReason, *left);
    return;
  }

  // RFC 3261 §10.3 step 3: authenticate. Credentials for other realms are skipped (§22.3).
  // Unknown users and wrong passwords take the same path inside DigestServer::verify and get
  // the same fresh challenge, so user names cannot be enumerated.
  sip::DigestLookup lookup = [this](std::string_view user, std::string_view,
                                    sip::DigestAlgorithm base) -> std::optional<sip::DigestSecret> {
    if (!config_.credentials) return std::nullopt;
    const DeviceCredentials* c = config_.credentials(user);
    if (!c) return std::nullopt;
    const std::string* ha1 = base == sip::DigestAlgorithm::Sha256 ? &c->ha1Sha256
                             : base == sip::DigestAlgorithm::Md5  ? &c->ha1Md5
                                                                  : nullptr;
    if (!ha1 || ha1->empty()) return std::nullopt;
    return sip::DigestSecret{sip::DigestSecret::Kind::Ha1, *ha1};
  };
  std::optional<sip::DigestVerdict> verdict;
  for (const auto& h : request.headers()) {
    if (h.id != sip::HeaderId::Authorization) continue;
    auto creds = sip::parseAuthParams(h.value);
    if (!creds) continue;
    auto v = digest_->verify(*creds, request.methodName(), request.body(), lookup);
    if (v.status == sip::DigestStatus::WrongRealm) continue;
    verdict = std::move(v);
    break;
  }
  if (!verdict) return challenge(txl, tx, false);
  if (verdict->wantsStaleChallenge()) return challenge(txl, tx, true);
  if (!verdict->ok()) {
    if (verdict->status == sip::DigestStatus::WrongResponse) {
      g_authFailures.inc();
      throttle_->failed(source, "REGISTER", verdict->username, sip::AuthFailure::WrongResponse);
    }
    return challenge(txl, tx, false);
  }
  // RFC 3261 §22.4, RFC 2617 §3.2.2.5: the digest-uri must name the Request-URI, else the
  // response could have been computed for another request.
  if (!sip::digestUriMatches(verdict->uri, request.requestUri())) {
    g_authFailures.inc();
    throttle_->failed(source, "REGISTER", verdict->username, sip::AuthFailure::UriMismatch);
    return reply(txl, tx, 400, sip::kDigestUriMismatchReason);
  }

  // RFC 3261 §10.3 steps 4-5: the authenticated device login may register its own AoR only.
  const sip::Uri& to = request.to().uri;
  std::optional<std::string> aorUser;
  if (to.scheme == sip::UriScheme::Sip || to.scheme == sip::UriScheme::Sips)
    aorUser = sip::unescape(to.user);
  if (!aorUser || aorUser->empty() || *aorUser != verdict->username) {
    g_authFailures.inc();
    log()->info("REGISTER from {}: user {} may not register {}", request.source().toString(),
                sip::logSafe(verdict->username), sip::logSafe(to.text));
    return reply(txl, tx, 403);
  }
  throttle_->accepted();

  auto next = plan(request, *aorUser);
  if (!next) {
    g_rejected.inc();
    return reply(txl, tx, next.error().code, next.error().message);
  }
  if (auto c = commit(*aorUser, std::move(next.value())); !c) {
    // RFC 3261 §10.3 step 7: a failed commit fails the request with 500 and changes nothing.
    log()->error("saving the bindings of {} failed: {}", *aorUser, c.error().message);
    g_rejected.inc();
    return reply(txl, tx, 500);
  }
  g_registered.inc();
  replyOk(txl, tx, request, *aorUser);
}

Result<std::vector<Binding>> Registrar::plan(const sip::Message& req, const std::string& user) {
  const TimePoint now = timers_.now();
  const int64_t wall = wallNowMs();
  const uint64_t firstSequence = nextSequence_ + 1;
  auto touched = [&](const Binding& b) { return b.sequence >= firstSequence; };

  std::vector<Binding> next;
  size_t current = 0;
  if (auto it = users_.find(user); it != users_.end()) {
    current = it->second.size();
    for (const auto& b : it->second)
      if (b.expires > now) next.push_back(b);
  }

  const std::string_view callId = req.callId();
  const uint32_t cseq = req.cseq().seq;
  if (callId.size() > kMaxCallIdLength) return makeError(400, "Call-ID Too Long");
  // RFC 3261 §10.3 step 7: the same Call-ID with a CSeq not higher than the stored one is an old
  // or reordered request: it must not undo a newer one.
  auto outOfOrder = [&](const Binding& b) { return b.callId == callId && cseq <= b.cseq; };

  std::optional<uint32_t> headerExpires;
  if (auto e = req.header(sip::HeaderId::Expires)) headerExpires = parseExpiresValue(*e);

  if (req.contactIsStar()) {
    // RFC 3261 §10.3 step 6: "*" only alone and only with Expires: 0; it removes every binding
    // whose Call-ID differs or whose CSeq is lower.
    if (!req.contacts().empty() || !headerExpires || *headerExpires != 0)
      return makeError(400, "Invalid Wildcard Contact");
    for (const auto& b : next)
      if (outOfOrder(b)) return makeError(kOutOfOrderStatus, "Out of Order CSeq");
    next.clear();
    return next;
  }
  if (req.contacts().size() > config_.maxContactsPerRequest)
    return makeError(403, "Too Many Contacts");

  // RFC 3327 §5.3: the registrar stores the Path with the binding.
  std::string path;
  for (const auto& h : req.headers()) {
    if (h.id != sip::HeaderId::Path) continue;
    if (!path.empty()) path += ", ";
    path += h.value;
  }
  if (path.size() > kMaxPathLength || !printable(path)) return makeError(400, "Bad Path");
  std::string userAgent;
  if (auto ua = req.header(sip::HeaderId::UserAgent); ua && printable(*ua))
    userAgent = truncateUtf8(*ua, kMaxUserAgentLength);

  for (const auto& c : req.contacts()) {
    if (c.uri.scheme != sip::UriScheme::Sip && c.uri.scheme != sip::UriScheme::Sips)
      return makeError(400, "Unsupported Contact URI Scheme");
    if (c.uri.text.size() > kMaxContactLength || !printable(c.uri.text))
      return makeError(400, "Bad Contact");

    // RFC 3261 §10.3 step 7: the contact's expires parameter, else the Expires header, else the
    // registrar's default.
    uint32_t expires = config_.defaultExpires;
    if (auto p = c.param("expires"))
      expires = parseExpiresValue(*p);
    else if (headerExpires)
      expires = *headerExpires;
    if (expires > 0 && expires < config_.minExpires) return makeError(423, "Interval Too Brief");
    expires = std::min(expires, config_.maxExpires);
    // A phone behind NAT over UDP: its refreshes are what keeps the NAT's binding open.
    if (expires > 0 && config_.natExpires > 0 && behindNat(c.uri, req.source(), path))
      expires = std::min(expires, config_.natExpires);

    // RFC 5626 §4.1: +sip.instance is a quoted URN in angle brackets; reg-id counts only with it.
    std::string_view instance;
    uint32_t regId = 0;
    if (auto inst = c.param("+sip.instance")) {
      if (inst->empty() || inst->size() > kMaxInstanceLength || !quotable(*inst))
        return makeError(400, "Bad +sip.instance");
      instance = *inst;
      if (auto rid = c.param("reg-id")) {
        auto v = sip::parseUint(*rid);
        if (!v || v.value() == 0) return makeError(400, "Bad reg-id");
        regId = v.value();
      }
    }
    int16_t q = -1;
    if (auto qp = c.param("q")) q = parseQ(*qp).value_or(-1);

    // The binding this contact updates: same instance and reg-id (RFC 5626 §6), else the same
    // URI by the comparison rules of RFC 3261 §19.1.4.
    std::vector<size_t> matches;
    for (size_t i = 0; i < next.size(); ++i) {
      bool same = !instance.empty() && next[i].instance == instance && next[i].regId == regId;
      if (!same) {
        auto u = sip::parseUri(next[i].contact);
        same = u && sip::uriEquals(*u, c.uri);
      }
      if (same) matches.push_back(i);
    }
    for (size_t i : matches)
      if (!touched(next[i]) && outOfOrder(next[i]))
        return makeError(kOutOfOrderStatus, "Out of Order CSeq");
    // Extra matches (the instance moved to a URI another binding had) go; the first is updated.
    for (size_t k = matches.size(); k-- > 1;) next.erase(next.begin() + ptrdiff_t(matches[k]));
    if (expires == 0) {
      if (!matches.empty()) next.erase(next.begin() + ptrdiff_t(matches[0]));
      continue;
    }
    if (matches.empty()) {
      next.emplace_back();
      next.back().sipUser = user;
    }
    Binding& b = matches.empty() ? next.back() : next[matches[0]];
    b.contact = std::string(c.uri.text);
    b.instance = std::string(instance);
    b.regId = regId;
    b.q = q;
    b.callId = std::string(callId);
    b.cseq = cseq;
    b.path = path;
    b.userAgent = userAgent;
    b.peer = req.source();
    b.expires = now + std::chrono::seconds(expires);
    b.updatedMs = wall;
    b.sequence = ++nextSequence_;
  }

  // Per-user cap: a phone that re-registers from ever new ports without an instance id would
  // otherwise pile up bindings; the least recently refreshed one goes first.
  while (next.size() > config_.maxBindingsPerUser) {
    auto victim = next.end();
    for (auto it = next.begin(); it != next.end(); ++it)
      if (!touched(*it) && (victim == next.end() || it->sequence < victim->sequence)) victim = it;
    if (victim == next.end()) return makeError(403, "Too Many Contacts");
    next.erase(victim);
  }
  if (next.size() > current && count_ + (next.size() - current) > config_.maxBindings)
    return makeError(503, "Registrar Full");

  std::sort(next.begin(), next.end(),
            [](const Binding& a, const Binding& b) { return a.sequence > b.sequence; });
  return next;
}

Result<void> Registrar::commit(const std::string& user, std::vector<Binding> next) {
  auto it = users_.find(user);
  static const std::vector<Binding> kNone;
  const std::vector<Binding>& cur = it == users_.end() ? kNone : it->second;
  const TimePoint now = timers_.now();
  auto kept = [&](int64_t id) {
    return id != 0 &&
           std::any_of(next.begin(), next.end(), [&](const Binding& b) { return b.id == id; });
  };

  // Listeners hear about changes of the binding set or of a flow, not about refreshes.
  bool changed = false;
  size_t added = 0, removed = 0;
  for (const auto& b : next) {
    auto old = b.id == 0 ? cur.end() : std::find_if(cur.begin(), cur.end(), [&](const Binding& o) {
      return o.id == b.id;
    });
    if (old == cur.end()) {
      ++added;
      changed = true;
    } else if (old->contact != b.contact || !sameFlow(old->peer, b.peer) || old->expires <= now) {
      changed = true;
    }
  }
  for (const auto& b : cur)
    if (!kept(b.id)) {
      ++removed;
      changed = true;
    }
  g_bindingsAdded.inc(added);
  g_bindingsRemoved.inc(removed);
  count_ = count_ + added - removed;

  track(user, cur, next);
  TimePoint earliest = TimePoint::max();
  for (const auto& b : next) earliest = std::min(earliest, b.expires);
  if (next.empty()) {
    if (it != users_.end()) users_.erase(it);
  } else if (it != users_.end()) {
    it->second = std::move(next);
  } else {
    users_.emplace(user, std::move(next));
  }
  writeIfFull();
  if (earliest != TimePoint::max()) armSweep(earliest);
  if (changed) notify(user);
  return {};
}

void Registrar::track(const std::string& user, const std::vector<Binding>& cur,
                      std::vector<Binding>& next) {
  for (const auto& b : cur) {
    flowIndexRemove(b);
    bool kept =
        std::any_of(next.begin(), next.end(), [&](const Binding& n) { return n.id == b.id; });
    if (!kept) queueWrite(b.id, user);
  }
  for (auto& b : next) {
    if (b.id == 0) b.id = nextId_++;
    flowIndexAdd(b);
    queueWrite(b.id, user);
    expiry_.emplace(b.expires, user);
  }
  compactExpiry();
}

void Registrar::flowIndexAdd(const Binding& b) {
  if (b.peer.connection == 0) return;
  ++byFlow_[b.peer.connection][b.sipUser];
}

void Registrar::flowIndexRemove(const Binding& b) {
  if (b.peer.connection == 0) return;
  auto f = byFlow_.find(b.peer.connection);
  if (f == byFlow_.end()) return;
  auto u = f->second.find(b.sipUser);
  if (u != f->second.end() && --u->second == 0) f->second.erase(u);
  if (f->second.empty()) byFlow_.erase(f);
}

// ---- Write-behind ----------------------------------------------------------------------------

void Registrar::queueWrite(int64_t id, const std::string& sipUser) {
  auto [it, added] = pending_.try_emplace(id, sipUser);
  if (!added && it->second != sipUser) it->second = sipUser;
  armFlush();
}

void Registrar::writeIfFull() {
  if (pending_.size() >= config_.writeBehindBatch && !writing_) startWrite(false);
}

void Registrar::armFlush() {
  if (flushTimer_ || pending_.empty()) return;
  flushTimer_ = timers_.after(config_.writeBehindInterval, [this] {
    flushTimer_ = 0;
    startWrite(false);
  });
}

void Registrar::startWrite(bool wait) {
  if (writing_) {
    // One batch at a time, in order; the next one goes when this one is written.
    if (wait && config_.storage) config_.storage->drain();
    if (writing_) {
      armFlush();
      return;
    }
  }
  if (pending_.empty()) return;
  std::vector<std::pair<int64_t, PendingWrite>> batch;
  batch.reserve(pending_.size());
  int64_t wallNow = wallNowMs();
  TimePoint now = timers_.now();
  for (const auto& [id, user] : pending_) {
    PendingWrite w;
    if (auto u = users_.find(user); u != users_.end()) {
      for (const Binding& b : u->second) {
        if (b.id != id) continue;
        w.binding = b;
        w.expiresMs =
            wallNow +
            std::chrono::duration_cast<std::chrono::milliseconds>(b.expires - now).count();
        break;
      }
    }
    batch.emplace_back(id, std::move(w));
  }
  pending_.clear();
  if (!config_.storage) {
    if (auto r = writeBatch(db_, batch); !r)
      log()->warn("writing {} binding changes failed: {}", batch.size(), r.error().message);
    return;
  }
  writing_ = true;
  config_.storage->post([this, batch = std::move(batch)] {
    // Retried until written: a lock held by another process or a full disk must not lose the
    // batch while the loop goes on answering from memory. Given up only on shutdown.
    for (int attempt = 0;; ++attempt) {
      auto r = writeBatch(db_, batch);
      if (r) break;
      if (attempt == 0 || attempt % 50 == 0)
        log()->warn("writing {} binding changes failed (retrying): {}", batch.size(),
                    r.error().message);
      if (stopping_) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    writing_ = false;
  });
  if (wait) config_.storage->drain();
}

void Registrar::flush() {
  startWrite(true);
  startWrite(true); // what collected while the previous batch was being written
}

Result<void> Registrar::writeBatch(store::Database& db,
                                   const std::vector<std::pair<int64_t, PendingWrite>>& batch) {
  return db.transaction([&]() -> Result<void> {
    for (const auto& [id, w] : batch) {
      if (!w.binding) {
        if (auto d = db.exec("DELETE FROM registrar_bindings WHERE id = ?1", {id}); !d) return d;
        continue;
      }
      const Binding& b = *w.binding;
      auto e =
          db.exec("INSERT OR REPLACE INTO registrar_bindings(id, sip_user, contact, instance, "
                  "reg_id, q, call_id, cseq, path, user_agent, transport, remote, local, "
                  "expires_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                  "?11, ?12, ?13, ?14, ?15)",
                  {id, b.sipUser, b.contact, b.instance, int64_t(b.regId), int64_t(b.q), b.callId,
                   int64_t(b.cseq), b.path, b.userAgent, transportCode(b.peer.transport),
                   b.peer.remote.toString(), b.peer.local.toString(), w.expiresMs, b.updatedMs});
      if (!e) return e;
    }
    return {};
  });
}

void Registrar::replyOk(sip::TransactionLayer& txl, sip::ServerTxId tx, const sip::Message& request,
                        const std::string& sipUser) {
  auto b = txl.responseBuilder(tx, 200);
  if (!b) return;
  const TimePoint now = timers_.now();
  bool gruu = false;
  if (config_.offerGruu)
    for (const auto& h : request.headers())
      if (h.id == sip::HeaderId::Supported)
        sip::forEachListElement(h.value, [&](std::string_view e) {
          if (sip::text::iequals(e, "gruu")) gruu = true;
          return !gruu;
        });
  bool path = false;
  for (const auto& h : request.headers())
    if (h.id == sip::HeaderId::Supported)
      sip::forEachListElement(h.value, [&](std::string_view e) {
        if (sip::text::iequals(e, "path")) path = true;
        return !path;
      });

  // RFC 3261 §10.3 step 8: every current binding with its remaining time.
  // Straight from the user's list (no copies): one string per Contact, reserved once.
  const sip::Uri& to = request.to().uri;
  auto it = users_.find(sipUser);
  static const std::vector<Binding> kNone;
  std::string v;
  for (const auto& bd : it == users_.end() ? kNone : it->second) {
    if (bd.expires <= now) continue;
    v.clear();
    v.reserve(bd.contact.size() + bd.instance.size() + 64);
    v.append("<").append(bd.contact).append(">;expires=").append(std::to_string(bd.expiresIn(now)));
    if (bd.q >= 0) v += ";q=" + formatQ(bd.q);
    if (!bd.instance.empty()) {
      v.append(";+sip.instance=\"").append(bd.instance).append("\"");
      if (bd.regId) v += ";reg-id=" + std::to_string(bd.regId);
      // RFC 5627 §5.4: the public GRUU is the AoR with the instance id in "gr".
      if (gruu && !bd.instanceUrn().empty()) {
        v += ";pub-gruu=\"" + std::string(to.schemeText) + ":" + std::string(to.user) + "@" +
             std::string(to.host);
        if (to.port) v += ":" + std::to_string(to.port);
        v += ";gr=" + std::string(bd.instanceUrn()) + "\"";
      }
    }
    b->header(sip::HeaderId::Contact, v);
  }
  // RFC 3327 §5.3: the Path is returned to a UA that supports it.
  if (path) b->copyHeaders(request, sip::HeaderId::Path);
  if (gruu) b->header(sip::HeaderId::Supported, "gruu");
  if (auto d = httpDate(wallNowMs()); !d.empty()) b->header(sip::HeaderId::Date, d);
  (void)txl.respond(tx, b->finish());
}

// ---- Expiry ----------------------------------------------------------------------------------

void Registrar::armSweep(TimePoint due) {
  if (sweepTimer_ && sweepDue_ <= due) return;
  if (sweepTimer_) timers_.cancel(sweepTimer_);
  TimePoint now = timers_.now();
  sweepDue_ = std::max(due, now);
  sweepTimer_ =
      timers_.after(std::chrono::duration_cast<Duration>(sweepDue_ - now) + Duration(1), [this] {
        sweepTimer_ = 0;
        sweep();
      });
}

void Registrar::sweep() {
  const TimePoint now = timers_.now();
  std::vector<std::string> due;
  while (!expiry_.empty() && expiry_.top().first <= now) {
    due.push_back(expiry_.top().second);
    expiry_.pop();
  }
  std::sort(due.begin(), due.end());
  due.erase(std::unique(due.begin(), due.end()), due.end());
  std::vector<std::string> changed;
  size_t gone = 0;
  for (const auto& user : due) {
    auto it = users_.find(user);
    if (it == users_.end()) continue; // a stale entry: removed meanwhile
    auto& list = it->second;
    size_t before = list.size();
    for (const auto& b : list)
      if (b.expires <= now) {
        flowIndexRemove(b);
        queueWrite(b.id, user);
      }
    std::erase_if(list, [&](const Binding& b) { return b.expires <= now; });
    if (list.size() == before) continue; // refreshed since: a stale entry
    gone += before - list.size();
    changed.push_back(user);
    if (list.empty()) users_.erase(it);
  }
  count_ -= gone;
  g_bindingsRemoved.inc(gone);
  writeIfFull();
  // Many bindings expiring close together are taken in one pass at most every granularity.
  if (!expiry_.empty()) armSweep(std::max(expiry_.top().first, now + config_.sweepGranularity));
  for (const auto& u : changed) notify(u);
}

void Registrar::compactExpiry() {
  // Every refresh adds an entry; rebuild when the stale ones outnumber the live ones.
  if (expiry_.size() <= 2 * count_ + 1024) return;
  std::vector<ExpiryEntry> live;
  live.reserve(count_);
  for (const auto& [user, list] : users_)
    for (const auto& b : list) live.emplace_back(b.expires, user);
  expiry_ = decltype(expiry_)(std::greater<>(), std::move(live));
}

void Registrar::removeUser(std::string_view sipUser) {
  std::string user(sipUser);
  if (users_.find(user) == users_.end()) return;
  if (auto r = commit(user, {}); !r)
    log()->error("removing the bindings of {} failed: {}", user, r.error().message);
}

size_t Registrar::flowClosed(sip::ConnectionId id) {
  if (id == 0) return 0;
  auto f = byFlow_.find(id);
  if (f == byFlow_.end()) return 0;
  std::vector<std::string> users;
  users.reserve(f->second.size());
  for (const auto& [user, n] : f->second) users.push_back(user);
  byFlow_.erase(f);
  std::vector<std::string> changed;
  size_t gone = 0;
  for (const auto& user : users) {
    auto it = users_.find(user);
    if (it == users_.end()) continue;
    auto& list = it->second;
    size_t before = list.size();
    for (auto& b : list) {
      if (b.peer.connection != id) continue;
      if (b.onDeviceFlow())
        queueWrite(b.id, user);
      else
        b.peer.connection = 0; // over an edge proxy: reconnect to the proxy when needed
    }
    std::erase_if(list, [&](const Binding& b) { return b.peer.connection == id; });
    if (list.size() == before) continue;
    gone += before - list.size();
    changed.push_back(user);
    if (list.empty()) users_.erase(it);
  }
  writeIfFull();
  if (gone == 0) return 0;
  count_ -= gone;
  g_bindingsRemoved.inc(gone);
  g_flowLost.inc(gone);
  for (const auto& u : changed) {
    log()->info("connection {} closed: bindings of {} removed", id, sip::logSafe(u));
    notify(u);
  }
  return gone;
}

void Registrar::notify(const std::string& sipUser) {
  // A listener may register another listener; iterate over a snapshot of the count.
  for (size_t i = 0, n = listeners_.size(); i < n; ++i) listeners_[i](sipUser);
}

// ---- Queries ---------------------------------------------------------------------------------

std::vector<Binding> Registrar::lookup(std::string_view sipUser) const {
  std::vector<Binding> out;
  auto it = users_.find(std::string(sipUser));
  if (it == users_.end()) return out;
  const TimePoint now = timers_.now();
  for (const auto& b : it->second)
    if (b.expires > now) out.push_back(b);
  return out;
}

std::optional<Binding> Registrar::lookupGruu(std::string_view sipUser,
                                             std::string_view instanceUrn) const {
  if (instanceUrn.empty()) return std::nullopt;
  auto it = users_.find(std::string(sipUser));
  if (it == users_.end()) return std::nullopt;
  const TimePoint now = timers_.now();
  for (const auto& b : it->second)
    if (b.expires > now && b.instanceUrn() == instanceUrn) return b;
  return std::nullopt;
}

std::optional<Binding> Registrar::lookupGruu(std::string_view gruu) const {
  auto uri = sip::parseUri(gruu);
  if (!uri || (uri->scheme != sip::UriScheme::Sip && uri->scheme != sip::UriScheme::Sips))
    return std::nullopt;
  auto gr = uri->param("gr");
  if (!gr || gr->empty()) return std::nullopt;
  auto user = sip::unescape(uri->user);
  auto urn = sip::unescape(*gr);
  if (!user || !urn) return std::nullopt;
  return lookupGruu(*user, *urn);
}

std::vector<Binding> Registrar::all() const {
  std::vector<const std::string*> names;
  names.reserve(users_.size());
  for (const auto& [user, list] : users_) names.push_back(&user);
  std::sort(names.begin(), names.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  std::vector<Binding> out;
  out.reserve(count_);
  for (const std::string* n : names)
    for (auto& b : lookup(*n)) out.push_back(std::move(b));
  return out;
}

} // namespace verbund::pbx
