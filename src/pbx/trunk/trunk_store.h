#pragma once
// Persistence of the trunk settings in the node's database (module "trunk" migrations). One
// trunk per node: one row in `trunk` plus its DID map in `trunk_dids`. The password is stored as
// given (the digest client needs it to answer challenges for any realm); protect the database
// file accordingly. Rows are untrusted input: bad values give an error, never an exception.
#include "base/result.h"
#include "pbx/trunk/trunk_config.h"
#include "store/database.h"

#include <optional>
#include <vector>

namespace verbund::pbx {

std::vector<store::Migration> trunkMigrations();

// The saved settings, or nullopt when none were ever saved.
Result<std::optional<TrunkConfig>> loadTrunk(store::Database& db);
// Validates and replaces the saved settings (one transaction).
Result<void> saveTrunk(store::Database& db, const TrunkConfig& config);

} // namespace verbund::pbx
