#include "app/cli_admin.h"

#include "app/admin_api_headers.h"
#include "base/private_files.h"
#include "pbx/directory/user_csv.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <httplib.h>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace verbund::app {

using nlohmann::json;

struct AdminCliState {
  // Common options.
  std::string api = "http://127.0.0.1:8080";
  std::string token, passwordFile;
  bool jsonOut = false;
  // Command and arguments.
  CLI::App *userCmd = nullptr, *groupCmd = nullptr, *adminCmd = nullptr, *callsCmd = nullptr,
           *regCmd = nullptr, *trunkCmd = nullptr, *fedCmd = nullptr;
  std::string file, output, passphraseFile;
  std::string disposition;
  int limit = 50;
  std::string command; // "user list", ...
  std::string query, key, name, number, sipUser, external, language, newExtension, shared;
  std::vector<std::string> members;
  bool sipPasswordStdin = false, membersGiven = false, dryRun = false;
  std::string member;
  // user features: unset options leave the setting as it is.
  std::optional<std::string> dnd, fwdAlways, fwdBusy, fwdNoAnswer, fwdUnregistered;
  std::optional<int> noAnswerSeconds;
  // calls export
  std::string format = "csv", from, to;
};

namespace {

struct CliError {
  int exitCode;
  std::string message;
};

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

std::string readLine(std::istream& in) {
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  return line;
}

// The federation passphrase: from --passphrase-file when given (refused when group or others may
// read it), else the first line of stdin.
std::string passphrase(const AdminCliState& s, std::istream& in) {
  if (s.passphraseFile.empty()) return readLine(in);
  auto p = readPrivateLine(s.passphraseFile);
  if (!p) throw CliError{2, p.error().message};
  if (p->empty()) throw CliError{2, s.passphraseFile + ": the passphrase is empty"};
  return p.value();
}

std::string generatePassword() {
  static constexpr char kChars[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 16; ++i) out += kChars[rd() % (sizeof kChars - 1)];
  return out;
}

// One API conversation: authenticates once, then sends JSON requests.
class ApiClient {
public:
  ApiClient(const AdminCliState& s) : s_(s), http_(s.api) {
    http_.set_connection_timeout(5);
    http_.set_read_timeout(30);
  }
  ~ApiClient() {
    if (!cookie_.empty()) http_.Delete("/api/v1/session", headers());
  }

  void authenticate() {
    auto token = !s_.token.empty() ? std::optional(s_.token) : env("VERBUND_API_TOKEN");
    if (token) {
      bearer_ = *token;
      return;
    }
    std::optional<std::string> password;
    if (!s_.passwordFile.empty()) {
      std::ifstream f(s_.passwordFile);
      if (!f) throw CliError{2, "cannot read " + s_.passwordFile};
      password = readLine(f);
    } else {
      password = env("VERBUND_ADMIN_PASSWORD");
    }
    if (!password)
      throw CliError{2, "no credentials: use --token, VERBUND_API_TOKEN, --password-file or "
                        "VERBUND_ADMIN_PASSWORD"};
    currentPassword_ = *password;
    auto r =
        http_.Post("/api/v1/session", json{{"password", *password}}.dump(), "application/json");
    check(r);
    auto setCookie = r->get_header_value("Set-Cookie");
    cookie_ = setCookie.substr(0, setCookie.find(';'));
    csrf_ = json::parse(r->body, nullptr, false).value("csrfToken", "");
  }

  // POST without throwing on 4xx: the status and the parsed answer (bulk import lists rows).
  std::pair<int, json> postRaw(const std::string& path, const std::string& body,
                               const char* contentType) {
    auto r = http_.Post(path.c_str(), headers(), body, contentType);
    if (!r)
      throw CliError{2,
                     "cannot reach the node at " + s_.api + ": " + httplib::to_string(r.error())};
    return {r->status, json::parse(r->body, nullptr, false)};
  }

  json call(const std::string& method, const std::string& path, const json& body = nullptr) {
    httplib::Result r{nullptr, httplib::Error::Unknown};
    std::string text = body.is_null() ? "" : body.dump();
    if (method == "GET")
      r = http_.Get(path.c_str(), headers());
    else if (method == "POST")
      r = http_.Post(path.c_str(), headers(), text, "application/json");
    else if (method == "PUT")
      r = http_.Put(path.c_str(), headers(), text, "application/json");
    else if (method == "PATCH")
      r = http_.Patch(path.c_str(), headers(), text, "application/json");
    else
      r = http_.Delete(path.c_str(), headers());
    check(r);
    lastBody_ = r->body;
    if (r->body.empty()) return nullptr;
    return json::parse(r->body, nullptr, false);
  }
  // GET whose body goes to `sink` as it arrives (exports): never held in memory.
  void stream(const std::string& path, const std::function<bool(const char*, size_t)>& sink) {
    int status = 0;
    std::string errorBody;
    auto r = http_.Get(
        path.c_str(), headers(),
        [&](const httplib::Response& res) {
          status = res.status;
          return true;
        },
        [&](const char* data, size_t n) {
          if (status >= 400) {
            if (errorBody.size() < 65536) errorBody.append(data, n);
            return true;
          }
          return sink(data, n);
        });
    if (!r)
      throw CliError{2,
                     "cannot reach the node at " + s_.api + ": " + httplib::to_string(r.error())};
    if (status >= 400) {
      auto j = json::parse(errorBody, nullptr, false);
      std::string msg;
      if (j.is_object() && j.contains("error") && j["error"].is_object())
        msg = j["error"].value("message", "");
      throw CliError{1, msg.empty() ? "HTTP " + std::to_string(status) : msg};
    }
  }

  // The raw body of the last call (for non-JSON answers such as the federation certificate).
  const std::string& lastBody() const { return lastBody_; }

  const std::string& currentPassword() const { return currentPassword_; }
  std::string lastBody_;
  bool usesSession() const { return !cookie_.empty(); }

private:
  httplib::Headers headers() const { return adminApiHeaders(bearer_, cookie_, csrf_); }
  void check(const httplib::Result& r) {
    if (!r)
      throw CliError{2,
                     "cannot reach the node at " + s_.api + ": " + httplib::to_string(r.error())};
    if (r->status < 400) return;
    auto j = json::parse(r->body, nullptr, false);
    std::string msg;
    if (j.is_object() && j.contains("error") && j["error"].is_object())
      msg = j["error"].value("message", "");
    if (msg.empty()) msg = "HTTP " + std::to_string(r->status);
    throw CliError{1, msg};
  }

  const AdminCliState& s_;
  httplib::Client http_;
  std::string bearer_, cookie_, csrf_, currentPassword_;
};

// A record's time (Unix milliseconds) as the local date and time, "2026-12-07 14:03:12".
std::string localTime(int64_t ms) {
  if (ms <= 0) return "";
  std::time_t t = std::time_t(ms / 1000);
  std::tm tm{};
  if (!localtime_r(&t, &tm)) return std::to_string(ms / 1000);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string str(const json& j, const char* key) {
  if (!j.contains(key)) return "";
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void printTable(std::ostream& out, const std::vector<std::string>& head,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
    }
    out << s << "\n";
  };
  line(head);
  for (const auto& r : rows) line(r);
}

std::string membersText(const json& g) {
  std::string s;
  for (const auto& m : g.value("members", json::array())) {
    if (!s.empty()) s += ",";
    auto owner = m.value("owner", "");
    s += owner.empty() ? m.value("extension", "") : owner + "/" + m.value("extension", "");
    if (!m.value("loggedIn", true)) s += "(out)";
  }
  return s;
}

json parseMembers(const std::vector<std::string>& specs) {
  json out = json::array();
  for (const auto& spec : specs) {
    auto slash = spec.find('/');
    if (slash == std::string::npos)
      out.push_back({{"extension", spec}});
    else
      out.push_back({{"owner", spec.substr(0, slash)}, {"extension", spec.substr(slash + 1)}});
  }
  return out;
}

// Resolves an extension or group number to the record's id.
int64_t idOf(ApiClient& api, const std::string& kind, const std::string& key) {
  auto list = api.call("GET", "/api/v1/" + kind + (kind == "users" ? "?extension=" : "?number=") +
                                  httplib::detail::encode_query_param(key));
  const auto& items = list[kind];
  if (!items.is_array() || items.empty())
    throw CliError{1,
                   (kind == "users" ? "no user with extension " : "no group with number ") + key};
  return items[0].value("id", int64_t(0));
}

} // namespace

AdminCommands::AdminCommands(CLI::App& app) : s_(std::make_unique<AdminCliState>()) {
  auto& s = *s_;
  auto common = [&s](CLI::App* c) {
    c->add_option("--api", s.api, "admin API of the node")->capture_default_str();
    c->add_option("--token", s.token, "bearer token (or VERBUND_API_TOKEN)");
    c->add_option("--password-file", s.passwordFile,
                  "file holding the admin password (or VERBUND_ADMIN_PASSWORD)");
    c->add_flag("--json", s.jsonOut, "print JSON instead of a table");
  };
  auto sub = [&s, common](CLI::App* parent, const char* name, const char* help) {
    auto* c = parent->add_subcommand(name, help);
    common(c);
    c->callback([&s, parent, name] { s.command = parent->get_name() + " " + name; });
    return c;
  };
  auto userFields = [&s](CLI::App* c) {
    c->add_option("--sip-user", s.sipUser, "device login name (default: the extension)");
    c->add_option("--external", s.external, "external number, E.164 (+4930...)");
    c->add_option("--language", s.language, "de or en");
    c->add_option("--shared", s.shared, "publish to the federation: true or false");
    c->add_flag("--sip-password-stdin", s.sipPasswordStdin,
                "read the device password from stdin (default on add: generate one)");
  };

  s.userCmd = app.add_subcommand("user", "Manage users of the running node");
  s.userCmd->require_subcommand(1);
  sub(s.userCmd, "list", "List users")->add_option("-q,--query", s.query, "search text");
  auto* uadd = sub(s.userCmd, "add", "Add a user");
  uadd->add_option("extension", s.key, "extension")->required();
  uadd->add_option("name", s.name, "display name")->required();
  userFields(uadd);
  auto* uset = sub(s.userCmd, "set", "Change a user");
  uset->add_option("extension", s.key, "extension")->required();
  uset->add_option("--name", s.name, "display name");
  uset->add_option("--extension", s.newExtension, "new extension");
  userFields(uset);
  auto* ufeat = sub(s.userCmd, "features", "Do-not-disturb and call forwarding of a user");
  ufeat->add_option("extension", s.key, "extension")->required();
  ufeat->add_option("--dnd", s.dnd, "do-not-disturb: on or off");
  ufeat->add_option("--forward-always", s.fwdAlways, "forward every call to T (\"\" or off: none)");
  ufeat->add_option("--forward-busy", s.fwdBusy, "forward when busy to T");
  ufeat->add_option("--forward-noanswer", s.fwdNoAnswer, "forward when not answered to T");
  ufeat->add_option("--noanswer-seconds", s.noAnswerSeconds, "seconds before no-answer (5..120)");
  ufeat->add_option("--forward-unregistered", s.fwdUnregistered,
                    "forward when no device is registered to T");
  auto* uimp = sub(s.userCmd, "import",
                   "Create users from a CSV file, all or none (columns: see the README)");
  uimp->add_option("file", s.file, "CSV file (UTF-8, header row)")->required();
  uimp->add_flag("--dry-run", s.dryRun, "only check every row; nothing is written");
  sub(s.userCmd, "delete", "Delete a user")
      ->add_option("extension", s.key, "extension")
      ->required();

  s.groupCmd = app.add_subcommand("group", "Manage groups of the running node");
  s.groupCmd->require_subcommand(1);
  sub(s.groupCmd, "list", "List groups")->add_option("-q,--query", s.query, "search text");
  auto* gadd = sub(s.groupCmd, "add", "Add a group");
  gadd->add_option("number", s.key, "group number")->required();
  gadd->add_option("name", s.name, "group name")->required();
  gadd->add_option("-m,--member", s.members, "member: EXT or NODE/EXT (repeat)");
  auto* gset = sub(s.groupCmd, "set", "Change a group");
  gset->add_option("number", s.key, "group number")->required();
  gset->add_option("--name", s.name, "group name");
  gset->add_option("--number", s.number, "new group number");
  gset->add_option("-m,--member", s.members, "replaces the members: EXT or NODE/EXT (repeat)");
  sub(s.groupCmd, "delete", "Delete a group")
      ->add_option("number", s.key, "group number")
      ->required();
  for (const char* verb : {"login", "logout"}) {
    auto* c = sub(s.groupCmd, verb,
                  verb == std::string("login") ? "Log a member in" : "Log a member out");
    c->add_option("number", s.key, "group number")->required();
    c->add_option("member", s.member, "member: EXT or NODE/EXT")->required();
  }

  s.callsCmd = app.add_subcommand("calls", "Call lists and active calls of the running node");
  s.callsCmd->require_subcommand(1);
  auto* clist = sub(s.callsCmd, "list", "List call records (newest first)");
  clist->add_option("-e,--extension", s.key, "only calls this extension took part in");
  clist->add_option("-d,--disposition", s.disposition,
                    "answered, missed, busy, picked-up, completed-elsewhere or failed");
  clist->add_option("-n,--limit", s.limit, "at most this many (1..1000)")->capture_default_str();
  sub(s.callsCmd, "active", "List calls in progress");
  auto* cexp = sub(s.callsCmd, "export",
                   "Export call records, oldest first, as CSV or JSON (columns: see the README)");
  cexp->add_option("--format", s.format, "csv or json")->capture_default_str();
  cexp->add_option("--from", s.from, "first day (YYYY-MM-DD, local time) or Unix ms");
  cexp->add_option("--to", s.to,
                   "last day, included (YYYY-MM-DD, local time) or Unix ms, excluded");
  cexp->add_option("-e,--extension", s.key, "only calls this extension took part in");
  cexp->add_option("-d,--disposition", s.disposition, "only calls with this result");
  cexp->add_option("-o,--output", s.output, "file to write (mode 0600; default: standard output)");
  s.regCmd = app.add_subcommand("registrations", "Registered devices of the running node");
  s.regCmd->require_subcommand(1);
  sub(s.regCmd, "list", "List registered devices");
  s.trunkCmd = app.add_subcommand("trunk", "The external line (SIP trunk)");
  s.trunkCmd->require_subcommand(1);
  sub(s.trunkCmd, "show", "Show the trunk settings (without the password) and its state");
  sub(s.trunkCmd, "set",
      "Replace the trunk settings with a JSON document read from stdin "
      "(the \"settings\" object of `trunk show`; password optional)");

  s.fedCmd = app.add_subcommand("federation", "The federation (Anlagenverbund) of the node");
  s.fedCmd->require_subcommand(1);
  sub(s.fedCmd, "show", "Federation name, members with state, version, RTT, conflicts");
  sub(s.fedCmd, "create", "Create a federation with this node as its first member")
      ->add_option("name", s.name, "federation name")
      ->required();
  auto* fcert = sub(s.fedCmd, "certificate",
                    "Make the federation certificate file (written with mode 0600; passphrase "
                    "from --passphrase-file, else the first line of stdin)");
  fcert->add_option("-o,--output", s.output, "file to write")->required();
  fcert->add_option("--passphrase-file", s.passphraseFile,
                    "read the passphrase from the first line of this file (mode 0600 or "
                    "stricter)");
  auto* fjoin = sub(s.fedCmd, "join",
                    "Join an active federation (passphrase from --passphrase-file, else the "
                    "first line of stdin)");
  fjoin->add_option("file", s.file, "the federation certificate file")->required();
  fjoin->add_option("--passphrase-file", s.passphraseFile,
                    "read the passphrase from the first line of this file (mode 0600 or "
                    "stricter)");
  sub(s.fedCmd, "leave", "Leave the federation");
  sub(s.fedCmd, "remove", "Remove another member (revokes it on every member)")
      ->add_option("node", s.key, "node id")
      ->required();
  sub(s.fedCmd, "audit", "Joins, leaves and removals");

  s.adminCmd = app.add_subcommand("admin", "Administer the node");
  s.adminCmd->require_subcommand(1);
  sub(s.adminCmd, "set-password", "Set the admin password (new password read from stdin)");
}

AdminCommands::~AdminCommands() = default;

bool AdminCommands::selected() const {
  return !s_->command.empty();
}

namespace {

// `user import FILE [--dry-run]`: the file goes as it is to POST /api/v1/users/import
// (text/csv), where the node's CSV codec reads it; errors are printed by the file's row (header =
// row 1) as the node names them, every invalid row in one pass.
int importUsers(ApiClient& api, const AdminCliState& s, std::ostream& out, std::ostream& err) {
  std::ifstream f(s.file, std::ios::binary);
  if (!f) throw CliError{2, "cannot read " + s.file};
  std::string text;
  text.resize(pbx::kMaxCsvBytes + 1);
  f.read(text.data(), std::streamsize(text.size()));
  text.resize(size_t(f.gcount()));
  if (text.size() > pbx::kMaxCsvBytes)
    throw CliError{1, s.file + ": larger than " + std::to_string(pbx::kMaxCsvBytes) + " bytes"};
  auto [status, j] = api.postRaw(
      std::string("/api/v1/users/import") + (s.dryRun ? "?dryRun=true" : ""), text, "text/csv");
  std::vector<pbx::UserRowError> errors;
  size_t created = 0, valid = 0;
  if (status == 400 && j.is_object() && j.contains("rows") && j["rows"].is_array()) {
    for (const auto& e : j["rows"])
      if (e.is_object())
        errors.push_back({e.value("row", size_t(0)), e.value("field", ""), e.value("error", "")});
  } else if (status >= 400) {
    std::string msg = j.is_object() && j.contains("error") && j["error"].is_object()
                          ? j["error"].value("message", "")
                          : "";
    throw CliError{1, s.file + ": " + (msg.empty() ? "HTTP " + std::to_string(status) : msg)};
  } else {
    created = j.value("created", size_t(0));
    valid = j.value("valid", size_t(0));
  }
  std::stable_sort(errors.begin(), errors.end(),
                   [](const auto& a, const auto& b) { return a.row < b.row; });
  if (s.jsonOut) {
    json rows = json::array();
    for (const auto& e : errors)
      rows.push_back({{"row", e.row}, {"field", e.field}, {"error", e.error}});
    out << json{{"created", created}, {"valid", valid}, {"dryRun", s.dryRun}, {"errors", rows}}
               .dump(2)
        << "\n";
    return errors.empty() ? 0 : 1;
  }
  if (!errors.empty()) {
    for (const auto& e : errors)
      err << s.file << ": row " << e.row << ": " << (e.field.empty() ? "" : e.field + ": ")
          << e.error << "\n";
    err << errors.size() << " error(s); nothing imported\n";
    return 1;
  }
  if (s.dryRun)
    out << valid << " users valid; nothing written (dry run)\n";
  else
    out << created << " users imported\n";
  return 0;
}

// "2026-03-01" (local midnight; with endOfDay the next midnight) or Unix milliseconds.
int64_t exportTime(const std::string& v, bool endOfDay, const char* option) {
  if (!v.empty() && v.size() < 16 && v.find_first_not_of("0123456789") == std::string::npos)
    return std::strtoll(v.c_str(), nullptr, 10);
  std::tm tm{};
  char rest = 0;
  if (std::sscanf(v.c_str(), "%4d-%2d-%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &rest) != 3)
    throw CliError{2, std::string(option) + ": YYYY-MM-DD or Unix milliseconds expected"};
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  if (endOfDay) tm.tm_mday += 1;
  tm.tm_isdst = -1;
  std::time_t t = std::mktime(&tm);
  if (t == -1) throw CliError{2, std::string(option) + ": not a date"};
  return int64_t(t) * 1000;
}

// `calls export`: GET /api/v1/calls/export streamed into the file (or stdout) as it arrives.
int exportCalls(ApiClient& api, const AdminCliState& s, std::ostream& out) {
  if (s.format != "csv" && s.format != "json") throw CliError{2, "--format: csv or json"};
  std::string q = "/api/v1/calls/export?format=" + s.format;
  if (!s.from.empty()) q += "&from=" + std::to_string(exportTime(s.from, false, "--from"));
  if (!s.to.empty()) q += "&to=" + std::to_string(exportTime(s.to, true, "--to"));
  if (!s.key.empty()) q += "&extension=" + httplib::detail::encode_query_param(s.key);
  if (!s.disposition.empty())
    q += "&disposition=" + httplib::detail::encode_query_param(s.disposition);
  std::ofstream file;
  if (!s.output.empty()) {
    // Call records are personal data: the file is the user's only (umask 077), like the node's.
    file.open(s.output, std::ios::binary | std::ios::trunc);
    if (!file) throw CliError{2, "cannot write " + s.output};
  }
  std::ostream& sink = s.output.empty() ? out : file;
  api.stream(q, [&](const char* data, size_t n) {
    sink.write(data, std::streamsize(n));
    return bool(sink);
  });
  sink.flush();
  if (!sink) throw CliError{2, "cannot write " + (s.output.empty() ? "the output" : s.output)};
  return 0;
}

} // namespace

int AdminCommands::run() {
  return run(std::cin, std::cout, std::cerr);
}

int AdminCommands::run(std::istream& in, std::ostream& out, std::ostream& err) {
  auto& s = *s_;
  try {
    ApiClient api(s);
    api.authenticate();
    auto emit = [&](const json& j) { out << j.dump(2) << "\n"; };
    auto userBody = [&](bool create) {
      json b = json::object();
      if (create) b["extension"] = s.key;
      if (!s.name.empty()) b["displayName"] = s.name;
      if (!s.newExtension.empty()) b["extension"] = s.newExtension;
      if (!s.sipUser.empty()) b["sipUser"] = s.sipUser;
      if (!s.external.empty()) b["externalNumber"] = s.external == "-" ? "" : s.external;
      if (!s.language.empty()) b["language"] = s.language;
      if (!s.shared.empty()) b["shared"] = s.shared == "true" || s.shared == "yes";
      if (s.sipPasswordStdin) b["sipPassword"] = readLine(in);
      return b;
    };
    auto printUsers = [&](const json& users) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& u : users)
        rows.push_back({str(u, "extension"), str(u, "displayName"), str(u, "sipUser"),
                        str(u, "externalNumber"), str(u, "language")});
      printTable(out, {"EXTENSION", "NAME", "SIP USER", "EXTERNAL", "LANG"}, rows);
    };
    auto printFeatures = [&](const json& u) {
      const json f = u.value("forward", json::object());
      printTable(out,
                 {"EXTENSION", "DND", "ALWAYS", "BUSY", "NO ANSWER", "AFTER S", "UNREGISTERED"},
                 {{str(u, "extension"), u.value("dnd", false) ? "on" : "off", str(f, "always"),
                   str(f, "busy"), str(f, "noAnswer"), str(f, "noAnswerSeconds"),
                   str(f, "unregistered")}});
    };
    auto printGroups = [&](const json& groups) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& g : groups)
        rows.push_back({str(g, "number"), str(g, "name"), membersText(g)});
      printTable(out, {"NUMBER", "NAME", "MEMBERS"}, rows);
    };

    if (s.command == "user list") {
      auto j = api.call("GET", "/api/v1/users?q=" + httplib::detail::encode_query_param(s.query));
      s.jsonOut ? emit(j["users"]) : printUsers(j["users"]);
    } else if (s.command == "user add") {
      auto b = userBody(true);
      std::string generated;
      if (!b.contains("sipPassword")) b["sipPassword"] = generated = generatePassword();
      auto u = api.call("POST", "/api/v1/users", b);
      if (s.jsonOut) {
        if (!generated.empty()) u["sipPassword"] = generated;
        emit(u);
      } else {
        printUsers(json::array({u}));
        if (!generated.empty()) out << "device password: " << generated << "\n";
      }
    } else if (s.command == "user import") {
      return importUsers(api, s, out, err);
    } else if (s.command == "user set") {
      auto id = idOf(api, "users", s.key);
      auto u = api.call("PATCH", "/api/v1/users/" + std::to_string(id), userBody(false));
      s.jsonOut ? emit(u) : printUsers(json::array({u}));
    } else if (s.command == "user features") {
      json b = json::object(), f = json::object();
      if (s.dnd) {
        if (*s.dnd != "on" && *s.dnd != "off") throw CliError{2, "--dnd: on or off"};
        b["dnd"] = *s.dnd == "on";
      }
      auto target = [](const std::string& t) { return t == "off" ? std::string() : t; };
      if (s.fwdAlways) f["always"] = target(*s.fwdAlways);
      if (s.fwdBusy) f["busy"] = target(*s.fwdBusy);
      if (s.fwdNoAnswer) f["noAnswer"] = target(*s.fwdNoAnswer);
      if (s.fwdUnregistered) f["unregistered"] = target(*s.fwdUnregistered);
      if (s.noAnswerSeconds) f["noAnswerSeconds"] = *s.noAnswerSeconds;
      if (!f.empty()) b["forward"] = f;
      auto id = idOf(api, "users", s.key);
      auto u = api.call("PUT", "/api/v1/users/" + std::to_string(id) + "/features", b);
      s.jsonOut ? emit(u) : printFeatures(u);
    } else if (s.command == "user delete") {
      auto id = idOf(api, "users", s.key);
      api.call("DELETE", "/api/v1/users/" + std::to_string(id));
      s.jsonOut ? emit(json{{"deleted", s.key}}) : void(out << "deleted user " << s.key << "\n");
    } else if (s.command == "group list") {
      auto j = api.call("GET", "/api/v1/groups?q=" + httplib::detail::encode_query_param(s.query));
      s.jsonOut ? emit(j["groups"]) : printGroups(j["groups"]);
    } else if (s.command == "group add" || s.command == "group set") {
      bool create = s.command == "group add";
      json b = json::object();
      if (create) b["number"] = s.key;
      if (!s.number.empty()) b["number"] = s.number;
      if (!s.name.empty()) b["name"] = s.name;
      if (create || !s.members.empty()) b["members"] = parseMembers(s.members);
      json g = create ? api.call("POST", "/api/v1/groups", b)
                      : api.call("PATCH",
                                 "/api/v1/groups/" + std::to_string(idOf(api, "groups", s.key)), b);
      s.jsonOut ? emit(g) : printGroups(json::array({g}));
    } else if (s.command == "group delete") {
      auto id = idOf(api, "groups", s.key);
      api.call("DELETE", "/api/v1/groups/" + std::to_string(id));
      s.jsonOut ? emit(json{{"deleted", s.key}}) : void(out << "deleted group " << s.key << "\n");
    } else if (s.command == "group login" || s.command == "group logout") {
      auto id = idOf(api, "groups", s.key);
      auto slash = s.member.find('/');
      std::string owner = slash == std::string::npos ? "local" : s.member.substr(0, slash);
      std::string ext = slash == std::string::npos ? s.member : s.member.substr(slash + 1);
      auto g = api.call("PUT",
                        "/api/v1/groups/" + std::to_string(id) + "/members/" +
                            httplib::detail::encode_query_param(owner) + "/" +
                            httplib::detail::encode_query_param(ext) + "/login",
                        json{{"loggedIn", s.command == "group login"}});
      s.jsonOut ? emit(g) : printGroups(json::array({g}));
    } else if (s.command == "calls list") {
      std::string q = "/api/v1/calls?limit=" + std::to_string(s.limit);
      if (!s.key.empty()) q += "&extension=" + httplib::detail::encode_query_param(s.key);
      if (!s.disposition.empty())
        q += "&disposition=" + httplib::detail::encode_query_param(s.disposition);
      auto j = api.call("GET", q);
      if (s.jsonOut) {
        emit(j["calls"]);
      } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& c : j["calls"]) {
          rows.push_back({localTime(c.value("startMs", int64_t(0))), str(c, "caller"),
                          str(c, "dialled"), str(c, "disposition"), str(c, "answeredBy"),
                          c.value("viaExternalLine", false) ? "external" : ""});
          // A transferred call: "by <user> to <target>".
          const auto& t = c.contains("transfer") ? c["transfer"] : json();
          rows.back().push_back(t.is_object() ? "by " + str(t, "by") + " to " + str(t, "target")
                                              : "");
        }
        printTable(out, {"START", "CALLER", "DIALLED", "RESULT", "ANSWERED BY", "LINE", "TRANSFER"},
                   rows);
      }
    } else if (s.command == "calls export") {
      return exportCalls(api, s, out);
    } else if (s.command == "calls active") {
      auto j = api.call("GET", "/api/v1/calls/active");
      if (s.jsonOut) {
        emit(j["calls"]);
      } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& c : j["calls"])
          rows.push_back(
              {str(c, "caller"), str(c, "dialled"), str(c, "state"), str(c, "answeredBy")});
        printTable(out, {"CALLER", "DIALLED", "STATE", "ANSWERED BY"}, rows);
      }
    } else if (s.command == "registrations list") {
      auto j = api.call("GET", "/api/v1/registrations");
      if (s.jsonOut) {
        emit(j["registrations"]);
      } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& r : j["registrations"])
          rows.push_back({str(r, "sipUser"), str(r, "transport"), str(r, "source"),
                          std::to_string(r.value("expiresInSeconds", 0)), str(r, "userAgent")});
        printTable(out, {"SIP USER", "TRANSPORT", "SOURCE", "EXPIRES IN", "USER AGENT"}, rows);
      }
    } else if (s.command == "trunk show") {
      emit(api.call("GET", "/api/v1/trunk"));
    } else if (s.command == "trunk set") {
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      json body = json::parse(text, nullptr, false);
      if (body.is_discarded() || !body.is_object())
        throw CliError{2, "trunk set: stdin is not a JSON object"};
      if (body.contains("settings") && body["settings"].is_object()) body = body["settings"];
      emit(api.call("PUT", "/api/v1/trunk", body));
    } else if (s.command == "federation show") {
      auto j = api.call("GET", "/api/v1/federation");
      if (s.jsonOut || !j.value("member", false)) {
        emit(j);
      } else {
        out << "federation: " << str(j, "name") << " (" << str(j, "federationId") << ")\n";
        std::vector<std::vector<std::string>> rows;
        for (const auto& m : j["members"]) {
          std::string rtt =
              m["rttMs"].is_number() ? std::to_string(int(m["rttMs"].get<double>())) : "";
          std::string addr =
              m["controlAddresses"].empty() ? "" : m["controlAddresses"][0].get<std::string>();
          rows.push_back({str(m, "name"), str(m, "nodeId"), addr, str(m, "state"),
                          str(m, "productVersion") + "/" + str(m, "protocolVersion"), rtt,
                          str(m, "lastError")});
        }
        printTable(out, {"NAME", "NODE", "ADDRESS", "STATE", "VERSION", "RTT MS", "NOTE"}, rows);
        for (const auto& c : j["conflicts"]) {
          out << "conflict: number " << str(c, "number") << " used by";
          for (const auto& u : c["uses"])
            out << " " << str(u, "nodeName") << " (" << str(u, "kind") << " " << str(u, "name")
                << ")";
          out << "\n";
        }
      }
    } else if (s.command == "federation create") {
      auto j = api.call("POST", "/api/v1/federation", json{{"name", s.name}});
      s.jsonOut ? emit(j) : void(out << "created federation " << s.name << "\n");
    } else if (s.command == "federation certificate") {
      api.call("POST", "/api/v1/federation/certificate", json{{"passphrase", passphrase(s, in)}});
      // The bundle carries the federation CA key (encrypted under the passphrase): 0600.
      if (auto w = writePrivateFile(s.output, api.lastBody()); !w)
        throw CliError{2, w.error().message};
      s.jsonOut ? emit(json{{"wrote", s.output}}) : void(out << "wrote " << s.output << "\n");
    } else if (s.command == "federation join") {
      std::ifstream f(s.file, std::ios::binary);
      if (!f) throw CliError{2, "cannot read " + s.file};
      std::string bundle((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      auto j = api.call("POST", "/api/v1/federation/join",
                        json{{"bundle", bundle}, {"passphrase", passphrase(s, in)}});
      s.jsonOut ? emit(j) : void(out << "joined federation " << str(j, "name") << "\n");
    } else if (s.command == "federation leave") {
      api.call("DELETE", "/api/v1/federation");
      s.jsonOut ? emit(json{{"left", true}}) : void(out << "left the federation\n");
    } else if (s.command == "federation remove") {
      api.call("DELETE",
               "/api/v1/federation/members/" + httplib::detail::encode_query_param(s.key));
      s.jsonOut ? emit(json{{"removed", s.key}}) : void(out << "removed member " << s.key << "\n");
    } else if (s.command == "federation audit") {
      auto j = api.call("GET", "/api/v1/federation/audit");
      if (s.jsonOut) {
        emit(j["entries"]);
      } else {
        std::vector<std::vector<std::string>> rows;
        for (const auto& e : j["entries"])
          rows.push_back({localTime(e.value("atMs", int64_t(0))), str(e, "event"),
                          str(e, "nodeName"), str(e, "detail")});
        printTable(out, {"AT", "EVENT", "NODE", "DETAIL"}, rows);
      }
    } else if (s.command == "admin set-password") {
      std::string pw = readLine(in);
      json b{{"password", pw}};
      if (api.usesSession()) b["currentPassword"] = api.currentPassword();
      auto r = api.call("PUT", "/api/v1/admin/password", b);
      s.jsonOut ? emit(r) : void(out << "admin password changed; all sessions ended\n");
    } else {
      err << "verbund: unknown command\n";
      return 2;
    }
    return 0;
  } catch (const CliError& e) {
    err << "verbund: " << e.message << "\n";
    return e.exitCode;
  }
}

} // namespace verbund::app
