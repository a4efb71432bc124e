// Registrar scripts (RFC 3261 §10.3, RFC 5626 instance ids, RFC 5627 GRUU) in simulated time: a
// real TransactionLayer over a fake transport, REGISTER requests injected as bytes, responses read
// back from what the fake transport captured.
#include "pbx/registrar/registrar.h"
#include "unit/sip/transaction/test_support.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <map>
#include <regex>
#include <thread>
#include <unistd.h>

namespace verbund::pbx {
namespace {

using sip::testing::FakeTransport;
using sip::testing::peer;
using namespace std::chrono_literals;

constexpr const char* kRealm = "pbx.example";
constexpr int64_t kWall0 = 1'700'000'000'000;

// Forwards every request to the registrar, as the node's dispatcher does for REGISTER.
class RegistrarTu final : public sip::TransactionUser {
public:
  Registrar* registrar = nullptr;
  sip::TransactionLayer* txl = nullptr;
  void onRequest(sip::ServerTxId tx, const sip::Message& r) override {
    registrar->handleRegister(*txl, tx, r);
  }
  void onAck(const sip::Message&) override {}
  void onCancel(sip::ServerTxId, const sip::Message&) override {}
};

struct Device {
  std::string user;
  std::string password;
  sip::Peer from;
  std::string contact; // whole Contact header value
  std::string callId;
  std::string instance; // "<urn:uuid:...>" or empty
  std::string algorithm = "SHA-256";
  std::string challenge; // cached WWW-Authenticate value
  TimePoint challengeAt{};
  sip::DigestClient client;
};

std::vector<std::string> headerValues(const sip::Message& m, sip::HeaderId id) {
  std::vector<std::string> out;
  for (const auto& h : m.headers())
    if (h.id == id) out.emplace_back(h.value);
  return out;
}

// Replaces what differs between two otherwise identical exchanges: nonces, tags, branches.
std::string normalize(std::string s) {
  s = std::regex_replace(s, std::regex("nonce=\"[^\"]*\""), "nonce=\"N\"");
  s = std::regex_replace(s, std::regex("tag=[^;\r\n>]*"), "tag=T");
  s = std::regex_replace(s, std::regex("branch=[^;\r\n]*"), "branch=B");
  return s;
}

class RegistrarTest : public ::testing::Test {
protected:
  void SetUp() override {
    users["alice"] = "alice-secret";
    users["bob"] = "bob-secret";
    config.realm = kRealm;
    config.credentials = [this](std::string_view u) -> const DeviceCredentials* {
      auto it = users.find(std::string(u));
      if (it == users.end()) return nullptr;
      DeviceCredentials& c = credentialStore[it->first]; // kept: the registrar gets a reference
      c.sipUser = it->first;
      c.ha1Md5 = *sip::digestHa1(sip::DigestAlgorithm::Md5, it->first, kRealm, it->second);
      c.ha1Sha256 = *sip::digestHa1(sip::DigestAlgorithm::Sha256, it->first, kRealm, it->second);
      return &c;
    };
    config.wallClockMs = [this] {
      return kWall0 +
             std::chrono::duration_cast<std::chrono::milliseconds>(timers.now().time_since_epoch())
                 .count();
    };
    txl = std::make_unique<sip::TransactionLayer>(transport, timers, tu);
    tu.txl = txl.get();
  }
  void TearDown() override {
    registrar.reset();
    db.reset();
    if (!dbFile.empty()) std::filesystem::remove_all(std::filesystem::path(dbFile).parent_path());
  }

  void open(const std::string& path = ":memory:") {
    registrar.reset();
    db.reset();
    auto d = store::Database::open(path, Registrar::migrations());
    ASSERT_TRUE(d) << d.error().message;
    db = std::move(d.value());
    auto r = Registrar::open(*db, timers, config);
    ASSERT_TRUE(r) << r.error().message;
    registrar = std::move(r.value());
    tu.registrar = registrar.get();
    registrar->onChange([this](const std::string& u) { changes.push_back(u); });
  }
  std::string tempDb() {
    auto dir = std::filesystem::temp_directory_path() /
               ("verbund-registrar-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    dbFile = (dir / "verbund.db").string();
    return dbFile;
  }

  Device device(const std::string& user, const char* remote, const std::string& instance = {}) {
    Device d;
    d.user = user;
    d.password = users.count(user) ? users[user] : "whatever";
    d.from = peer(sip::TransportType::Udp, remote);
    d.contact = "<sip:" + user + "@" + d.from.remote.toString() + ">";
    if (!instance.empty()) d.contact += ";+sip.instance=\"" + instance + "\"";
    d.callId = "reg-" + user + "-" + std::to_string(++calls) + "@" + d.from.remote.hostString();
    d.instance = instance;
    return d;
  }

  std::string registerText(const Device& d, uint32_t cseq, const std::string& contactLines,
                           const std::string& extra, const std::string& authorization,
                           const std::string& toUser) {
    std::string t = "REGISTER sip:" + std::string(kRealm) + " SIP/2.0\r\n";
    t += "Via: SIP/2.0/UDP " + d.from.remote.toString() + ";branch=" + sip::newBranch() +
         ";rport\r\n";
    t += "Max-Forwards: 70\r\n";
    t += "From: <sip:" + d.user + "@" + kRealm + ">;tag=ft-" + d.user + "\r\n";
    t += "To: <sip:" + toUser + "@" + kRealm + ">\r\n";
    t += "Call-ID: " + d.callId + "\r\n";
    t += "CSeq: " + std::to_string(cseq) + " REGISTER\r\n";
    t += contactLines;
    t += extra;
    if (!authorization.empty()) t += "Authorization: " + authorization + "\r\n";
    t += "User-Agent: test-phone/1.0\r\n";
    t += "Content-Length: 0\r\n\r\n";
    return t;
  }

  // Injects a request and returns the response the registrar sent.
  sip::MessagePtr inject(const std::string& text, const sip::Peer& from) {
    auto r = sip::parseMessage(text);
    EXPECT_TRUE(r.ok()) << r.error.reason << "\n" << text;
    if (!r.ok()) return nullptr;
    r.message->setSource(from);
    size_t before = transport.sent.size();
    txl->receive(std::move(r.message));
    EXPECT_EQ(transport.sent.size(), before + 1) << "expected exactly one response";
    if (transport.sent.size() != before + 1) return nullptr;
    return transport.last();
  }

  // Picks the challenge of the device's algorithm from a 401.
  void takeChallenge(Device& d, const sip::Message& r) {
    for (const auto& c : headerValues(r, sip::HeaderId::WwwAuthenticate))
      if (c.find("algorithm=" + d.algorithm + ",") != std::string::npos ||
          c.ends_with("algorithm=" + d.algorithm))
        d.challenge = c;
    d.challengeAt = timers.now();
  }

  // An authenticated REGISTER. Fetches a challenge first (with its own Call-ID, so it cannot
  // touch the bindings) when the device has none, and renews it once when the registrar
  // challenges again.
  sip::MessagePtr reg(Device& d, uint32_t cseq, std::string extra = "Expires: 3600\r\n",
                      std::optional<std::string> contactLines = std::nullopt,
                      std::optional<std::string> toUser = std::nullopt) {
    std::string contacts = contactLines ? *contactLines : "Contact: " + d.contact + "\r\n";
    std::string to = toUser ? *toUser : d.user;
    for (int attempt = 0; attempt < 2; ++attempt) {
      // Like a phone, fetch a new nonce before the old one runs out (DigestServer: 300 s).
      if (d.challenge.empty() || timers.now() - d.challengeAt > 250s) {
        Device probe = d;
        probe.callId = "probe-" + d.callId;
        auto r = inject(registerText(probe, 1, contacts, extra, "", to), d.from);
        if (!r || r->statusCode() != 401) return r;
        takeChallenge(d, *r);
      }
      auto ch = sip::parseAuthParams(d.challenge);
      EXPECT_TRUE(ch);
      auto auth =
          d.client.authorize(*ch, d.user, d.password, "REGISTER", std::string("sip:") + kRealm);
      EXPECT_TRUE(auth);
      auto r = inject(registerText(d, cseq, contacts, extra, auth.value(), to), d.from);
      if (!r || r->statusCode() != 401 || attempt == 1 ||
          std::string(r->raw()).find("stale=true") == std::string::npos)
        return r;
      takeChallenge(d, *r);
      ++cseq; // a new request: the same CSeq again would be a merged request (482)
    }
    return nullptr;
  }

  size_t rows() {
    registrar->flush();
    auto r = db->query("SELECT COUNT(*) FROM registrar_bindings");
    EXPECT_TRUE(r);
    return size_t(store::asInt(r->at(0).at(0)).value_or(-1));
  }

  std::map<std::string, std::string> users;
  std::map<std::string, DeviceCredentials> credentialStore;
  RegistrarConfig config;
  ManualTimers timers;
  FakeTransport transport;
  RegistrarTu tu;
  std::unique_ptr<sip::TransactionLayer> txl;
  std::unique_ptr<store::StorageThread> storage; // outlives the registrar (TearDown)
  std::unique_ptr<store::Database> db;
  std::unique_ptr<Registrar> registrar;
  std::vector<std::string> changes;
  std::string dbFile;
  int calls = 0;
};

TEST_F(RegistrarTest, ChallengesWithSha256AndMd5ThenAcceptsSha256) {
  open();
  Device d = device("alice", "198.51.100.7:5062");
  auto first =
      inject(registerText(d, 1, "Contact: " + d.contact + "\r\n", "", "", "alice"), d.from);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->statusCode(), 401);
  auto challenges = headerValues(*first, sip::HeaderId::WwwAuthenticate);
  ASSERT_EQ(challenges.size(), 2u);
  EXPECT_NE(challenges[0].find("algorithm=SHA-256"), std::string::npos);
  EXPECT_NE(challenges[1].find("algorithm=MD5"), std::string::npos);
  EXPECT_NE(challenges[0].find("realm=\"pbx.example\""), std::string::npos);
  EXPECT_TRUE(registrar->lookup("alice").empty());

  takeChallenge(d, *first);
  auto ok = reg(d, 2);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->statusCode(), 200);
  ASSERT_EQ(ok->contacts().size(), 1u);
  EXPECT_EQ(ok->contacts()[0].uri.text, "sip:alice@198.51.100.7:5062");
  EXPECT_EQ(ok->contacts()[0].param("expires"), "3600");
  EXPECT_TRUE(ok->header(sip::HeaderId::Date));
  auto b = registrar->lookup("alice");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].contact, "sip:alice@198.51.100.7:5062");
  EXPECT_EQ(b[0].peer.remote.toString(), "198.51.100.7:5062");
  EXPECT_EQ(b[0].peer.transport, sip::TransportType::Udp);
  EXPECT_EQ(b[0].userAgent, "test-phone/1.0");
  EXPECT_EQ(b[0].cseq, 2u);
  EXPECT_EQ(b[0].expiresIn(timers.now()), 3600u);
  EXPECT_EQ(registrar->size(), 1u);
  EXPECT_EQ(changes, std::vector<std::string>{"alice"});
  EXPECT_EQ(rows(), 1u);
}

TEST_F(RegistrarTest, AcceptsMd5) {
  open();
  Device d = device("bob", "198.51.100.8:5060");
  d.algorithm = "MD5";
  auto ok = reg(d, 1);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->statusCode(), 200);
  EXPECT_EQ(registrar->lookup("bob").size(), 1u);
}

TEST_F(RegistrarTest, UnknownUserAndWrongPasswordAreIndistinguishable) {
  open();
  // Probes as an enumeration tool sends them: same source, Call-ID, tags and Contact; only the
  // user name differs (it is echoed in From and To, so the comparison masks it).
  Device known = device("bob", "203.0.113.9:5060");
  Device unknown = known;
  unknown.user = "zed";
  known.password = "wrong-guess";
  unknown.password = "wrong-guess";
  auto masked = [](const sip::Message& m) {
    return std::regex_replace(normalize(std::string(m.raw())), std::regex("bob|zed"), "USER");
  };

  auto noAuthKnown = inject(
      registerText(known, 1, "Contact: " + known.contact + "\r\n", "", "", "bob"), known.from);
  auto noAuthUnknown = inject(
      registerText(unknown, 1, "Contact: " + known.contact + "\r\n", "", "", "zed"), known.from);
  ASSERT_TRUE(noAuthKnown && noAuthUnknown);
  EXPECT_EQ(masked(*noAuthKnown), masked(*noAuthUnknown));

  takeChallenge(known, *noAuthKnown);
  takeChallenge(unknown, *noAuthUnknown);
  auto answer = [&](Device& d) {
    auto ch = sip::parseAuthParams(d.challenge);
    auto auth = d.client.authorize(*ch, d.user, d.password, "REGISTER", "sip:pbx.example");
    return inject(
        registerText(d, 2, "Contact: " + known.contact + "\r\n", "", auth.value(), d.user), d.from);
  };
  uint64_t failures = sip::testing::counter("verbund_pbx_registrar_auth_failures_total");
  auto wrong = answer(known);
  auto missing = answer(unknown);
  ASSERT_TRUE(wrong && missing);
  EXPECT_EQ(wrong->statusCode(), 401);
  EXPECT_EQ(missing->statusCode(), 401);
  EXPECT_EQ(masked(*wrong), masked(*missing));
  // Fresh challenges, not stale ones.
  EXPECT_EQ(std::string(wrong->raw()).find("stale"), std::string::npos);
  EXPECT_EQ(sip::testing::counter("verbund_pbx_registrar_auth_failures_total"), failures + 2);
  EXPECT_EQ(registrar->size(), 0u);
}

TEST_F(RegistrarTest, AuthenticatedUserMustOwnTheAor) {
  open();
  Device bob = device("bob", "198.51.100.8:5060");
  auto r = reg(bob, 1, "Expires: 3600\r\n", std::nullopt, std::string("alice"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->statusCode(), 403);
  EXPECT_EQ(registrar->size(), 0u);
}

TEST_F(RegistrarTest, DigestUriMustMatchRequestUri) {
  open();
  Device d = device("alice", "198.51.100.7:5062");
  auto first =
      inject(registerText(d, 1, "Contact: " + d.contact + "\r\n", "", "", "alice"), d.from);
  takeChallenge(d, *first);
  auto ch = sip::parseAuthParams(d.challenge);
  auto auth = d.client.authorize(*ch, "alice", "alice-secret", "REGISTER", "sip:elsewhere.example");
  auto r = inject(registerText(d, 2, "Contact: " + d.contact + "\r\n", "", auth.value(), "alice"),
                  d.from);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->statusCode(), 400);
  EXPECT_EQ(registrar->size(), 0u);
}

TEST_F(RegistrarTest, ExpiredNonceGetsStaleChallenge) {
  open();
  Device d = device("alice", "198.51.100.7:5062");
  ASSERT_EQ(reg(d, 1)->statusCode(), 200);
  timers.advance(301s); // past the nonce lifetime; the binding still lives
  auto ch = sip::parseAuthParams(d.challenge);
  auto auth = d.client.authorize(*ch, "alice", "alice-secret", "REGISTER", "sip:pbx.example");
  auto r = inject(registerText(d, 2, "Contact: " + d.contact + "\r\n", "Expires: 3600\r\n",
                               auth.value(), "alice"),
                  d.from);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->statusCode(), 401);
  EXPECT_NE(std::string(r->raw()).find("stale=true"), std::string::npos);
}

TEST_F(RegistrarTest, SeveralDevicesNewestFirst) {
  open();
  Device desk = device("alice", "198.51.100.7:5062");
  Device soft = device("alice", "198.51.100.20:5070");
  soft.from = peer(sip::TransportType::Tcp, "198.51.100.20:5070", 42);
  soft.contact = "<sip:alice@198.51.100.20:5070;transport=tcp>;q=0.5";
  ASSERT_EQ(reg(desk, 1)->statusCode(), 200);
  timers.advance(1s);
  auto ok = reg(soft, 1);
  ASSERT_EQ(ok->statusCode(), 200);
  ASSERT_EQ(ok->contacts().size(), 2u);
  EXPECT_EQ(ok->contacts()[0].uri.text, "sip:alice@198.51.100.20:5070;transport=tcp");
  EXPECT_EQ(ok->contacts()[0].param("q"), "0.5");
  EXPECT_EQ(ok->contacts()[1].param("expires"), "3599");

  auto b = registrar->lookup("alice");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].peer.connection, 42u);
  EXPECT_EQ(b[0].peer.transport, sip::TransportType::Tcp);
  EXPECT_EQ(b[0].q, 500);
  EXPECT_EQ(b[1].contact, "sip:alice@198.51.100.7:5062");

  Device bob = device("bob", "198.51.100.8:5060");
  ASSERT_EQ(reg(bob, 1)->statusCode(), 200);
  auto all = registrar->all();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].sipUser, "alice");
  EXPECT_EQ(all[2].sipUser, "bob");
  EXPECT_EQ(registrar->size(), 3u);
  EXPECT_EQ(rows(), 3u);
}

TEST_F(RegistrarTest, RefreshKeepsOneBindingAndDoesNotNotify) {
  open();
  Device d = device("alice", "198.51.100.7:5062");
  ASSERT_EQ(reg(d, 1, "Expires: 600\r\n")->statusCode(), 200);
  timers.advance(500s);
  EXPECT_EQ(registrar->lookup("alice")[0].expiresIn(timers.now()), 100u);
  auto r = reg(d, 2, "Expires: 600\r\n");
  ASSERT_EQ(r->statusCode(), 200);
  auto b = registrar->lookup("alice");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].expiresIn(timers.now()), 600u);
  EXPECT_EQ(b[0].cseq, 2u);
  EXPECT_EQ(changes.size(), 1u); // the first registration only
  timers.advance(200s);          // past the first expiry: the refresh holds
  EXPECT_EQ(registrar->lookup("alice").size(), 1u);
}

TEST_F(RegistrarTest, ExpiryTimerRemovesBindingAndNotifies) {
  open();
  Device d = device("alice", "198.51.100.7:5062");
  ASSERT_EQ(reg(d, 1, "Expires: 60\r\n")->statusCode(), 200);
  EXPECT_EQ(rows(), 1u);
  changes.clear();
  timers.advance(59s);
  EXPECT_EQ(registrar->size(), 1u);
  timers.advance(2s);
  EXPECT_TRUE(registrar->lookup("alice").empty());
  EXPECT_EQ(registrar->size(), 0u);
  EXPECT_EQ(changes, std::vector<std::string>{"alice"});
  EXPECT_EQ(rows(), 0u);
}

TEST_F(RegistrarTest, ExpiresZeroRemovesOneContactAndWildcardRemovesAll) {
  open();
  Device a = device("alice", "198.51.100.7:5062");
  Device b = device("alice", "198.51.100.9:5062");
  ASSERT_EQ(reg(a, 1)->statusCode(), 200);
  ASSERT_EQ(reg(b, 1)->statusCode(), 200);
  // Contact expires parameter beats the Expires header.
  auto r = reg(a, 2, "Expires: 3600\r\n", "Contact: " + a.contact + ";expires=0\r\n");
  ASSERT_EQ(r->statusCode(), 200);
  ASSERT_EQ(r->contacts().size(), 1u);
  EXPECT_EQ(registrar->lookup("alice").size(), 1u);
  EXPECT_EQ(registrar->lookup("alice")[0].contact, "sip:alice@198.51.100.9:5062");

  ASSERT_EQ(reg(a, 3)->statusCode(), 200);
  EXPECT_EQ(registrar->size(), 2u);
  // RFC 3261 §10.3 step 6: "*" needs Expires: 0 and no other Contact.
  EXPECT_EQ(reg(a, 4, "Expires: 10\r\n", std::string("Contact: *\r\n"))->statusCode(), 400);
  EXPECT_EQ(reg(a, 5, "", std::string("Contact: *\r\n"))->statusCode(), 400);
  EXPECT_EQ(
      reg(a, 6, "Expires: 0\r\n", "Contact: *\r\nContact: " + a.contact + "\r\n")->statusCode(),
      400);
  EXPECT_EQ(registrar->size(), 2u);
  changes.clear();
  auto all = reg(a, 7, "Expires: 0\r\n", std::string("Contact: *\r\n"));
  ASSERT_EQ(all->statusCode(), 200);
  EXPECT_TRUE(all->contacts().empty());
  EXPECT_EQ(registrar->size(), 0u);
  EXPECT_EQ(changes, std::vector<std::string>{"alice"});
  EXPECT_EQ(rows(), 0u);
}

TEST_F(RegistrarTest, QueryWithoutContactListsBindings) {
  open();
  Device a = device("alice", "198.51.100.7:5062");
  ASSERT_EQ(reg(a, 1)->statusCode(), 200);
  Device q = device("alice", "198.51.100.50:5062");
  auto r = reg(q, 1, "", std::string());
  ASSERT_EQ(r->statusCode(), 200);
  EXPECT_EQ(r->contacts().size(), 1u);
  EXPECT_EQ(registrar->size(), 1u);
}

TEST_F(RegistrarTest, IntervalTooBriefAndClampToMaximum) {
  open();
  Device d = device("alice", "198.51.100.7:5062");
  auto brief = reg(d, 1, "Expires: 30\r\n");
  ASSERT_EQ(brief->statusCode(), 423);
  EXPECT_EQ(brief->header(sip::HeaderId::MinExpires), "60");
  EXPECT_EQ(registrar->size(), 0u);
  auto longer = reg(d, 2, "Expires: 86400\r\n");
  ASSERT_EQ(longer->statusCode(), 200);
  EXPECT_EQ(longer->contacts()[0].param("expires"), "3600");
  // RFC 3261 §20.10: a malformed value counts as 3600 (then clamped as usual). (A malformed
  // Expires header does not get this far: the parser refuses the request.)
  auto junk = reg(d, 3, "", "Contact: " + d.contact + ";expires=soon\r\n");
  ASSERT_EQ(junk->statusCode(), 200);
  EXPECT_EQ(junk->contacts()[0].param("expires"), "3600");
  // No expiry at all: the default.
  auto none = reg(d, 4, "");
  EXPECT_EQ(none->contacts()[0].param("expires"), "3600");
}

// A phone behind NAT over UDP (private Contact, REGISTER from the NAT's public address): the
// binding follows the address the REGISTER came from and gets the short NAT expiry, so that the
// phone's refreshes keep the NAT's binding open.
TEST_F(RegistrarTest, NatedUdpContactGetsShortExpiryAndFollowsTheSource) {
  users["carol"] = "carol-secret";
  open();
  Device d = device("alice", "198.51.100.7:40001");
  d.contact = "<sip:alice@192.168.1.20:5060>";
  auto r = reg(d, 1, "Expires: 3600\r\n");
  ASSERT_EQ(r->statusCode(), 200);
  EXPECT_EQ(r->contacts()[0].param("expires"), "30");
  auto b = registrar->lookup("alice");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(routeTo(b[0]).next.remote.toString(), "198.51.100.7:40001");
  EXPECT_EQ(routeTo(b[0]).requestUri, "sip:alice@192.168.1.20:5060");
  // A phone on a private LAN that reaches the node directly (Contact = source) is not NATed.
  Device lan = device("bob", "192.168.1.30:5060");
  EXPECT_EQ(reg(lan, 1, "Expires: 3600\r\n")->contacts()[0].param("expires"), "3600");
  // Over TCP the connection is the keep-alive (CRLF pings), no short expiry.
  Device tcp = device("carol", "198.51.100.8:40002");
  tcp.from.transport = sip::TransportType::Tcp;
  tcp.contact = "<sip:carol@10.0.0.5:5060;transport=tcp>";
  EXPECT_EQ(reg(tcp, 1, "Expires: 3600\r\n")->contacts()[0].param("expires"), "3600");
}

TEST_F(RegistrarTest, NatExpiryCanBeSwitchedOff) {
  config.natExpires = 0;
  open();
  Device d = device("alice", "198.51.100.7:40001");
  d.contact = "<sip:alice@10.1.1.1:5060>";
  EXPECT_EQ(reg(d, 1, "Expires: 600\r\n")->contacts()[0].param("expires"), "600");
}

TEST_F(RegistrarTest, CallIdAndCSeqOrdering) {
  open();
  Device d = device("alice", "198.51.100.7:5062");
  ASSERT_EQ(reg(d, 10)->statusCode(), 200);
  // Same Call-ID, CSeq not higher: an old request must not undo a newer one.
  EXPECT_EQ(reg(d, 9, "Expires: 0\r\n")->statusCode(), 400);
  EXPECT_EQ(reg(d, 8, "Expires: 0\r\n", std::string("Contact: *\r\n"))->statusCode(), 400);
  // The same CSeq once the transactions are gone (Timer J); while they live the transaction
  // layer answers a repeated CSeq with 482 (RFC 3261 §8.2.2.2) before the registrar sees it.
  timers.advance(33s);
  EXPECT_EQ(reg(d, 10, "Expires: 0\r\n")->statusCode(), 400);
  EXPECT_EQ(registrar->size(), 1u);
  // A different Call-ID replaces the binding whatever its CSeq.
  Device rebooted = d;
  rebooted.callId = "after-reboot@198.51.100.7";
  ASSERT_EQ(reg(rebooted, 1)->statusCode(), 200);
  auto b = registrar->lookup("alice");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].callId, "after-reboot@198.51.100.7");
  EXPECT_EQ(b[0].cseq, 1u);
  // And the next higher CSeq of that Call-ID removes it.
  EXPECT_EQ(reg(rebooted, 2, "Expires: 0\r\n")->statusCode(), 200);
  EXPECT_EQ(registrar->size(), 0u);
}

TEST_F(RegistrarTest, InstanceFromNewPortReplacesOldBinding) {
  open();
  const std::string inst = "<urn:uuid:00000000-0000-1000-8000-00a0c91e6bf6>";
  Device first = device("alice", "198.51.100.7:5062", inst);
  Device other = device("alice", "198.51.100.30:5062"); // another phone of alice
  ASSERT_EQ(reg(first, 1)->statusCode(), 200);
  ASSERT_EQ(reg(other, 1)->statusCode(), 200);
  // The phone restarts behind its NAT: new port, new Call-ID, same instance.
  Device again = device("alice", "198.51.100.7:40111", inst);
  changes.clear();
  auto r = reg(again, 1);
  ASSERT_EQ(r->statusCode(), 200);
  ASSERT_EQ(r->contacts().size(), 2u);
  EXPECT_EQ(r->contacts()[0].param("+sip.instance"), inst);
  auto b = registrar->lookup("alice");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].contact, "sip:alice@198.51.100.7:40111");
  EXPECT_EQ(b[0].instance, inst);
  EXPECT_EQ(b[0].peer.remote.toString(), "198.51.100.7:40111");
  EXPECT_EQ(b[1].contact, "sip:alice@198.51.100.30:5062");
  EXPECT_EQ(changes, std::vector<std::string>{"alice"});
  EXPECT_EQ(rows(), 2u);
}

TEST_F(RegistrarTest, GruuNotOfferedByDefaultButResolvable) {
  open();
  const std::string inst = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";
  Device d = device("alice", "198.51.100.7:5062", inst);
  d.contact += ";reg-id=1";
  auto r = reg(d, 1, "Expires: 3600\r\nSupported: replaces, outbound, gruu\r\n");
  ASSERT_EQ(r->statusCode(), 200);
  ASSERT_EQ(r->contacts().size(), 1u);
  EXPECT_FALSE(r->contacts()[0].param("pub-gruu"));
  EXPECT_EQ(r->contacts()[0].param("reg-id"), "1");
  auto g = registrar->lookupGruu(
      "sip:alice@pbx.example;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->contact, "sip:alice@198.51.100.7:5062");
  EXPECT_FALSE(registrar->lookupGruu("sip:alice@pbx.example;gr=urn:uuid:other"));
  EXPECT_FALSE(registrar->lookupGruu("sip:alice@pbx.example"));
  EXPECT_FALSE(registrar->lookupGruu("not a uri"));
}

TEST_F(RegistrarTest, GruuOfferedWhenConfigured) {
  config.offerGruu = true;
  open();
  const std::string inst = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";
  Device d = device("alice", "198.51.100.7:5062", inst);
  auto r = reg(d, 1, "Expires: 3600\r\nSupported: gruu\r\n");
  ASSERT_EQ(r->statusCode(), 200);
  auto pub = r->contacts()[0].param("pub-gruu");
  ASSERT_TRUE(pub);
  EXPECT_EQ(*pub, "sip:alice@pbx.example;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
  auto g = registrar->lookupGruu(*pub);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->peer.remote.toString(), "198.51.100.7:5062");
  // Without "Supported: gruu" no GRUU is handed out.
  Device plain = device("bob", "198.51.100.8:5060", "<urn:uuid:1>");
  EXPECT_FALSE(reg(plain, 1)->contacts()[0].param("pub-gruu"));
}

TEST_F(RegistrarTest, BindingsSurviveRestartAndExpiredOnesAreDropped) {
  std::string path = tempDb();
  open(path);
  Device a = device("alice", "198.51.100.7:5062", "<urn:uuid:a>");
  a.from = peer(sip::TransportType::Tls, "198.51.100.7:5061", 7);
  Device b = device("bob", "198.51.100.8:5060");
  ASSERT_EQ(reg(a, 1, "Expires: 3600\r\nPath: <sip:edge.example;lr>\r\n")->statusCode(), 200);
  ASSERT_EQ(reg(b, 1, "Expires: 60\r\n")->statusCode(), 200);
  registrar.reset();
  db.reset();

  timers.advance(120s); // bob's binding runs out while the node is down
  open(path);
  EXPECT_EQ(registrar->size(), 1u);
  EXPECT_TRUE(registrar->lookup("bob").empty());
  auto l = registrar->lookup("alice");
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].contact, "sip:alice@198.51.100.7:5062");
  EXPECT_EQ(l[0].instance, "<urn:uuid:a>");
  EXPECT_EQ(l[0].path, "<sip:edge.example;lr>");
  EXPECT_EQ(l[0].peer.transport, sip::TransportType::Tls);
  EXPECT_EQ(l[0].peer.remote.toString(), "198.51.100.7:5061");
  EXPECT_EQ(l[0].peer.connection, 0u); // connections do not survive a restart
  EXPECT_EQ(l[0].expiresIn(timers.now()), 3480u);
  EXPECT_EQ(l[0].cseq, 1u);
  EXPECT_EQ(rows(), 1u);

  // The CSeq rule still holds after the restart, and the expiry timer is armed again. (The
  // restarted node has a new nonce key: the phone needs a fresh challenge.)
  a.challenge.clear();
  EXPECT_EQ(reg(a, 1, "Expires: 0\r\n")->statusCode(), 400);
  timers.advance(3481s);
  EXPECT_EQ(registrar->size(), 0u);
  EXPECT_EQ(rows(), 0u);
}

TEST_F(RegistrarTest, ThrottlesAfterRepeatedFailuresThenRecovers) {
  config.maxAuthFailures = 10;
  config.failureWindow = 60s;
  config.cooldown = 300s;
  open();
  Device attacker = device("bob", "203.0.113.66:5060");
  attacker.password = "guess";
  uint64_t throttled = sip::testing::counter("verbund_pbx_registrar_throttled_total");
  for (int i = 0; i < 10; ++i) {
    auto r = reg(attacker, uint32_t(i + 1));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->statusCode(), 401) << i;
  }
  // Blocked now: the same 403 for a known user with the right password and an unknown user.
  Device rightPassword = device("bob", "203.0.113.66:5999");
  auto r1 = inject(
      registerText(rightPassword, 1, "Contact: " + rightPassword.contact + "\r\n", "", "", "bob"),
      rightPassword.from);
  Device nobody = device("nobody", "203.0.113.66:5999");
  auto r2 = inject(registerText(nobody, 1, "Contact: " + nobody.contact + "\r\n", "", "", "nobody"),
                   nobody.from);
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->statusCode(), 403);
  EXPECT_EQ(r2->statusCode(), 403);
  EXPECT_EQ(sip::testing::counter("verbund_pbx_registrar_throttled_total"), throttled + 2);
  // Another source is not affected.
  Device alice = device("alice", "198.51.100.7:5062");
  EXPECT_EQ(reg(alice, 1)->statusCode(), 200);

  timers.advance(301s);
  Device back = device("bob", "203.0.113.66:5060");
  EXPECT_EQ(reg(back, 1)->statusCode(), 200);
}

// The node hands one policy to the registrar and its INVITE/SUBSCRIBE gate: failures of other
// methods block REGISTER too, and the refusal says for how long.
TEST_F(RegistrarTest, SharedThrottleBlocksRegisterAfterInviteFailures) {
  sip::AuthThrottleConfig tc;
  tc.maxFailures = 3;
  tc.cooldown = 120s;
  sip::AuthThrottle shared(tc, timers);
  config.throttle = &shared;
  open();
  Device bob = device("bob", "203.0.113.67:5060");
  for (int i = 0; i < 3; ++i)
    shared.failed(bob.from.remote, "INVITE", "bob", sip::AuthFailure::WrongResponse);
  auto r = reg(bob, 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->statusCode(), 403);
  EXPECT_EQ(r->reason(), sip::kAuthBlockedReason);
  EXPECT_EQ(r->header("Retry-After"), "120");
  EXPECT_EQ(registrar->throttleEntries(), 1u);
  timers.advance(121s);
  Device back = device("bob", "203.0.113.67:5060");
  EXPECT_EQ(reg(back, 1)->statusCode(), 200);
}

// RFC 3261 §22.4: a response computed for another Request-URI is refused and counts as a failed
// authentication.
TEST_F(RegistrarTest, DigestUriMustNameTheRequestUri) {
  config.maxAuthFailures = 2;
  open();
  Device bob = device("bob", "203.0.113.68:5060");
  Device probe = device("bob", "203.0.113.68:5060");
  auto challenge =
      inject(registerText(probe, 1, "Contact: " + bob.contact + "\r\n", "", "", "bob"), bob.from);
  ASSERT_TRUE(challenge && challenge->statusCode() == 401);
  takeChallenge(bob, *challenge);
  auto ch = sip::parseAuthParams(bob.challenge);
  ASSERT_TRUE(ch);
  for (int i = 0; i < 2; ++i) {
    auto auth = bob.client.authorize(*ch, "bob", bob.password, "REGISTER", "sip:other.example");
    ASSERT_TRUE(auth);
    auto r = inject(registerText(bob, uint32_t(i + 2), "Contact: " + bob.contact + "\r\n", "",
                                 auth.value(), "bob"),
                    bob.from);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->statusCode(), 400);
    EXPECT_EQ(r->reason(), sip::kDigestUriMismatchReason);
  }
  EXPECT_EQ(reg(bob, 10)->statusCode(), 403); // two mismatches blocked the source
}

TEST_F(RegistrarTest, FailuresOutsideTheWindowDoNotAddUp) {
  config.maxAuthFailures = 3;
  config.failureWindow = 60s;
  open();
  Device attacker = device("bob", "203.0.113.66:5060");
  attacker.password = "guess";
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(reg(attacker, uint32_t(i + 1))->statusCode(), 401);
    timers.advance(i % 2 ? 61s : 1s); // at most two failures per window
  }
}

TEST_F(RegistrarTest, ThrottleTableIsBounded) {
  config.maxTrackedSources = 4;
  open();
  for (int i = 0; i < 20; ++i) {
    Device d = device("bob", ("203.0.113." + std::to_string(i + 1) + ":5060").c_str());
    d.password = "guess";
    EXPECT_EQ(reg(d, 1)->statusCode(), 401);
  }
  EXPECT_EQ(registrar->throttleEntries(), 4u);
}

TEST_F(RegistrarTest, RejectsBadContacts) {
  open();
  Device d = device("alice", "198.51.100.7:5062");
  EXPECT_EQ(reg(d, 1, "Expires: 60\r\n", std::string("Contact: <tel:+4930123>\r\n"))->statusCode(),
            400);
  EXPECT_EQ(reg(d, 2, "Expires: 60\r\n",
                std::string("Contact: <sip:a@198.51.100.7>;+sip.instance=\"\"\r\n"))
                ->statusCode(),
            400);
  EXPECT_EQ(reg(d, 3, "Expires: 60\r\n",
                std::string("Contact: <sip:a@198.51.100.7>;+sip.instance=\"<urn:x>\";reg-id=x\r\n"))
                ->statusCode(),
            400);
  std::string many;
  for (int i = 0; i < 11; ++i)
    many += "Contact: <sip:a@198.51.100.7:" + std::to_string(6000 + i) + ">\r\n";
  EXPECT_EQ(reg(d, 4, "Expires: 60\r\n", many)->statusCode(), 403);
  EXPECT_EQ(registrar->size(), 0u);
}

TEST_F(RegistrarTest, PerUserCapDropsTheOldestBinding) {
  config.maxBindingsPerUser = 3;
  open();
  for (int i = 0; i < 5; ++i) {
    Device d = device("alice", ("198.51.100.7:" + std::to_string(5060 + i)).c_str());
    ASSERT_EQ(reg(d, 1)->statusCode(), 200);
    timers.advance(1s);
  }
  auto b = registrar->lookup("alice");
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].peer.remote.port, 5064);
  EXPECT_EQ(b[2].peer.remote.port, 5062);
  EXPECT_EQ(registrar->size(), 3u);
  EXPECT_EQ(rows(), 3u);
}

TEST_F(RegistrarTest, RemoveUserDropsAllBindings) {
  open();
  Device a = device("alice", "198.51.100.7:5062");
  ASSERT_EQ(reg(a, 1)->statusCode(), 200);
  changes.clear();
  registrar->removeUser("alice");
  EXPECT_EQ(registrar->size(), 0u);
  EXPECT_EQ(changes, std::vector<std::string>{"alice"});
  EXPECT_EQ(rows(), 0u);
  registrar->removeUser("nobody");
  EXPECT_EQ(changes.size(), 1u);
}

TEST_F(RegistrarTest, PathIsStoredAndReturnedToUasThatSupportIt) {
  open();
  Device d = device("alice", "198.51.100.7:5062");
  auto r = reg(d, 1, "Expires: 600\r\nSupported: path\r\nPath: <sip:p1.example;lr>\r\n");
  ASSERT_EQ(r->statusCode(), 200);
  EXPECT_EQ(r->header(sip::HeaderId::Path), "<sip:p1.example;lr>");
  EXPECT_EQ(registrar->lookup("alice")[0].path, "<sip:p1.example;lr>");
}

TEST_F(RegistrarTest, ClosedFlowRemovesTheDeviceBindingEverywhere) {
  open();
  Device a = device("alice", "198.51.100.7:40001");
  a.from = peer(sip::TransportType::Tcp, "198.51.100.7:40001", 7);
  Device b = device("alice", "198.51.100.8:5060"); // a second device of alice, over UDP
  ASSERT_EQ(reg(a, 1)->statusCode(), 200);
  ASSERT_EQ(reg(b, 1)->statusCode(), 200);
  ASSERT_EQ(registrar->lookup("alice").size(), 2u);
  EXPECT_TRUE(registrar->lookup("alice")[1].onDeviceFlow());
  changes.clear();

  EXPECT_EQ(registrar->flowClosed(99), 0u); // another connection: nothing happens
  EXPECT_EQ(registrar->flowClosed(0), 0u);
  EXPECT_TRUE(changes.empty());

  EXPECT_EQ(registrar->flowClosed(7), 1u);
  auto l = registrar->lookup("alice");
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].peer.transport, sip::TransportType::Udp);
  EXPECT_EQ(registrar->size(), 1u);
  EXPECT_EQ(rows(), 1u);                                 // written to the store too
  EXPECT_EQ(changes, std::vector<std::string>{"alice"}); // presence hears about it
  EXPECT_EQ(registrar->flowClosed(7), 0u);
}

TEST_F(RegistrarTest, DeviceFlowBindingsDoNotSurviveARestart) {
  std::string path = tempDb();
  open(path);
  Device a = device("alice", "198.51.100.7:40001");
  a.from = peer(sip::TransportType::Tcp, "198.51.100.7:40001", 7);
  Device b = device("bob", "198.51.100.8:5060");
  ASSERT_EQ(reg(a, 1)->statusCode(), 200);
  ASSERT_EQ(reg(b, 1)->statusCode(), 200);
  registrar.reset();
  db.reset();
  open(path);
  EXPECT_TRUE(registrar->lookup("alice").empty()); // its connection ended with the process
  EXPECT_EQ(registrar->lookup("bob").size(), 1u);
  EXPECT_EQ(rows(), 1u);
}

TEST_F(RegistrarTest, PathBindingsRouteThroughTheEdgeProxyAndOutliveItsConnection) {
  open();
  // The REGISTER came from the edge proxy over its TCP connection 9.
  Device a = device("alice", "192.0.2.10:5070");
  a.from = peer(sip::TransportType::Tcp, "192.0.2.10:5070", 9);
  a.contact = "<sip:alice@10.0.0.5:40002;transport=tcp>";
  ASSERT_EQ(reg(a, 1,
                "Expires: 600\r\nPath: <sip:192.0.2.10:5070;transport=tcp;lr>\r\n"
                "Path: <sip:core.example;lr>\r\n")
                ->statusCode(),
            200);
  auto l = registrar->lookup("alice");
  ASSERT_EQ(l.size(), 1u);
  EXPECT_FALSE(l[0].onDeviceFlow());
  auto r = routeTo(l[0]);
  EXPECT_EQ(r.requestUri, "sip:alice@10.0.0.5:40002;transport=tcp");
  EXPECT_EQ(r.routes, (std::vector<std::string>{"<sip:192.0.2.10:5070;transport=tcp;lr>",
                                                "<sip:core.example;lr>"}));
  EXPECT_EQ(r.next, a.from); // the proxy's connection, not the Contact

  // The proxy's connection closes: the binding stays, the next request reconnects to the proxy.
  changes.clear();
  EXPECT_EQ(registrar->flowClosed(9), 0u);
  l = registrar->lookup("alice");
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].peer.connection, 0u);
  EXPECT_EQ(routeTo(l[0]).next.remote.toString(), "192.0.2.10:5070");
  EXPECT_TRUE(changes.empty());
}

TEST_F(RegistrarTest, RouteGoesToTheFirstPathHopNotTheSource) {
  Binding b;
  b.contact = "sip:bob@10.0.0.6:5060";
  b.peer = peer(sip::TransportType::Udp, "192.0.2.20:5060");
  auto plain = routeTo(b);
  EXPECT_TRUE(plain.routes.empty());
  EXPECT_EQ(plain.next, b.peer);
  EXPECT_EQ(plain.requestUri, b.contact);

  b.path = "<sip:192.0.2.30:5080;lr>, <sip:192.0.2.31;lr>";
  auto r = routeTo(b);
  EXPECT_EQ(r.routes.size(), 2u);
  EXPECT_EQ(r.next.transport, sip::TransportType::Udp);
  EXPECT_EQ(r.next.remote.toString(), "192.0.2.30:5080");
  EXPECT_EQ(r.next.connection, 0u);

  b.path = "<sip:edge.example;lr>"; // a name: the proxy the REGISTER came from
  EXPECT_EQ(routeTo(b).next, b.peer);
}

TEST_F(RegistrarTest, WorksWithTheRealDirectory) {
  auto migrations = Directory::migrations();
  for (auto& m : Registrar::migrations()) migrations.push_back(m);
  auto d = store::Database::open(":memory:", migrations);
  ASSERT_TRUE(d) << d.error().message;
  db = std::move(d.value());
  auto dir = Directory::open(*db, kRealm);
  ASSERT_TRUE(dir) << dir.error().message;
  UserInput in;
  in.extension = "201";
  in.displayName = "Carol";
  in.sipPassword = "carol-secret-1";
  auto carol = (*dir)->createUser(in);
  ASSERT_TRUE(carol) << carol.error().message;
  config.credentials = [&](std::string_view u) { return (*dir)->credentials(u); };
  auto r = Registrar::open(*db, timers, config);
  ASSERT_TRUE(r);
  registrar = std::move(r.value());
  tu.registrar = registrar.get();

  Device sha = device(carol->sipUser, "198.51.100.7:5062");
  sha.password = "carol-secret-1";
  EXPECT_EQ(reg(sha, 1)->statusCode(), 200);
  Device md5 = device(carol->sipUser, "198.51.100.9:5062");
  md5.password = "carol-secret-1";
  md5.algorithm = "MD5";
  EXPECT_EQ(reg(md5, 1)->statusCode(), 200);
  Device wrong = device(carol->sipUser, "198.51.100.10:5062");
  wrong.password = "not-carols";
  EXPECT_EQ(reg(wrong, 1)->statusCode(), 401);
  EXPECT_EQ(registrar->lookup(carol->sipUser).size(), 2u);
  registrar.reset();
}

// Budget: 2 KB per registered device. sizeof(Binding) plus the heap strings of a typical
// linphone registration plus the container overhead.
TEST_F(RegistrarTest, ChangesAreWrittenBehindInOneBatch) {
  config.writeBehindInterval = 200ms;
  open();
  Device a = device("alice", "198.51.100.7:5062");
  Device b = device("bob", "198.51.100.8:5060");
  ASSERT_EQ(reg(a, 1)->statusCode(), 200);
  ASSERT_EQ(reg(b, 1)->statusCode(), 200);
  ASSERT_EQ(reg(a, 2)->statusCode(), 200); // a refresh: coalesced with alice's first change
  EXPECT_EQ(registrar->pendingWrites(), 2u);
  auto count = [&] {
    auto r = db->query("SELECT COUNT(*) FROM registrar_bindings");
    return store::asInt(r->at(0).at(0)).value_or(-1);
  };
  EXPECT_EQ(count(), 0); // nothing on the disk yet: answered from memory
  timers.advance(200ms);
  EXPECT_EQ(registrar->pendingWrites(), 0u);
  EXPECT_EQ(count(), 2);
  auto cseq = db->query("SELECT cseq FROM registrar_bindings WHERE sip_user = 'alice'");
  ASSERT_TRUE(cseq && cseq->size() == 1);
  EXPECT_EQ(store::asInt(cseq->at(0).at(0)), 2); // the latest state of the binding
}

TEST_F(RegistrarTest, BatchSizeTriggersAWriteBeforeTheInterval) {
  config.writeBehindInterval = 10s;
  config.writeBehindBatch = 2;
  open();
  Device a = device("alice", "198.51.100.7:5062");
  Device b = device("bob", "198.51.100.8:5060");
  ASSERT_EQ(reg(a, 1)->statusCode(), 200);
  EXPECT_EQ(registrar->pendingWrites(), 1u);
  ASSERT_EQ(reg(b, 1)->statusCode(), 200);
  EXPECT_EQ(registrar->pendingWrites(), 0u);
  auto r = db->query("SELECT COUNT(*) FROM registrar_bindings");
  EXPECT_EQ(store::asInt(r->at(0).at(0)), 2);
}

// With the storage thread, a database locked by another connection does not hold up REGISTER:
// the answer comes from memory, the write waits on the storage thread and lands after the lock.
TEST_F(RegistrarTest, LockedStoreDoesNotDelayRegister) {
  const std::string path = tempDb();
  storage = std::make_unique<store::StorageThread>();
  config.storage = storage.get();
  open(path);
  auto other = store::Database::open(path, {});
  ASSERT_TRUE(other);
  ASSERT_TRUE((*other)->execScript("BEGIN EXCLUSIVE"));
  Device a = device("alice", "198.51.100.7:5062");
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(reg(a, 1)->statusCode(), 200);
  timers.advance(200ms); // hands the batch to the storage thread, which waits for the lock
  Device b = device("bob", "198.51.100.8:5060");
  ASSERT_EQ(reg(b, 1)->statusCode(), 200);
  timers.advance(200ms); // a write is running: this batch waits its turn
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 1s);
  EXPECT_EQ(registrar->lookup("bob").size(), 1u);
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE((*other)->execScript("COMMIT"));
  storage->drain();      // the first batch is written once the lock is gone
  EXPECT_EQ(rows(), 2u); // rows() flushes the second
}

TEST_F(RegistrarTest, ClosedFlowTouchesOnlyItsBindings) {
  open();
  std::vector<Device> devices;
  for (int i = 0; i < 3; ++i) {
    users["u" + std::to_string(i)] = "pw" + std::to_string(i);
    Device d =
        device("u" + std::to_string(i), ("198.51.100." + std::to_string(10 + i) + ":5060").c_str());
    d.from =
        peer(sip::TransportType::Tcp, ("198.51.100." + std::to_string(10 + i) + ":40000").c_str(),
             sip::ConnectionId(100 + i));
    ASSERT_EQ(reg(d, 1)->statusCode(), 200);
    devices.push_back(d);
  }
  EXPECT_EQ(registrar->flowClosed(999), 0u);
  EXPECT_EQ(registrar->flowClosed(101), 1u);
  EXPECT_EQ(registrar->flowClosed(101), 0u);
  EXPECT_EQ(registrar->size(), 2u);
  EXPECT_TRUE(registrar->lookup("u1").empty());
  // The device comes back on a new connection: indexed under that one.
  devices[1].from.connection = 201;
  ASSERT_EQ(reg(devices[1], 2)->statusCode(), 200);
  EXPECT_EQ(registrar->flowClosed(101), 0u);
  EXPECT_EQ(registrar->flowClosed(201), 1u);
  EXPECT_EQ(rows(), 2u);
}

TEST_F(RegistrarTest, ManyRefreshesKeepTheExpiryIndexBounded) {
  open();
  Device a = device("alice", "198.51.100.7:5062");
  for (uint32_t i = 1; i <= 3000; ++i) ASSERT_EQ(reg(a, i, "Expires: 60\r\n")->statusCode(), 200);
  EXPECT_EQ(registrar->size(), 1u);
  EXPECT_LE(registrar->expiryEntries(), 2u * registrar->size() + 1025u);
  timers.advance(61s);
  EXPECT_EQ(registrar->size(), 0u);
  EXPECT_EQ(rows(), 0u);
}

// Bindings of an installation from before the split move from the main database into their own
// file once; the old table goes.
TEST_F(RegistrarTest, LegacyBindingsMoveToTheirOwnFile) {
  auto mainDb = store::Database::open(":memory:", Registrar::migrations());
  ASSERT_TRUE(mainDb);
  ASSERT_TRUE((*mainDb)->exec(
      "INSERT INTO registrar_bindings(id, sip_user, contact, call_id, cseq, transport, remote, "
      "local, expires_ms, updated_ms) VALUES (7, 'alice', 'sip:alice@198.51.100.7:5062', 'c1', 1, "
      "0, '198.51.100.7:5062', '192.0.2.1:5060', ?1, ?2)",
      {kWall0 + 3600000, kWall0}));
  open();
  registrar.reset();
  ASSERT_TRUE(Registrar::adoptLegacyBindings(**mainDb, *db));
  auto gone = (*mainDb)->query("SELECT name FROM sqlite_master WHERE name = 'registrar_bindings'");
  ASSERT_TRUE(gone);
  EXPECT_TRUE(gone->empty());
  EXPECT_EQ((*mainDb)->schemaVersion("registrar"), 0);
  ASSERT_TRUE(Registrar::adoptLegacyBindings(**mainDb, *db)); // nothing left to move
  auto r = Registrar::open(*db, timers, config);
  ASSERT_TRUE(r);
  registrar = std::move(r.value());
  tu.registrar = registrar.get();
  auto l = registrar->lookup("alice");
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].id, 7);
  // New bindings get ids above the moved ones.
  Device b = device("bob", "198.51.100.8:5060");
  ASSERT_EQ(reg(b, 1)->statusCode(), 200);
  EXPECT_GT(registrar->lookup("bob").at(0).id, 7);
  EXPECT_EQ(rows(), 2u);
}

TEST_F(RegistrarTest, MemoryPerBindingStaysWithinBudget) {
  open();
  const std::string inst = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";
  Device d = device("alice", "198.51.100.7:5062", inst);
  d.contact = "<sip:alice@198.51.100.7:5062;transport=udp>;+sip.instance=\"" + inst +
              "\";reg-id=1;expires=3600;+org.linphone.specs=\"lime,groupchat\"";
  d.callId = "Hs2Xk-3yV~vUtTl1dQ0IhbOdaFzE5VyJ";
  ASSERT_EQ(reg(d, 1)->statusCode(), 200);
  Binding b = registrar->lookup("alice").at(0);
  auto heap = [](const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; };
  size_t strings = heap(b.sipUser) + heap(b.contact) + heap(b.instance) + heap(b.callId) +
                   heap(b.path) + heap(b.userAgent);
  // unordered_map node (key string + vector + hash + next), amortised over one binding, and
  // vector slack.
  size_t container =
      sizeof(std::pair<const std::string, std::vector<Binding>>) + 16 + sizeof(Binding);
  size_t total = sizeof(Binding) + strings + container;
  std::printf("sizeof(Binding)=%zu heap strings=%zu container<=%zu total<=%zu bytes\n",
              sizeof(Binding), strings, container, total);
  EXPECT_LE(total, 2048u);
}

} // namespace
} // namespace verbund::pbx
