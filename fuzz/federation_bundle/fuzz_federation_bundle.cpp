// Fuzzes the trust module's parsers of untrusted input: uploaded federation certificates
// (openBundle with a fixed passphrase), revocation lists received from peers (parsed and
// verified against a fixed federation CA), and peer certificates (DER, through verifyPeer).
// None of it may crash, leak or throw.
#include "common.h"
#include "federation/trust/bundle.h"
#include "federation/trust/revocation.h"
#include "federation/trust/trust_store.h"

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

using namespace verbund::federation;

namespace {

// The federation whose CA signed the revocation-list seeds (written by make_seeds.cpp).
constexpr std::string_view kFixedCaBundle =
#include "fixed_ca.inc"
    ;

const TrustStore& fixedTrust() {
  static std::optional<TrustStore> trust = [] {
    auto opened = openBundle(kFixedCaBundle, fuzz::kPassphrase, fuzz::fixedNow());
    if (!opened) std::abort(); // fixed_ca.inc is ours; regenerate it with make_seeds
    return std::optional<TrustStore>(TrustStore(std::move(opened->ca)));
  }();
  return *trust;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const TrustStore& trust = fixedTrust();

  auto opened = openBundle(bytes, fuzz::kPassphrase, fuzz::fixedNow());
  if (opened) {
    (void)fingerprintOf(opened->ca.cert());
    (void)validateMembers(opened->members);
  }

  auto list = RevocationList::parse(bytes, trust.ca().cert(), trust.ca().federationId());
  if (list) {
    (void)list->toJson();
    (void)list->isRevoked("node", std::string(64, 'a'));
    RevocationList copy(trust.ca().federationId());
    (void)copy.merge(*list);
  }

  if (auto cert = detail::certFromDer(bytes)) {
    (void)verifyPeer(cert->get(), nullptr, trust, fuzz::fixedNow());
    (void)nodeIdOf(cert->get());
    (void)federationIdOf(cert->get());
    (void)renewalDue(cert->get(), fuzz::fixedNow());
  }
  return 0;
}
