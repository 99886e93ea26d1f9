// Who is calling: the caller an office terminal's verified client certificate names, or the モバイル端末 session
// that the consent page's URL token opens (docs/api.md "Certificates"). The session (session.hpp) asks once per
// connection and per request; the routes check what the caller may do (router.hpp).
#pragma once

#include "usecases/service.hpp"

#include <optional>
#include <string>

namespace kyotaku::server {

// The caller of a request without a client certificate that carries the consent page's URL token in the
// X-Kyotaku-Url-Token header: a モバイル端末 session of that facility; anonymous when the token is not usable.
Caller mobile_caller(Service& service, std::string const& url_token);

// The caller an office terminal's verified certificate names: CN = 医療機関等コード (or kyotaku-admin), OU = role
// (管理者 | 職員; none: 職員), title = terminal kind (資格確認端末 | 電子カルテ端末 | モバイル端末; none:
// 資格確認端末). Anything else is anonymous. `fingerprint`: the certificate's SHA-256 (hex), kept in
// Caller::certificate and, its first 16 digits, in the subject every audit record keeps — two terminals of one facility
// with the same subject are told apart.
Caller caller_from_subject(Service& service, std::string const& cn, std::string const& ou, std::string const& title,
                           std::string const& fingerprint = {});

// The key of a client's budgets (Caller::client) from its connection's address: IPv4 as it is (an IPv4-mapped
// IPv6 address as IPv4), IPv6 by its /64 — one household or one phone is given a whole /64, so counting single
// IPv6 addresses would give anyone millions of budgets. Text that is not an address is kept as it is.
std::string client_key(std::string const& address);

// The client's address in a PROXY protocol v1 header line ("PROXY TCP4 SRC DST SPORT DPORT\r\n", at most 107
// bytes): SRC; "" for "PROXY UNKNOWN…" (a balancer's own health check: the balancer's address stands); nullopt when
// the line is not such a header.
std::optional<std::string> proxy_v1_source(std::string const& line);

// The caller's role for the log: operator (kyotaku-admin), a facility's manager (管理者) or staff (職員), a
// モバイル端末 session, monitoring, or nobody.
char const* role_of(Caller const& c);

}  // namespace kyotaku::server
