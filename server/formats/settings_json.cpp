#include "formats/settings_json.hpp"

namespace kyotaku::server {

nlohmann::json settings_json(Settings const& s) {
    nlohmann::json view = nlohmann::json::object();
    for (std::size_t i = 0; i < viewing_items.size(); ++i) view[viewing_items[i].name] = s.viewing[i];
    return nlohmann::json{{"terms_agreed", s.terms_agreed},
                          {"home_visit_enabled", s.home_visit_enabled},
                          {"online_enabled", s.online_enabled},
                          {"viewing_items", view},
                          {"updated_at", s.updated_at}};
}

}  // namespace kyotaku::server
