#include "sofia_fields.h"

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_protos.h>
#include <sofia-sip/url.h>

#include <memory>
#include <string>

namespace verbund::sip::conformance {
namespace {

struct MsgDeleter {
  void operator()(msg_t* m) const { msg_destroy(m); }
};

std::string urlString(const url_t* url) {
  // url_e() with a zero-sized buffer returns the length it needs.
  issize_t n = url_e(nullptr, 0, url);
  if (n < 0) return {};
  std::string s(size_t(n) + 1, '\0');
  url_e(s.data(), s.size(), url);
  s.resize(size_t(n));
  return s;
}

std::optional<std::string> optional(const char* s) {
  if (!s) return std::nullopt;
  return std::string(s);
}

} // namespace

SofiaFields sofiaFields(std::string_view data) {
  SofiaFields f;
  std::unique_ptr<msg_t, MsgDeleter> msg(
      msg_make(sip_default_mclass(), 0, data.data(), static_cast<ssize_t>(data.size())));
  if (!msg) {
    f.error = "msg_make failed";
    return f;
  }
  sip_t* sip = sip_object(msg.get());
  if (!sip) {
    f.error = "no sip object";
    return f;
  }
  // The error list holds unparsable headers (class msg_error_class, name in er_name) and also
  // duplicates of single-valued headers, which keep their own class (and have no er_name).
  for (sip_header_t* h = reinterpret_cast<sip_header_t*>(sip->sip_error); h; h = h->sh_next) {
    const char* name = nullptr;
    if (h->sh_class == msg_error_class)
      name = h->sh_error->er_name;
    else if (h->sh_class)
      name = h->sh_class->hc_name;
    if (!f.erroneousHeaders.empty()) f.erroneousHeaders += ",";
    f.erroneousHeaders += name ? name : "?";
  }
  if (sip->sip_request) {
    f.isRequest = true;
    f.method = sip->sip_request->rq_method_name ? sip->sip_request->rq_method_name : "";
    f.ruri = urlString(sip->sip_request->rq_url);
  } else if (sip->sip_status) {
    f.status = sip->sip_status->st_status;
  } else {
    f.error = "no request or status line";
    return f;
  }
  if (!sip->sip_call_id || !sip->sip_cseq || !sip->sip_from || !sip->sip_to || !sip->sip_via) {
    f.error = "missing or unparsable Call-ID/CSeq/From/To/Via";
    if (!f.erroneousHeaders.empty()) f.error += " (erroneous: " + f.erroneousHeaders + ")";
    return f;
  }
  f.callId = sip->sip_call_id->i_id ? sip->sip_call_id->i_id : "";
  f.cseq = sip->sip_cseq->cs_seq;
  f.cseqMethod = sip->sip_cseq->cs_method_name ? sip->sip_cseq->cs_method_name : "";
  f.fromTag = optional(sip->sip_from->a_tag);
  f.toTag = optional(sip->sip_to->a_tag);
  f.branch = optional(sip->sip_via->v_branch);
  f.parsed = true;
  return f;
}

} // namespace verbund::sip::conformance
