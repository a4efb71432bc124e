#include "base/manual_timers.h"
#include "fake_peer.h"
#include "media/ng_client.h"

#include <gtest/gtest.h>
#include <optional>

using namespace verbund;
using namespace verbund::media;
using namespace verbund::media::bencode;
using verbund::media::test::FakePeer;
using verbund::media::test::pump;
using verbund::media::test::settle;

namespace {

template <typename T> struct Outcome {
  std::optional<Result<T>> r;
  NgClient::Callback<T> cb() {
    return [this](Result<T> v) { r.emplace(std::move(v)); };
  }
};

class NgClientTest : public ::testing::Test {
protected:
  asio::io_context io;
  ManualTimers timers;
  FakePeer a{io}, b{io};

  std::unique_ptr<NgClient> client(std::vector<std::optional<SockAddr>> instances) {
    return std::make_unique<NgClient>(io, timers, std::move(instances));
  }
  OfferRequest offer(std::string callId) {
    OfferRequest r;
    r.call.callId = std::move(callId);
    r.call.fromTag = "ft";
    r.sdp = "v=0\r\n";
    r.flags = {"trust-address"};
    r.replace = {"origin"};
    return r;
  }
};

TEST_F(NgClientTest, PingAndPong) {
  auto c = client({a.address()});
  Outcome<void> out;
  c->ping(0, out.cb());
  ASSERT_TRUE(pump(io, [&] { return !a.got().empty(); }));
  auto m = a.got().front().message();
  EXPECT_EQ(m.dict, (Dict{{"command", "ping"}}));
  a.reply(a.got().front(), Dict{{"result", "pong"}});
  ASSERT_TRUE(pump(io, [&] { return out.r.has_value(); }));
  EXPECT_TRUE(out.r->ok());
  EXPECT_EQ(c->inFlight(), 0u);
}

TEST_F(NgClientTest, OfferEncodesFieldsAndReturnsSdp) {
  auto c = client({a.address()});
  Outcome<SdpReply> out;
  auto req = offer("call-1");
  req.extra.set("ICE", "remove");
  c->offer(req, out.cb());
  ASSERT_TRUE(pump(io, [&] { return !a.got().empty(); }));
  const Dict& d = a.got().front().message().dict;
  EXPECT_EQ(d.string("command"), "offer");
  EXPECT_EQ(d.string("call-id"), "call-1");
  EXPECT_EQ(d.string("from-tag"), "ft");
  EXPECT_EQ(d.find("to-tag"), nullptr);
  EXPECT_EQ(d.string("sdp"), "v=0\r\n");
  EXPECT_EQ(*d.list("flags"), (List{"trust-address"}));
  EXPECT_EQ(*d.list("replace"), (List{"origin"}));
  EXPECT_EQ(d.string("ICE"), "remove");
  a.reply(a.got().front(), Dict{{"sdp", "v=0\r\nc=IN IP4 127.0.0.1\r\n"}, {"result", "ok"}});
  ASSERT_TRUE(pump(io, [&] { return out.r.has_value(); }));
  ASSERT_TRUE(out.r->ok()) << out.r->error().message;
  EXPECT_EQ((*out.r)->sdp, "v=0\r\nc=IN IP4 127.0.0.1\r\n");
  EXPECT_EQ((*out.r)->instance, 0u);
  EXPECT_EQ(c->instanceOf("call-1"), 0u);
}

TEST_F(NgClientTest, RetransmitsSameCookieWithBackoffThenTimesOut) {
  auto c = client({a.address()});
  Outcome<void> out;
  c->ping(0, out.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 1; }));
  timers.advance(Duration(249));
  settle(io);
  EXPECT_EQ(a.got().size(), 1u);
  timers.advance(Duration(1)); // 250: first retransmission
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 2; }));
  timers.advance(Duration(499)); // 749
  settle(io);
  EXPECT_EQ(a.got().size(), 2u);
  timers.advance(Duration(1)); // 750: after 500 more
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 3; }));
  timers.advance(Duration(1000)); // 1750: capped at 1000
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 4; }));
  for (const auto& d : a.got()) EXPECT_EQ(d.data, a.got().front().data); // same cookie
  EXPECT_FALSE(out.r.has_value());
  timers.advance(Duration(250)); // 2000: the overall timeout
  ASSERT_TRUE(out.r.has_value());
  EXPECT_EQ(out.r->error().code, int(NgError::Timeout));
  EXPECT_EQ(c->stats().retransmissions, 3u);
  EXPECT_EQ(c->stats().timeouts, 1u);
  EXPECT_FALSE(c->healthy(0));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST_F(NgClientTest, ReplyFromAnotherSourceIsIgnoredAndCounted) {
  auto c = client({a.address()});
  Outcome<void> out;
  c->ping(0, out.cb());
  ASSERT_TRUE(pump(io, [&] { return !a.got().empty(); }));
  auto req = a.got().front();
  // The right cookie, from the wrong address.
  b.send(req.from, encodeNgMessage(req.message().cookie, Dict{{"result", "pong"}}));
  ASSERT_TRUE(pump(io, [&] { return c->stats().strayReplies == 1; }));
  EXPECT_FALSE(out.r.has_value());
  // An unknown cookie from the right address, and bytes that are no ng message.
  a.send(req.from, encodeNgMessage("nobody_1", Dict{{"result", "pong"}}));
  a.send(req.from, "garbage");
  ASSERT_TRUE(pump(io, [&] { return c->stats().strayReplies == 2; }));
  ASSERT_TRUE(pump(io, [&] { return c->stats().malformedReplies == 1; }));
  EXPECT_FALSE(out.r.has_value());
  a.reply(req, Dict{{"result", "pong"}});
  ASSERT_TRUE(pump(io, [&] { return out.r.has_value(); }));
  EXPECT_TRUE(out.r->ok());
  // A late duplicate of the reply is stray too.
  a.reply(req, Dict{{"result", "pong"}});
  ASSERT_TRUE(pump(io, [&] { return c->stats().strayReplies == 3; }));
}

TEST_F(NgClientTest, ErrorResultIsRejectedWithReason) {
  auto c = client({a.address()});
  Outcome<Dict> out;
  c->query(NgCallRef{"nope", "", "", ""}, out.cb());
  ASSERT_TRUE(pump(io, [&] { return !a.got().empty(); }));
  a.reply(a.got().front(), Dict{{"result", "error"}, {"error-reason", "Unknown call-id"}});
  ASSERT_TRUE(pump(io, [&] { return out.r.has_value(); }));
  ASSERT_FALSE(out.r->ok());
  EXPECT_EQ(out.r->error().code, int(NgError::Rejected));
  EXPECT_EQ(out.r->error().message, "rtpengine: query: Unknown call-id");
  EXPECT_EQ(c->stats().rejected, 1u);
}

TEST_F(NgClientTest, OffersRoundRobinAndLaterCommandsFollowTheCall) {
  auto c = client({a.address(), b.address()});
  Outcome<SdpReply> o1, o2, ans;
  c->offer(offer("c1"), o1.cb());
  c->offer(offer("c2"), o2.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 1 && b.got().size() == 1; }));
  EXPECT_EQ(a.got()[0].message().dict.string("call-id"), "c1");
  EXPECT_EQ(b.got()[0].message().dict.string("call-id"), "c2");
  a.reply(a.got()[0], Dict{{"result", "ok"}, {"sdp", "x"}});
  b.reply(b.got()[0], Dict{{"result", "ok"}, {"sdp", "y"}});
  ASSERT_TRUE(pump(io, [&] { return o1.r && o2.r; }));
  EXPECT_EQ((*o2.r)->instance, 1u);
  // c2's answer goes to b, where the call is, though a would be next in turn.
  AnswerRequest r = offer("c2");
  r.call.toTag = "tt";
  c->answer(r, ans.cb());
  ASSERT_TRUE(pump(io, [&] { return b.got().size() == 2; }));
  EXPECT_EQ(b.got()[1].message().dict.string("command"), "answer");
  EXPECT_EQ(b.got()[1].message().dict.string("to-tag"), "tt");
  EXPECT_EQ(a.got().size(), 1u);
  // A re-offer of c1 (re-INVITE) stays on a.
  Outcome<SdpReply> re;
  c->offer(offer("c1"), re.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 2; }));
}

// A lost instance (relay failure): its calls are reported and no longer pinned to it.
TEST_F(NgClientTest, DropCallsOnReturnsAndForgetsTheInstancesCalls) {
  auto c = client({a.address(), b.address()});
  Outcome<SdpReply> o1, o2;
  c->offer(offer("c1"), o1.cb());
  c->offer(offer("c2"), o2.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 1 && b.got().size() == 1; }));
  a.reply(a.got()[0], Dict{{"result", "ok"}, {"sdp", "x"}});
  b.reply(b.got()[0], Dict{{"result", "ok"}, {"sdp", "y"}});
  ASSERT_TRUE(pump(io, [&] { return o1.r && o2.r; }));
  EXPECT_EQ(c->dropCallsOn(0), (std::vector<std::string>{"c1"}));
  EXPECT_EQ(c->instanceOf("c1"), std::nullopt);
  EXPECT_EQ(c->instanceOf("c2"), 1u);
  EXPECT_TRUE(c->dropCallsOn(0).empty());
}

TEST_F(NgClientTest, OfferFailsOverToTheNextInstanceOnTimeout) {
  auto c = client({a.address(), b.address()});
  Outcome<SdpReply> out;
  c->offer(offer("c1"), out.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 1; }));
  timers.advance(Duration(2000)); // a never answers
  ASSERT_TRUE(pump(io, [&] { return b.got().size() == 1; }));
  EXPECT_EQ(b.got()[0].message().dict.string("call-id"), "c1");
  EXPECT_FALSE(c->healthy(0));
  b.reply(b.got()[0], Dict{{"result", "ok"}, {"sdp", "y"}});
  ASSERT_TRUE(pump(io, [&] { return out.r.has_value(); }));
  ASSERT_TRUE(out.r->ok());
  EXPECT_EQ((*out.r)->instance, 1u);
  EXPECT_EQ(c->stats().failovers, 1u);
  // While a is unhealthy, new calls go to b first.
  Outcome<SdpReply> next;
  c->offer(offer("c2"), next.cb());
  ASSERT_TRUE(pump(io, [&] { return b.got().size() == 2; }));
  // Every instance tried: the offer fails.
  timers.advance(Duration(2000));
  ASSERT_TRUE(pump(io, [&] { return a.got().size() >= 2; }));
  timers.advance(Duration(2000));
  ASSERT_TRUE(next.r.has_value());
  EXPECT_EQ(next.r->error().code, int(NgError::Timeout));
}

TEST_F(NgClientTest, CommandsOfAPinnedCallDoNotFailOver) {
  auto c = client({a.address(), b.address()});
  Outcome<SdpReply> o;
  c->offer(offer("c1"), o.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 1; }));
  a.reply(a.got()[0], Dict{{"result", "ok"}, {"sdp", "x"}});
  ASSERT_TRUE(pump(io, [&] { return o.r.has_value(); }));
  Outcome<Dict> q;
  c->query(NgCallRef{"c1", "", "", ""}, q.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 2; }));
  timers.advance(Duration(2000));
  ASSERT_TRUE(q.r.has_value());
  EXPECT_EQ(q.r->error().code, int(NgError::Timeout));
  settle(io);
  EXPECT_TRUE(b.got().empty());
}

TEST_F(NgClientTest, DeleteForgetsTheCall) {
  auto c = client({a.address(), b.address()});
  Outcome<SdpReply> o;
  c->offer(offer("c1"), o.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 1; }));
  a.reply(a.got()[0], Dict{{"result", "ok"}, {"sdp", "x"}});
  ASSERT_TRUE(pump(io, [&] { return o.r.has_value(); }));
  Outcome<Dict> d;
  c->deleteCall(DeleteRequest{NgCallRef{"c1", "ft", "", ""}, {}}, d.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 2; }));
  EXPECT_EQ(a.got()[1].message().dict.string("command"), "delete");
  a.reply(a.got()[1], Dict{{"result", "ok"}, {"created", 1}});
  ASSERT_TRUE(pump(io, [&] { return d.r.has_value(); }));
  ASSERT_TRUE(d.r->ok());
  EXPECT_EQ((*d.r)->integer("created"), 1);
  EXPECT_EQ(c->instanceOf("c1"), std::nullopt);
}

TEST_F(NgClientTest, PlayAndStopMedia) {
  auto c = client({a.address()});
  Outcome<PlayMediaReply> play;
  c->playMedia(PlayMediaRequest{NgCallRef{"c1", "held", "", ""}, "/x/moh.wav", 10, {}}, play.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 1; }));
  const Dict& d = a.got()[0].message().dict;
  EXPECT_EQ(d.string("command"), "play media");
  EXPECT_EQ(d.string("from-tag"), "held");
  EXPECT_EQ(d.string("file"), "/x/moh.wav");
  EXPECT_EQ(d.integer("repeat-times"), 10);
  a.reply(a.got()[0], Dict{{"result", "ok"}, {"duration", 3000}});
  ASSERT_TRUE(pump(io, [&] { return play.r.has_value(); }));
  EXPECT_EQ((*play.r)->durationMs, 3000);
  Outcome<void> stop;
  c->stopMedia(StopMediaRequest{NgCallRef{"c1", "held", "", ""}, {}}, stop.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 2; }));
  EXPECT_EQ(a.got()[1].message().dict.string("command"), "stop media");
  a.reply(a.got()[1], Dict{{"result", "ok"}});
  ASSERT_TRUE(pump(io, [&] { return stop.r.has_value(); }));
  EXPECT_TRUE(stop.r->ok());
}

TEST_F(NgClientTest, ReplyWithoutSdpIsBadReply) {
  auto c = client({a.address()});
  Outcome<SdpReply> out;
  c->offer(offer("c1"), out.cb());
  ASSERT_TRUE(pump(io, [&] { return a.got().size() == 1; }));
  a.reply(a.got()[0], Dict{{"result", "ok"}});
  ASSERT_TRUE(pump(io, [&] { return out.r.has_value(); }));
  EXPECT_EQ(out.r->error().code, int(NgError::BadReply));
}

TEST_F(NgClientTest, NoAddressShutdownAndOverload) {
  auto none = client({std::nullopt});
  Outcome<void> p;
  none->ping(0, p.cb());
  ASSERT_TRUE(pump(io, [&] { return p.r.has_value(); }));
  EXPECT_EQ(p.r->error().code, int(NgError::NoInstance));

  NgClientOptions small;
  small.maxInFlight = 1;
  NgClient c(io, timers, {a.address()}, small);
  Outcome<void> first, second;
  c.ping(0, first.cb());
  c.ping(0, second.cb());
  ASSERT_TRUE(pump(io, [&] { return second.r.has_value(); }));
  EXPECT_EQ(second.r->error().code, int(NgError::Overloaded));
  c.shutdown();
  ASSERT_TRUE(first.r.has_value());
  EXPECT_EQ(first.r->error().code, int(NgError::Cancelled));
  EXPECT_EQ(timers.pending(), 0u);
}

} // namespace
