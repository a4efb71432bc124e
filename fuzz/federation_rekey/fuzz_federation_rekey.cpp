// Fuzzes the peer messages of the trust model: "rekey" (a new federation CA with its key and
// revocation list, rekey.h) and "members" with pinned keys (member_store.h). The bytes are one
// JSON document; the federation id the rekey is checked against is the one its own CA
// certificate names, so that valid seeds reach the key and revocation checks. An accepted rekey
// must carry a CA whose key belongs to it and whose revocations parse under it; an accepted
// member list must survive its own JSON form. Nothing may crash, leak or throw.
#include "federation/membership/member_store.h"
#include "federation/trust/rekey.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace verbund::federation;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return 0;
  std::string federationId = std::string(32, '0');
  if (j.is_object()) {
    if (auto it = j.find("ca"); it != j.end() && it->is_string())
      if (auto cert = detail::certFromPem(it->get<std::string>()))
        if (auto facts = FederationCa::inspectCaCertificate(cert->get()))
          federationId = facts->second;
  }
  if (auto rk = rekeyFromJson(j, federationId)) {
    if (rk->generation < 1 || rk->ca.federationId() != federationId) std::abort();
    if (!detail::sameKey(X509_get0_pubkey(rk->ca.cert()), rk->ca.key())) std::abort();
    (void)RevocationList::parse(rk->revocations, rk->ca.cert(), federationId);
  }
  if (auto members = membersFromMessage(j)) {
    auto again = membersFromMessage(membersMessage(*members));
    if (!again || *again != *members) std::abort();
  }
  return 0;
}
