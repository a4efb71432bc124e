#include "app/federation_routes.h"

#include "base/log.h"
#include "federation/trust/errors.h"
#include "http/loop_executor.h"

#include <future>

namespace verbund::app {

namespace {

using http::Method;
using http::RequestContext;
using http::Response;

// {"error":{"code","reason","field","message"}} with the status of the federation error class.
Response failure(const Error& e) {
  auto f = federation::classify(e);
  std::string field;
  if (f.reason == "wrong-passphrase" || f.reason == "weak-passphrase") field = "passphrase";
  if (f.reason == "corrupt" || f.reason == "expired") field = "bundle";
  auto colon = f.message.find(": ");
  if (field.empty() && colon != std::string::npos && colon < 32 && f.message.find(' ') > colon)
    field = f.message.substr(0, colon);
  nlohmann::json err = {{"code", std::string(http::errorCodeName(f.status))},
                        {"reason", f.reason},
                        {"message", f.message}};
  if (!field.empty()) err["field"] = field;
  return Response::json({{"error", err}}, f.status);
}

Result<std::string> stringField(const nlohmann::json& body, const char* name, size_t maxBytes) {
  auto it = body.find(name);
  if (it == body.end() || !it->is_string())
    return Error{400, std::string(name) + ": required, a string"};
  auto s = it->get<std::string>();
  if (s.size() > maxBytes) return Error{400, std::string(name) + ": too long"};
  return s;
}

// Waits (off the loop) for an asynchronous operation started on the loop.
Result<void> awaitOnLoop(RequestContext& c,
                         const std::function<void(std::function<void(Result<void>)>)>& start,
                         std::chrono::seconds bound) {
  auto promise = std::make_shared<std::promise<Result<void>>>();
  auto future = promise->get_future();
  auto started =
      c.loop->run([&] { start([promise](Result<void> r) { promise->set_value(std::move(r)); }); });
  if (!started) return started.error();
  if (future.wait_for(bound) != std::future_status::ready)
    return Error{504, "the operation did not finish in time"};
  return future.get();
}

} // namespace

void addFederationRoutes(http::AdminServer& server, federation::FederationService& fed) {
  server.route(Method::Get, "/api/v1/federation", [&fed](RequestContext&) -> Result<Response> {
    return Response::json(fed.status());
  });

  server.route(Method::Post, "/api/v1/federation", [&fed](RequestContext& c) -> Result<Response> {
    auto body = c.object();
    if (!body) return body.error();
    auto name = stringField(**body, "name", 200);
    if (!name) return name.error();
    if (auto r = fed.create(*name); !r) return failure(r.error());
    return Response::json(fed.status(), 201);
  });

  // The bundle. Making it encrypts the CA key (PBKDF2, ~0.1 s) on the loop.
  server.route(Method::Post, "/api/v1/federation/certificate",
               [&fed](RequestContext& c) -> Result<Response> {
                 auto body = c.object();
                 if (!body) return body.error();
                 auto pass = stringField(**body, "passphrase", federation::kMaxPassphraseBytes);
                 if (!pass) return pass.error();
                 if (auto v = federation::validatePassphrase(*pass); !v) return failure(v.error());
                 auto text =
                     c.loop->run([&]() -> Result<std::string> { return fed.certificate(*pass); });
                 if (!text) return failure(text.error());
                 Response r;
                 r.text = std::move(*text);
                 r.contentType = "application/x-pem-file";
                 r.headers.emplace_back("Content-Disposition",
                                        "attachment; filename=\"verbund-federation.pem\"");
                 r.headers.emplace_back("Cache-Control", "no-store");
                 return r;
               },
               {http::Access::Admin, /*onLoop=*/false});

  server.route(
      Method::Post, "/api/v1/federation/join",
      [&fed](RequestContext& c) -> Result<Response> {
        auto body = c.object();
        if (!body) return body.error();
        auto bundle = stringField(**body, "bundle", federation::kMaxBundleBytes);
        if (!bundle) {
          if (bundle.error().message.ends_with("too long"))
            return failure(Error{int(federation::TrustErrc::kTooLarge),
                                 "bundle: the file is too large to be a federation certificate"});
          return bundle.error();
        }
        auto pass = stringField(**body, "passphrase", federation::kMaxPassphraseBytes);
        if (!pass) return pass.error();
        auto opened = federation::FederationService::openUploaded(*bundle, *pass);
        if (!opened) return failure(opened.error());
        auto shared = std::make_shared<federation::OpenedBundle>(std::move(*opened));
        auto r = awaitOnLoop(
            c,
            [&fed, shared](std::function<void(Result<void>)> done) {
              fed.join(std::move(*shared), std::move(done));
            },
            std::chrono::seconds(30));
        if (!r) return failure(r.error());
        return c.loop->run([&]() -> Result<Response> { return Response::json(fed.status()); });
      },
      {http::Access::Admin, /*onLoop=*/false});

  server.route(Method::Delete, "/api/v1/federation", [&fed](RequestContext&) -> Result<Response> {
    if (auto r = fed.leave(); !r) return failure(r.error());
    return Response::noContent();
  });

  server.route(Method::Delete, "/api/v1/federation/members/{nodeId}",
               [&fed](RequestContext& c) -> Result<Response> {
                 if (auto r = fed.removeMember(c.params["nodeId"]); !r) return failure(r.error());
                 return Response::noContent();
               });

  server.route(Method::Get, "/api/v1/federation/audit",
               [&fed](RequestContext&) -> Result<Response> {
                 auto log = fed.audit();
                 if (!log) return log.error();
                 nlohmann::json out = nlohmann::json::array();
                 for (const auto& e : *log)
                   out.push_back({{"atMs", e.atMs},
                                  {"event", e.event},
                                  {"nodeId", e.nodeId},
                                  {"nodeName", fed.nodeName(e.nodeId)},
                                  {"detail", e.detail}});
                 return Response::json({{"entries", out}});
               });

  server.route(
      Method::Get, "/api/v1/federation/directory",
      [&fed](RequestContext&) -> Result<Response> { return Response::json(fed.directoryJson()); });

  server.route(Method::Put, "/api/v1/federation/group-login",
               [&fed](RequestContext& c) -> Result<Response> {
                 auto body = c.object();
                 if (!body) return body.error();
                 auto node = stringField(**body, "nodeId", 64);
                 if (!node) return node.error();
                 auto group = stringField(**body, "group", 16);
                 if (!group) return group.error();
                 auto ext = stringField(**body, "extension", 16);
                 if (!ext) return ext.error();
                 auto in = (*body)->find("loggedIn");
                 if (in == (*body)->end() || !in->is_boolean())
                   return Error{400, "loggedIn: required, true or false"};
                 bool loggedIn = in->get<bool>();
                 auto r = awaitOnLoop(
                     c,
                     [&](std::function<void(Result<void>)> done) {
                       fed.remoteGroupLogin(*node, *group, *ext, loggedIn, std::move(done));
                     },
                     std::chrono::seconds(10));
                 if (!r) return failure(r.error());
                 return Response::json({{"ok", true}});
               },
               {http::Access::Admin, /*onLoop=*/false});
}

} // namespace verbund::app
