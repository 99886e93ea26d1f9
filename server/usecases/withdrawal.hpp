// 同意取消照会 (通知 別添3): an office terminal of the facility looks the person up among the facility's open consents,
// confirms, and withdraws them. Requests and answers are domain types; http/api_json.hpp reads and writes them.
#pragma once

#include "usecases/context.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace kyotaku::server {

struct WithdrawalRequest {
    CardFields card;
    bool confirmed = false;  // the staff confirmed the person (withdraw only)
};

// The person found, to confirm before withdrawing: name, birthdate and this facility's open consents, newest first.
struct WithdrawalPerson {
    std::string name, name_kana, birthdate;
    struct OpenConsent {
        std::string visit_kind, first_visit;
    };
    std::vector<OpenConsent> consents;
};

// What was withdrawn: how many consents, when, and by whom (the certificate's subject).
struct Withdrawn {
    std::size_t count = 0;
    std::string at, by;
};

// Both write 資格確認履歴 (同意取消照会, 同意取消) with who asked and the card fields the caller named.
class WithdrawalDesk {
public:
    explicit WithdrawalDesk(Context& x) : x_(x) {}
    WithdrawalPerson lookup(Caller const& c, CardFields const& card);
    Withdrawn withdraw(Caller const& c, WithdrawalRequest const& request);

private:
    Context& x_;
};

}  // namespace kyotaku::server
