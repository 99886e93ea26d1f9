#pragma once

#include "../check/ir.hpp"

namespace kyotaku::lowering {
// Lowers the checked tree to the register program (see kyotaku/opcodes.hpp).
Program lower(check::Checked&& checked);
}
