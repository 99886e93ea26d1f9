#include "http/callers.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <vector>

namespace kyotaku::server {

Caller caller_from_subject(Service& service, std::string const& cn, std::string const& ou, std::string const& title,
                           std::string const& fingerprint) {
    Caller c;
    c.subject = cn;
    c.certificate = fingerprint;
    if (cn == "kyotaku-admin") {
        c.kind = Caller::Kind::admin;
        return c;
    }
    if (cn.empty() || !service.facility_exists(cn)) return c;
    // The role is the subject's OU, the terminal kind its title (2.5.4.12): docs/api.md "Certificates". A
    // certificate that names an unknown role or terminal is nobody, not the weakest of them. One that names none is
    // the least of them (least privilege, issue 24 item 11): 職員, and モバイル端末 — the notice allows staff's own
    // devices (BYOD, 別添2) and never medical information on a mobile device, so a certificate that does not say it
    // is an office terminal is not taken for one.
    if (ou == "管理者") c.role = Caller::Role::manager;
    else if (ou.empty() || ou == "職員") c.role = Caller::Role::staff;
    else return Caller{};
    if (title.empty()) c.terminal = "モバイル端末";
    else if (title == "資格確認端末" || title == "電子カルテ端末" || title == "モバイル端末") c.terminal = title;
    else return Caller{};
    c.kind = Caller::Kind::facility;
    c.facility_code = cn;
    c.subject = cn + (ou.empty() ? "" : " " + ou) + (title.empty() ? "" : " " + title) +
                (fingerprint.empty() ? "" : " SHA256:" + fingerprint.substr(0, 16));
    return c;
}

Caller mobile_caller(Service& service, std::string const& url_token) {
    Caller c;
    if (url_token.empty() || url_token.size() > 512) return c;
    auto check = service.settings.check_token(url_token);
    if (!check.facility_code) return c;
    c.kind = Caller::Kind::mobile;
    c.facility_code = *check.facility_code;
    c.subject = "モバイル端末";
    c.terminal = "モバイル端末";
    return c;
}

std::string client_key(std::string const& address) {
    boost::system::error_code ec;
    auto const a = boost::asio::ip::make_address(address, ec);
    if (ec) return address;
    if (a.is_v4()) return a.to_string();
    auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
    auto bytes = v6.to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

std::optional<std::string> proxy_v1_source(std::string const& line) {
    if (line.size() > 107 || line.size() < 8 || line.rfind("PROXY ", 0) != 0 || line.substr(line.size() - 2) != "\r\n")
        return std::nullopt;
    std::vector<std::string> words;
    std::size_t at = 6;
    for (std::size_t space; (space = line.find(' ', at)) != std::string::npos && space < line.size() - 2;
         at = space + 1)
        words.push_back(line.substr(at, space - at));
    words.push_back(line.substr(at, line.size() - 2 - at));
    if (!words.empty() && words[0] == "UNKNOWN") return std::string();
    if (words.size() != 5 || (words[0] != "TCP4" && words[0] != "TCP6")) return std::nullopt;
    boost::system::error_code ec;
    auto const source = boost::asio::ip::make_address(words[1], ec);
    if (ec || source.is_v4() != (words[0] == "TCP4")) return std::nullopt;
    return source.to_string();
}

char const* role_of(Caller const& c) {
    switch (c.kind) {
        case Caller::Kind::admin: return "operator";
        case Caller::Kind::facility: return c.role == Caller::Role::manager ? "manager" : "staff";
        case Caller::Kind::mobile: return "mobile";
        default: return c.subject == "kyotaku-monitor" ? "monitor" : "anonymous";
    }
}

}  // namespace kyotaku::server
