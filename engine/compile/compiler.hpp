#pragma once

#include "../check/ir.hpp"

#include <optional>

namespace kyotaku::lowering {
// Lowers the checked tree to the register program (see kyotaku/opcodes.hpp); nullopt when the rule set is too
// large for the instruction format (more than 65,536 registers, clauses or slots).
std::optional<Program> lower(check::Checked&& checked);
}
