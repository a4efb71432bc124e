// Parse and serialize of a realistic ~1.5 KB INVITE (a desk phone's call through two proxies).
// Goal (issue 2): >= 1 M routing-header parses per second on one core.
#include "sip/message/builder.h"
#include "sip/message/message.h"

#include <benchmark/benchmark.h>

using namespace verbund::sip;

namespace {

std::string crlf(const char* s) {
  std::string out;
  for (; *s; ++s) {
    if (*s == '\n')
      out += "\r\n";
    else
      out += *s;
  }
  return out;
}

const std::string& invite() {
  static const std::string msg = crlf(
      "INVITE sip:2001@pbx.example.com;user=phone SIP/2.0\n"
      "Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-524287-1---5f6a8b9c0d1e2f30;rport\n"
      "Via: SIP/2.0/TCP "
      "proxy2.example.net:5060;branch=z9hG4bK7a8b9c0d1e2f3a4b;received=192.0.2.17\n"
      "Via: SIP/2.0/UDP 192.168.1.25:5062;branch=z9hG4bKnashds8;rport=5062;received=198.51.100.9\n"
      "Max-Forwards: 68\n"
      "Record-Route: <sip:proxy2.example.net;lr;ftag=as1f2e3d4c>\n"
      "Record-Route: <sip:proxy1.example.net;lr;transport=tcp>\n"
      "Contact: \"Alice Example\" "
      "<sip:1001@192.168.1.25:5062;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-"
      "8000-000B82A1B2C3>\"\n"
      "To: \"Reception\" <sip:2001@pbx.example.com;user=phone>\n"
      "From: \"Alice Example\" <sip:1001@pbx.example.com;user=phone>;tag=as1f2e3d4c\n"
      "Call-ID: 8f3a2b1c-4d5e6f70-81928374@192.168.1.25\n"
      "CSeq: 102 INVITE\n"
      "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, SUBSCRIBE, UPDATE, PRACK, "
      "MESSAGE\n"
      "Supported: replaces, timer, 100rel, path\n"
      "User-Agent: Example DeskPhone 7.4.3 (model X200, firmware 2026.10)\n"
      "Allow-Events: talk, hold, conference, dialog, presence, refer\n"
      "Session-Expires: 1800;refresher=uac\n"
      "Min-SE: 90\n"
      "P-Preferred-Identity: \"Alice Example\" <sip:1001@pbx.example.com>\n"
      "Accept: application/sdp, application/dtmf-relay\n"
      "Content-Type: application/sdp\n"
      "Content-Length: 509\n"
      "\n"
      "v=0\n"
      "o=- 3912837465 3912837465 IN IP4 192.168.1.25\n"
      "s=Example DeskPhone\n"
      "c=IN IP4 192.168.1.25\n"
      "t=0 0\n"
      "m=audio 12000 RTP/AVP 9 8 0 18 101 96\n"
      "a=rtpmap:9 G722/8000\n"
      "a=rtpmap:8 PCMA/8000\n"
      "a=rtpmap:0 PCMU/8000\n"
      "a=rtpmap:18 G729/8000\n"
      "a=fmtp:18 annexb=no\n"
      "a=rtpmap:101 telephone-event/8000\n"
      "a=fmtp:101 0-15\n"
      "a=rtpmap:96 opus/48000/2\n"
      "a=fmtp:96 useinbandfec=1;maxaveragebitrate=32000\n"
      "a=ptime:20\n"
      "a=maxptime:40\n"
      "a=sendrecv\n"
      "a=rtcp:12001 IN IP4 192.168.1.25\n"
      "a=ssrc:2819283746 cname:alice-desk@example\n"
      "a=label:audio-main\n");
  return msg;
}

void BM_ParseInvite(benchmark::State& state) {
  const std::string& in = invite();
  for (auto _ : state) {
    auto r = parseMessage(std::string(in));
    benchmark::DoNotOptimize(r.message.get());
    if (!r.ok()) state.SkipWithError(r.error.reason.c_str());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(in.size()));
  state.counters["msg_bytes"] = double(in.size());
}
BENCHMARK(BM_ParseInvite);

// Parse plus reading every routing header the transaction and dialog layers use.
void BM_ParseAndRoute(benchmark::State& state) {
  const std::string& in = invite();
  size_t sink = 0;
  for (auto _ : state) {
    auto r = parseMessage(std::string(in));
    const Message& m = *r.message;
    sink += m.topVia().branch.size() + m.callId().size() + m.fromTag().size() + m.cseq().seq +
            m.recordRoutes().size() + m.contacts()[0].uri.host.size() + m.requestUri().user.size();
  }
  benchmark::DoNotOptimize(sink);
}
BENCHMARK(BM_ParseAndRoute);

void BM_Serialize(benchmark::State& state) {
  auto r = parseMessage(std::string(invite()));
  for (auto _ : state) {
    std::string s = r.message->serialize();
    benchmark::DoNotOptimize(s.data());
  }
}
BENCHMARK(BM_Serialize);

void BM_BuildResponse(benchmark::State& state) {
  auto r = parseMessage(std::string(invite()));
  for (auto _ : state) {
    std::string s = responseTo(*r.message, 180, {}, "totag123").finish();
    benchmark::DoNotOptimize(s.data());
  }
}
BENCHMARK(BM_BuildResponse);

} // namespace

BENCHMARK_MAIN();
