// Cross-site calls after a cut (docs/federation-protocol.md "Calls across a cut"): a BYE sent
// while the link between two nodes was down is lost, so after the relink each node lists the
// calls it still holds with the other ("calls-held"), and a call that one node holds connected
// and the other no longer has is ended where it is still up.
#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/call.h"

#include <algorithm>
#include <unordered_set>

namespace verbund::pbx {

namespace {
Counter g_endedByPeer("verbund_calls_ended_by_peer_total",
                      "Calls ended after a relink because the other node no longer held them "
                      "(their BYE was lost during the cut)");
} // namespace

std::vector<std::pair<std::string, std::string>>
CallManager::crossSiteLegs(const Call& call) const {
  std::vector<std::pair<std::string, std::string>> legs;
  // A caller of another node: that node's call has our correlation id (X-Verbund-Call).
  if (isFederation(call.caller) && isRemote(call.caller.party))
    legs.emplace_back(call.caller.party.owner, call.correlationId);
  if (!call.connected()) return legs;
  if (call.answer == AnswerKind::Remote && isRemote(call.answeredBy))
    legs.emplace_back(call.answeredBy.owner, call.correlationId);
  // A picker of another node: its node knows the call by the picker's call id.
  if (call.answer == AnswerKind::PickedUp && isRemote(call.answeredBy))
    legs.emplace_back(call.answeredBy.owner, call.relatedCorrelationId.empty()
                                                 ? call.correlationId
                                                 : call.relatedCorrelationId);
  return legs;
}

std::vector<std::string> CallManager::callsHeldWith(const std::string& node) const {
  // Every call that involves the node, also unanswered ones: listing too much only keeps a call
  // up (the peer ends only calls it holds connected), listing too little would end it.
  std::vector<std::string> ids;
  for (const auto& [id, c] : calls_) {
    if (c->ended()) continue;
    bool involved = std::find(c->nodes.begin(), c->nodes.end(), node) != c->nodes.end();
    for (const auto& leg : crossSiteLegs(*c)) involved = involved || leg.first == node;
    if (!involved) continue;
    ids.push_back(c->correlationId);
    if (!c->relatedCorrelationId.empty()) ids.push_back(c->relatedCorrelationId);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<std::string> CallManager::linkUp(const std::string& node) {
  // Only calls connected before the relink may be ended by the peer's list: a call set up after
  // it may be missing from a list the peer wrote before the call reached it.
  auto& held = relinked_[node];
  held.clear();
  for (const auto& [id, c] : calls_)
    if (c->connected())
      for (auto& leg : crossSiteLegs(*c))
        if (leg.first == node) held.emplace_back(id, std::move(leg.second));
  return callsHeldWith(node);
}

void CallManager::linkDown(const std::string& node) {
  relinked_.erase(node);
}

size_t CallManager::peerHolds(const std::string& node, const std::vector<std::string>& ids) {
  auto it = relinked_.find(node);
  if (it == relinked_.end()) return 0; // no link-up seen: nothing to compare with
  std::unordered_set<std::string> theirs(ids.begin(), ids.end());
  std::vector<CallId> gone;
  for (const auto& [id, legId] : it->second) {
    if (theirs.count(legId)) continue;
    Call* call = callOf(id);
    if (!call || !call->connected()) continue;
    auto legs = crossSiteLegs(*call);
    if (std::find(legs.begin(), legs.end(), std::make_pair(node, legId)) != legs.end())
      gone.push_back(id);
  }
  size_t ended = 0;
  for (CallId id : gone) {
    Call* call = callOf(id);
    if (!call || call->ended()) continue;
    logger("calls")->info("call {}: node {} no longer holds it (its end was lost while the link "
                          "was down): ending it here",
                          call->correlationId, node);
    ++stats_.endedByPeer;
    g_endedByPeer.inc();
    // BYE to both legs: the phone's, and the other node's (answered 481 there; it ends our
    // dialog with it at once instead of at its session timer).
    hangUp(*call, 0);
    ++ended;
  }
  return ended;
}

} // namespace verbund::pbx
