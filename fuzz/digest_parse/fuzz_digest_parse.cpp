// Feeds arbitrary bytes to the auth-header parser and, when they parse, to the digest verifier.
// A MAC-checked nonce is almost never hit by chance, so each parsed input is verified twice: as
// is, and with its nonce replaced by a genuine one to reach the response and nonce-count code.
#include "base/manual_timers.h"
#include "sip/auth/digest.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace verbund;
using namespace verbund::sip;

namespace {

struct World {
  ManualTimers timers;
  DigestServer server{makeConfig(), timers};
  std::string nonce = server.makeNonce();

  static DigestServerConfig makeConfig() {
    DigestServerConfig c;
    c.realm = "verbund.test";
    c.algorithms = {DigestAlgorithm::Sha512_256, DigestAlgorithm::Sha256,
                    DigestAlgorithm::Sha256Sess, DigestAlgorithm::Md5, DigestAlgorithm::Md5Sess};
    c.maxTrackedNonces = 64;
    return c;
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto parsed = parseAuthParams(input);
  if (!parsed.ok()) return 0;

  // Every view must stay inside the input.
  const AuthParams& p = *parsed;
  auto inside = [&](std::string_view v) {
    if (v.data() < input.data() || v.data() + v.size() > input.data() + input.size())
      __builtin_trap();
  };
  inside(p.scheme);
  for (size_t i = 0; i < p.count; ++i) {
    inside(p.items[i].name);
    inside(p.items[i].value);
    (void)unquote(p.items[i].value);
  }

  DigestLookup lookup = [](std::string_view user, std::string_view,
                           DigestAlgorithm base) -> std::optional<DigestSecret> {
    if (user == "alice") return DigestSecret{DigestSecret::Kind::Password, "wonderland"};
    if (user == "carol") {
      // The secret is a view: it must outlive verify(), as the directory's HA1 strings do.
      static const std::string md5 =
          digestHa1(DigestAlgorithm::Md5, "carol", "verbund.test", "pw").value_or("");
      static const std::string sha256 =
          digestHa1(DigestAlgorithm::Sha256, "carol", "verbund.test", "pw").value_or("");
      if (base != DigestAlgorithm::Md5 && base != DigestAlgorithm::Sha256) return std::nullopt;
      return DigestSecret{DigestSecret::Kind::Ha1, base == DigestAlgorithm::Md5 ? md5 : sha256};
    }
    return std::nullopt;
  };
  (void)world.server.verify(p, "REGISTER", input, lookup);

  AuthParams withNonce = p;
  for (size_t i = 0; i < withNonce.count; ++i)
    if (withNonce.items[i].name == "nonce") withNonce.items[i].value = world.nonce;
  (void)world.server.verify(withNonce, "INVITE", {}, lookup);

  // The client side must cope with any challenge too.
  DigestClient client;
  (void)DigestClient::pickChallenge({&p, 1});
  (void)client.authorize(p, "alice", "wonderland", "REGISTER", "sip:verbund.test", input);

  // Let time pass so nonces go stale and the replay table expires entries.
  world.timers.advance(std::chrono::seconds(size % 7));
  if (size % 13 == 0) world.nonce = world.server.makeNonce();
  return 0;
}
