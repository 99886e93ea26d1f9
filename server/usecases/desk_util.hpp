// Small pieces the desks share (not part of the server's interface).
#pragma once

#include "core/codes.hpp"
#include "usecases/service.hpp"

#include <sstream>
#include <string>
#include <vector>

namespace kyotaku::server {

inline void require_admin(Caller const& c) {
    if (c.kind != Caller::Kind::admin) throw forbidden("運用者 (kyotaku-admin) の証明書が必要です", "the operator's certificate is required");
}
inline void require_facility(Caller const& c) {
    if (c.kind != Caller::Kind::facility) throw forbidden("医療機関等の証明書が必要です", "a facility certificate is required");
}
// 管理者 of the facility (通知 別添1: 環境設定, 医療機関別URL, the device ledger, withdrawals).
inline void require_manager(Caller const& c) {
    require_facility(c);
    if (c.role != Caller::Role::manager)
        throw forbidden("施設の管理者の証明書が必要です (職員の証明書ではできません)", "the facility's 管理者 certificate is required");
}

// The card fields of a request, canonical and validated (insurer_number, symbol, number, branch, birthdate).
Card card_from(CardFields const& f);
inline Card card_from(Fields const& f) { return card_from(card_fields(f)); }

// One line of a CSV file split at commas (the files of this system quote nothing).
std::vector<std::string> split_csv_line(std::string const& line);

std::vector<unsigned char> from_hex(std::string const& hex);

// Writes one 資格確認履歴 entry: the fields a record needs, never a request body.
void log_inquiry(Context& x, std::string const& facility, char const* kind, std::string const& person, bool allowed, json const& detail);

}  // namespace kyotaku::server
