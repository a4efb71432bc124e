#pragma once
// Shared pieces of the INVITE usage tests: a recording InviteHandler, the peer "alice" (whose
// requests carry From tag alice1, so a UAC test can answer with To tag alice1 and then write
// alice's in-dialog requests with the same helper) and a UAS call set-up.
#include "sip/dialog/invite_session.h"
#include "unit/sip/dialog/harness.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace verbund::sip::test {

struct Recorder final : InviteHandler {
  void onNewSession(InviteSession& s, const Message& m) override {
    session = s.id();
    events.push_back("new");
    if (onNew) onNew(s, m);
  }
  void onProvisional(ClientInvite&, InviteSession* s, const Message& r) override {
    events.push_back("provisional " + std::to_string(r.statusCode()) + " " +
                     std::string(r.toTag()));
    if (s) session = s->id();
  }
  void onConnected(InviteSession& s, const Message& m) override {
    events.push_back("connected");
    session = s.id();
    connectedBody = std::string(m.body());
  }
  void onFailure(ClientInvite&, int status, const Message*) override {
    events.push_back("failure " + std::to_string(status));
  }
  void onOffer(InviteSession& s, ServerTxId tx, const Message& m) override {
    events.push_back("offer " + std::string(m.methodName()));
    if (offerStatus) (void)s.respond(tx, offerStatus, "application/sdp", "v=0 answer\r\n");
  }
  void onOfferAnswered(InviteSession& s, Method m, const Message& r) override {
    events.push_back("answered " + std::to_string(r.statusCode()));
    answeredMethod = m;
    answeredBody = std::string(r.body());
    if (onAnswered) onAnswered(s, m, r);
  }
  void onTerminated(InviteSession& s, InviteEnd why, const Message*) override {
    events.push_back("terminated " + std::string(inviteEndName(why)) + " " +
                     s.dialog().id().remoteTag);
  }
  std::function<void(InviteSession&, const Message&)> onNew;
  std::function<void(InviteSession&, Method, const Message&)> onAnswered;
  Method answeredMethod = Method::Unknown;
  std::string answeredBody, connectedBody;
  int offerStatus = 200;
  std::vector<std::string> events;
  UsageId session = 0;
};

inline const Peer kAlice = udpPeer("192.0.2.2:5060");

inline std::string aliceRequest(std::string_view method, uint32_t cseq, std::string_view toTag,
                                std::string_view branch, std::string_view extra = {},
                                std::string_view callId = "uas-1") {
  std::string s(method);
  s += " sip:pbx@192.0.2.1 SIP/2.0\r\n"
       "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bK";
  s.append(branch).append("\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=alice1\r\n");
  s.append("To: <sip:pbx@192.0.2.1>");
  if (!toTag.empty()) s.append(";tag=").append(toTag);
  s.append("\r\nCall-ID: ").append(callId).append("\r\n");
  s.append("CSeq: ").append(std::to_string(cseq)).append(" ").append(method).append("\r\n");
  s.append(extra);
  s.append("Content-Length: 0\r\n\r\n");
  return s;
}

inline const char* kAliceContact = "Contact: <sip:alice@192.0.2.2:5060>\r\n";

// `request` (from aliceRequest) with an SDP body.
inline std::string withBody(std::string request, std::string_view body) {
  std::string tail = "Content-Length: 0\r\n\r\n";
  request.resize(request.size() - tail.size());
  request.append("Content-Type: application/sdp\r\nContent-Length: ")
      .append(std::to_string(body.size()))
      .append("\r\n\r\n")
      .append(body);
  return request;
}

inline MessagePtr findSent(std::vector<MessagePtr>& all, std::string_view what) {
  for (auto& m : all) {
    if (!m) continue;
    if (m->isRequest() && m->methodName() == what) return std::move(m);
    if (m->isResponse() && std::to_string(m->statusCode()) == what) return std::move(m);
  }
  return nullptr;
}

// A UAS session answered 200 (with an SDP body), not yet ACKed; `inviteExtra` adds header lines
// to alice's INVITE, `inviteBody` a body (none: the 200 carries our offer).
struct UasCall {
  UasCall(Harness& harness, Recorder& r, std::string_view inviteExtra = {},
          std::string_view inviteBody = "v=0 alice-offer\r\n")
      : h(harness) {
    h.dm.setInviteHandler(&r);
    r.onNew = [](InviteSession& s, const Message&) {
      ASSERT_TRUE(s.accept("application/sdp", "v=0 offer-answer\r\n"));
    };
    std::string invite =
        aliceRequest("INVITE", 1, {}, "inv1", std::string(kAliceContact).append(inviteExtra));
    h.inject(inviteBody.empty() ? invite : withBody(invite, inviteBody));
    auto sent = h.take();
    answer = findSent(sent, "200");
    EXPECT_TRUE(answer);
    if (answer) {
      tag = std::string(answer->toTag());
      EXPECT_EQ(answer->contacts().size(), 1u);
    }
  }
  void ack(std::string_view body = {}) {
    std::string a = aliceRequest("ACK", 1, tag, "ack1");
    h.inject(body.empty() ? a : withBody(a, body));
  }
  Harness& h;
  std::string tag;
  MessagePtr answer;
};

} // namespace verbund::sip::test
