// sip_message_diff: parses each file given on the command line with our parser and with
// sofia-sip and prints the compared fields side by side. A debugging aid for
// sip_message_conformance_test; exits 1 when any file disagrees.
#include "conformance_compare.h"
#include "message_fields.h"
#include "sofia_fields.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

using namespace verbund::sip::conformance;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s message.sip...\n", argv[0]);
    return 2;
  }
  int disagreements = 0;
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "%s: cannot open\n", argv[i]);
      return 2;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string data = ss.str();
    MessageFields ours = verbundFields(data);
    SofiaFields theirs = sofiaFields(data);
    std::vector<std::string> diffs = compareFields(ours, theirs);
    std::cout << "== " << argv[i] << (diffs.empty() ? " (agree)" : " (DIFFER)") << "\n-- verbund\n"
              << describe(ours) << "-- sofia"
              << (theirs.erroneousHeaders.empty() ? ""
                                                  : " (erroneous: " + theirs.erroneousHeaders + ")")
              << "\n"
              << describe(theirs);
    for (const auto& d : diffs) std::cout << "   ! " << d << "\n";
    if (!diffs.empty()) ++disagreements;
  }
  return disagreements ? 1 : 0;
}
