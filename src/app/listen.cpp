#include "app/listen.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <unistd.h>

namespace verbund::app {

Result<nlohmann::json> bindListeners(sip::TransportManager& tm,
                                     const std::vector<ListenSpec>& specs) {
  nlohmann::json bound = nlohmann::json::object();
  for (const auto& s : specs) {
    auto a = SockAddr::parse(s.addr);
    if (!a) return Error{1, "bad listen address '" + s.addr + "'"};
    auto r = tm.listen(s.type, *a);
    if (!r) return Error{1, "listen " + s.addr + ": " + r.error().message};
    std::string key(sip::transportName(s.type));
    for (auto& c : key) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (!bound.contains(key)) bound[key] = r->toString();
  }
  return bound;
}

Result<void> loadTls(sip::TransportManager& tm, const std::string& cert, const std::string& key,
                     const std::string& ca) {
  sip::TlsConfig tls;
  tls.certificateChainFile = cert;
  tls.privateKeyFile = key;
  tls.caFile = ca;
  tls.clientCertMode = sip::TlsConfig::ClientCertMode::None;
  tls.verifyServer = !ca.empty();
  return tm.configureTls(tls);
}

void writeReadyFile(const std::string& path, nlohmann::json info) {
  if (path.empty()) return;
  info["pid"] = getpid();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << info.dump() << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());
}

} // namespace verbund::app
