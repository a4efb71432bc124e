#include "federation/trust/rekey.h"

#include "federation/trust/errors.h"

#include <limits>

namespace verbund::federation {
namespace {

const std::string* stringMember(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

Error corrupt(const std::string& why) {
  return trustError(TrustErrc::kCorrupt, "rekey: " + why);
}

} // namespace

nlohmann::json rekeyMessage(const TrustStore& trust) {
  auto cert = detail::certToPem(trust.ca().cert());
  auto key = detail::keyToPem(trust.ca().key());
  return {{"t", "rekey"},
          {"generation", trust.generation()},
          {"ca", cert ? *cert : std::string()},
          {"caKey", key ? *key : std::string()},
          {"revocations", trust.revocations().toJson()}};
}

Result<Rekey> rekeyFromJson(const nlohmann::json& j, std::string_view federationId) {
  if (!j.is_object()) return corrupt("not an object");
  auto g = j.find("generation");
  if (g == j.end() || !g->is_number_integer()) return corrupt("generation: integer required");
  int64_t generation = g->is_number_unsigned()
                           ? (g->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())
                                  ? -1
                                  : int64_t(g->get<uint64_t>()))
                           : g->get<int64_t>();
  if (generation < 1) return corrupt("generation: must be at least 1");
  const std::string* certPem = stringMember(j, "ca");
  const std::string* keyPem = stringMember(j, "caKey");
  const std::string* revocations = stringMember(j, "revocations");
  if (certPem == nullptr || keyPem == nullptr || revocations == nullptr)
    return corrupt("ca, caKey and revocations: strings required");
  if (certPem->size() > kMaxRekeyPemBytes || keyPem->size() > kMaxRekeyPemBytes)
    return trustError(TrustErrc::kTooLarge, "rekey: certificate or key too large");
  if (revocations->size() > kMaxRevocationListBytes)
    return trustError(TrustErrc::kTooLarge, "rekey: revocation list too large");
  auto cert = detail::certFromPem(*certPem);
  if (!cert) return corrupt("ca: " + cert.error().message);
  auto key = detail::keyFromPem(*keyPem);
  if (!key) return corrupt("caKey: " + key.error().message);
  auto ca = FederationCa::fromParts(std::move(*cert), std::move(*key));
  if (!ca) return ca.error();
  if (ca->federationId() != federationId)
    return trustError(TrustErrc::kOtherFederation, "rekey: the CA belongs to another federation");
  return Rekey{generation, std::move(*ca), *revocations};
}

} // namespace verbund::federation
