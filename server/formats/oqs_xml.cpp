#include "formats/oqs_xml.hpp"

#include "core/codes.hpp"
#include "kyotaku/calendar.hpp"
#include "formats/fields.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <iconv.h>
#include <span>
#include <sstream>

namespace kyotaku::server {

std::vector<ResultCode> const& processing_result_codes() {
    static std::vector<ResultCode> const codes{
        {"", "正常終了 (the row was answered)"},
        {"EKY0001", "要求の項目が不正 (a field of the row is missing or invalid; the message names it)"},
        {"EKY0101", "再照会できない (the rule set refused the re-inquiry; the message is its reason with file:line)"},
        {"EKY0901", "ファイルが不正 (the file itself: not XML, wrong root, wrong facility, no rows)"},
    };
    return codes;
}

std::string declared_encoding(std::string_view xml) {
    auto end = xml.find("?>");
    if (xml.rfind("<?xml", 0) != 0 || end == std::string_view::npos) return "UTF-8";
    std::string decl(xml.substr(0, end));
    auto at = decl.find("encoding=");
    if (at == std::string::npos || at + 10 > decl.size()) return "UTF-8";
    char quote = decl[at + 9];
    auto close = decl.find(quote, at + 10);
    if (close == std::string::npos) return "UTF-8";
    std::string enc = decl.substr(at + 10, close - at - 10);
    for (auto& c : enc) c = char(std::toupper(static_cast<unsigned char>(c)));
    return enc;
}

std::string answer_encoding(std::string_view xml) {
    std::string enc = declared_encoding(xml);
    return enc == "SHIFT_JIS" ? enc : "UTF-8";
}

namespace {
// Shift_JIS files from Windows receipt computers are CP932 (a superset); iconv names it so.
std::string iconv_name(std::string const& enc) {
    if (enc == "SHIFT_JIS" || enc == "SHIFT-JIS" || enc == "SJIS" || enc == "CP932" || enc == "WINDOWS-31J")
        return "CP932";
    return enc;
}

std::string convert(std::string_view in, std::string const& from, std::string const& to) {
    iconv_t cd = iconv_open(to.c_str(), from.c_str());
    if (cd == iconv_t(-1))
        throw invalid("encoding", "文字コード " + from + " は使えません", "unsupported encoding " + from);
    std::string out(in.size() * 2 + 16, '\0');
    char* src = const_cast<char*>(in.data());
    std::size_t src_left = in.size();
    char* dst = out.data();
    std::size_t dst_left = out.size();
    while (src_left > 0) {
        if (iconv(cd, &src, &src_left, &dst, &dst_left) == std::size_t(-1)) {
            if (errno == E2BIG) {
                std::size_t used = std::size_t(dst - out.data());
                out.resize(out.size() * 2);
                dst = out.data() + used;
                dst_left = out.size() - used;
                continue;
            }
            iconv_close(cd);
            throw invalid("encoding",
                          "文字コードの変換に失敗しました (" + std::to_string(in.size() - src_left) + " バイト目)",
                          "invalid " + from + " bytes at offset " + std::to_string(in.size() - src_left));
        }
    }
    iconv_close(cd);
    out.resize(std::size_t(dst - out.data()));
    return out;
}

// The converters of one thread between UTF-8 and CP932, opened once (an answer converts many short values).
struct Cp932Converters {
    iconv_t out = iconv_open("CP932", "UTF-8"), in = iconv_open("UTF-8", "CP932");
    ~Cp932Converters() {
        if (out != iconv_t(-1)) iconv_close(out);
        if (in != iconv_t(-1)) iconv_close(in);
    }
};
Cp932Converters& cp932() {
    thread_local Cp932Converters c;
    if (c.out == iconv_t(-1) || c.in == iconv_t(-1)) throw std::runtime_error("iconv has no CP932");
    return c;
}

// Runs `cd` over all of `in`, growing `out`; at a character it cannot convert, `on_unconvertible(src, left, out)`
// must consume it (advance src) and may append to out.
template <class OnUnconvertible>
void run_iconv(iconv_t cd, std::string_view in, std::string& out, OnUnconvertible on_unconvertible) {
    iconv(cd, nullptr, nullptr, nullptr, nullptr);  // a fresh shift state
    out.assign(in.size() * 2 + 16, '\0');
    char* src = const_cast<char*>(in.data());
    std::size_t src_left = in.size();
    char* dst = out.data();
    std::size_t dst_left = out.size();
    while (src_left > 0) {
        if (iconv(cd, &src, &src_left, &dst, &dst_left) != std::size_t(-1)) continue;
        std::size_t used = std::size_t(dst - out.data());
        if (errno == E2BIG) {
            out.resize(out.size() * 2);
        } else {
            out.resize(used);
            on_unconvertible(src, src_left, out);
            used = out.size();
            out.resize(std::max(out.size() * 2, used + 16));
        }
        dst = out.data() + used;
        dst_left = out.size() - used;
    }
    out.resize(std::size_t(dst - out.data()));
}

// A variation selector (U+FE00..U+FE0F, U+E0100..U+E01EF) chooses a glyph of the character before it; CP932 has
// no such thing, so it is dropped and the character stays.
bool variation_selector(char32_t cp) { return (cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xE0100 && cp <= 0xE01EF); }

// UTF-8 (valid) → CP932. A character CP932 cannot hold — 外字 such as 𠮷 (JIS X 0213 plane 2) or 𡈽 — becomes 〓
// (U+3013 GETA MARK, CP932 0x81AC), the substitute the real system's files write; a variation selector is dropped.
// Both are counted in `lost`. Never throws for a character.
std::string encode_cp932(std::string_view utf8, std::size_t& lost) {
    std::string out;
    run_iconv(cp932().out, utf8, out, [&](char*& src, std::size_t& left, std::string& o) {
        auto const c = static_cast<unsigned char>(*src);
        std::size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        n = std::min(n, left);
        char32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
        for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(src[k]) & 0x3F);
        if (!variation_selector(cp)) o += "\x81\xAC";
        ++lost;
        src += n;
        left -= n;
    });
    return out;
}

// The text as a CP932 answer will show it, in UTF-8 (〓 for what CP932 cannot hold). ASCII is returned as it is.
std::string fit_cp932(std::string_view utf8, std::size_t& lost) {
    if (std::all_of(utf8.begin(), utf8.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x80; }))
        return std::string(utf8);
    std::string const bytes = encode_cp932(utf8, lost);
    std::string back;
    run_iconv(cp932().in, bytes, back, [](char*&, std::size_t&, std::string&) {
        throw std::logic_error("CP932 that iconv wrote does not read back");
    });
    return back;
}

// Fits every text under `node` (a unit of an answer) to CP932; how many characters it substituted. Walked without
// recursion.
std::size_t fit_subtree_cp932(pugi::xml_node node) {
    std::size_t lost = 0;
    for (pugi::xml_node n = node.first_child(); n && n != node;) {
        if (n.type() == pugi::node_pcdata) n.set_value(fit_cp932(n.value(), lost).c_str());
        if (n.first_child()) {
            n = n.first_child();
            continue;
        }
        while (n != node && !n.next_sibling()) n = n.parent();
        if (n != node) n = n.next_sibling();
    }
    return lost;
}

// Every name, text and attribute of the document is UTF-8 text of a field's size: character references can still
// make what the bytes did not hold (&#xD800; decodes to a surrogate, &#1; to a control character, &#xFFFE; to a
// non-character that no XML answer could carry back), and no field of these layouts is longer than a few dozen
// characters. A refused character (fields.hpp) refuses the file at the door, naming the element. Walked without
// recursion (the depth is the file's).
void check_text_nodes(pugi::xml_document const& doc) {
    constexpr std::size_t longest = 1000;  // bytes of one name or value
    auto bad = [](char const* text) {
        std::string_view v(text);
        return v.size() > longest || !valid_utf8(v) || refused_character(v).has_value();
    };
    for (pugi::xml_node n = doc.first_child(); n;) {
        std::string const where = n.type() == pugi::node_element ? n.name() : n.parent().name();
        bool wrong = bad(n.name()) || bad(n.value());
        for (auto a : n.attributes()) wrong = wrong || bad(a.name()) || bad(a.value());
        if (wrong) {
            bool const named = valid_utf8(where) && where.size() <= 100 && !refused_character(where);
            std::string const element = named ? where : std::string("?");
            std::optional<char32_t> cp;
            auto find = [&](std::string_view v) {
                if (!cp && valid_utf8(v)) cp = refused_character(v);
            };
            find(n.name());
            find(n.value());
            for (auto a : n.attributes()) find(a.name()), find(a.value());
            if (cp) {
                auto [ja, en] = describe_character(*cp);
                throw invalid(named ? where : "", "要素 " + element + " に使えない文字 " + ja + " があります",
                              "element " + element + " holds " + en);
            }
            throw invalid(named ? where : "", "要素 " + element + " の文字が正しくないか、長すぎます (1000バイトまで)",
                          "element " + element + " holds text that is not UTF-8 or is longer than 1000 bytes");
        }
        if (n.first_child()) {
            n = n.first_child();
            continue;
        }
        while (n && !n.next_sibling()) n = n.parent();
        if (n) n = n.next_sibling();
    }
}

// The children of one search info as sent (name, value pairs in order, for the echo). A child the layout does not
// name refuses the file, naming it: nothing a layout does not document is read, stored or echoed.
Echo known_children(pugi::xml_node info, std::span<std::string_view const> known, std::size_t index) {
    Echo echo;
    for (auto child : info.children()) {
        if (child.type() != pugi::node_element) continue;
        if (std::find(known.begin(), known.end(), std::string_view(child.name())) == known.end())
            throw invalid(child.name(),
                          std::string(info.name()) + " の " + std::to_string(index) + " 件目に使えない要素 " +
                              child.name() + " があります",
                          std::string(info.name()) + " #" + std::to_string(index) + ": unknown element " +
                              child.name());
        echo.emplace_back(child.name(), child.text().as_string());
    }
    return echo;
}

pugi::xml_document load(std::string const& bytes, std::string& encoding) {
    encoding = declared_encoding(bytes);
    std::string utf8;
    if (encoding != "UTF-8") {
        utf8 = to_utf8(bytes, encoding);
    } else if (valid_utf8(bytes)) {
        utf8 = bytes;
    } else if (bytes.find("encoding=") == std::string::npos && bytes.find("encoding =") == std::string::npos) {
        // No declaration and not UTF-8: receipt computers write Shift_JIS (CP932); read it as that, or refuse.
        encoding = "SHIFT_JIS";
        utf8 = to_utf8(bytes, encoding);
    } else {
        throw invalid("encoding", "UTF-8 と宣言されていますが UTF-8 ではありません",
                      "declared UTF-8 but the bytes are not UTF-8");
    }
    // &#0; (not an XML character) would end a text where pugixml stores it: refused, not silently cut.
    for (auto at = utf8.find("&#"); at != std::string::npos; at = utf8.find("&#", at + 2)) {
        std::size_t digits = at + 2 + (at + 2 < utf8.size() && (utf8[at + 2] == 'x' || utf8[at + 2] == 'X'));
        std::size_t end = utf8.find_first_not_of('0', digits);
        if (end != digits && end != std::string::npos && utf8[end] == ';')
            throw invalid("", "文字参照 &#0; は使えません (" + std::to_string(at) + " バイト目)",
                          "the character reference &#0; is not XML (offset " + std::to_string(at) + ")");
    }
    pugi::xml_document doc;
    // The declaration still names Shift_JIS: tell pugixml the buffer is UTF-8 now.
    auto r =
        doc.load_buffer(utf8.data(), utf8.size(), pugi::parse_default | pugi::parse_declaration, pugi::encoding_utf8);
    if (!r)
        throw invalid("", std::string("XML として読めません (") + std::to_string(r.offset) + " バイト目)",
                      std::string("not well-formed XML: ") + r.description() + " (offset " + std::to_string(r.offset) +
                          ")");
    if (!doc.child("XmlMsg"))
        throw invalid("XmlMsg", "ルート要素 XmlMsg がありません", "the root element must be XmlMsg");
    check_text_nodes(doc);
    return doc;
}

std::string text(pugi::xml_node n, char const* child) { return n.child(child).text().as_string(); }

std::string yyyymmdd_to_iso(std::string const& s, char const* field) {
    if (s.size() != 8 || s.find_first_not_of("0123456789") != std::string::npos)
        throw invalid(field, std::string(field) + " は yyyyMMdd です", std::string(field) + " must be yyyyMMdd");
    auto d = Date::from_ymd(std::stoi(s.substr(0, 4)), unsigned(std::stoi(s.substr(4, 2))),
                            unsigned(std::stoi(s.substr(6, 2))));
    if (!d) throw invalid(field, std::string(field) + ": 存在しない日付です", "no such day: " + s);
    return d->iso();
}

std::string iso_to_yyyymmdd(std::string const& iso) {
    std::string out;
    for (char c : iso)
        if (c != '-') out += c;
    return out;
}


// The answer's bytes: UTF-8 as it is, Shift_JIS as CP932 with 〓 for what CP932 cannot hold (counted in `lost`
// under unit 0: outside any unit). In both, a character XML 1.0 cannot carry (or no field takes: stored before the
// door refused it, by an older server) is written as 〓 and counted the same way: the answer stays well-formed.
std::string save(pugi::xml_document& doc, std::string const& encoding, Substitutions* lost) {
    // Before pugixml writes it (it would write U+0001 as &#1;, which XML 1.0 does not allow either).
    struct Clean : pugi::xml_tree_walker {
        std::size_t refused = 0;
        bool for_each(pugi::xml_node& node) override {
            if (node.type() == pugi::node_pcdata || node.type() == pugi::node_cdata) clean(node);
            for (auto attribute : node.attributes()) {
                std::string const value = attribute.value();
                if (refused_character(value) || !valid_utf8(value))
                    attribute.set_value(without_refused_characters(value, refused).c_str());
            }
            return true;
        }
        void clean(pugi::xml_node& node) {
            std::string const value = node.value();
            if (refused_character(value) || !valid_utf8(value))
                node.set_value(without_refused_characters(value, refused).c_str());
        }
    } clean;
    doc.traverse(clean);
    if (lost && clean.refused) lost->add(0, clean.refused);
    std::ostringstream ss;
    doc.save(ss, "  ", pugi::format_default | pugi::format_no_declaration, pugi::encoding_utf8);
    std::string xml = "<?xml version=\"1.0\" encoding=\"" + std::string(encoding == "UTF-8" ? "UTF-8" : "Shift_JIS") +
                      "\" standalone=\"no\"?>\n" + ss.str();
    if (encoding == "UTF-8") return xml;
    std::size_t n = 0;
    std::string bytes = encode_cp932(xml, n);
    if (lost && n) lost->add(0, n);
    return bytes;
}

void add(pugi::xml_node parent, char const* name, std::string const& value) {
    parent.append_child(name).text().set(value.c_str());
}
}  // namespace

std::string to_utf8(std::string_view bytes, std::string const& encoding) {
    return convert(bytes, iconv_name(encoding), "UTF-8");
}
std::string from_utf8(std::string const& utf8, std::string const& encoding) {
    return convert(utf8, "UTF-8", iconv_name(encoding));
}

BulkUpload parse_bulk_upload(std::string const& bytes) {
    BulkUpload up;
    auto doc = load(bytes, up.encoding);
    auto header = doc.child("XmlMsg").child("MessageHeader");
    auto body = doc.child("XmlMsg").child("MessageBody");
    if (!header || !body)
        throw invalid("MessageHeader", "MessageHeader と MessageBody が必要です",
                      "MessageHeader and MessageBody are required");
    up.query_date = yyyymmdd_to_iso(text(header, "QualificationConfirmationDate"), "QualificationConfirmationDate");
    up.facility_code = text(header, "MedicalInstitutionCode");
    if (auto e = facility_code_error(up.facility_code, "MedicalInstitutionCode")) throw *e;
    up.file_identifier = text(header, "ArbitraryFileIdentifier");
    // 診療区分: MedicalTreatmentFlag as in the OQSmuhvq/OQSmuonq layouts (2 訪問診療等, 3 オンライン診療等), in the
    // header or the body; a file without one is 訪問診療等 (the layouts of 資格確認一括照会 are open: interfaces.md).
    std::string flag = text(header, "MedicalTreatmentFlag");
    if (flag.empty()) flag = text(body, "MedicalTreatmentFlag");
    if (!flag.empty() && flag != "2" && flag != "3")
        throw invalid("MedicalTreatmentFlag", "MedicalTreatmentFlag は 2 (訪問診療等) か 3 (オンライン診療等) です",
                      "MedicalTreatmentFlag must be 2 or 3");
    up.treatment_flag = flag == "3" ? 3 : 2;
    for (auto info : body.children("QualificationConfirmSearchInfo")) {
        // Echoed back in the order it was sent: pairs, not an object (whose keys would be sorted).
        static constexpr std::array<std::string_view, 7> layout{"InsurerNumber",
                                                                "InsuredCardSymbol",
                                                                "InsuredIdentificationNumber",
                                                                "InsuredBranchNumber",
                                                                "Birthdate",
                                                                "LimitApplicationCertificateRelatedConsFlg",
                                                                "ArbitraryIdentifier"};
        Echo echo = known_children(info, layout, up.rows.size() + 1);
        std::string birth = text(info, "Birthdate");
        if (birth.size() == 8 && birth.find_first_not_of("0123456789") == std::string::npos)
            birth = birth.substr(0, 4) + "-" + birth.substr(4, 2) + "-" + birth.substr(6, 2);
        // (a Birthdate of another form is kept as sent: the row's own error, when it is answered)
        RowQuery row{CardFields{text(info, "InsurerNumber"), text(info, "InsuredCardSymbol"),
                                text(info, "InsuredIdentificationNumber"), text(info, "InsuredBranchNumber"), birth},
                     text(info, "ArbitraryIdentifier"), std::move(echo)};
        up.rows.push_back(std::move(row));
    }
    if (up.rows.empty())
        throw invalid("QualificationConfirmSearchInfo", "照会する行がありません", "no QualificationConfirmSearchInfo");
    return up;
}

std::string bulk_upload_result(BulkUpload const& up, std::string const& reception_number, std::string const& error_code,
                               std::string const& error_message, std::string const& executed_at, Substitutions* lost) {
    pugi::xml_document doc;
    auto msg = doc.append_child("XmlMsg");
    auto header = msg.append_child("MessageHeader");
    add(header, "ProcessExecutionTime", executed_at);
    add(header, "MedicalInstitutionCode", up.facility_code);
    add(header, "CharacterCodeIdentifier", up.encoding == "UTF-8" ? "0" : "1");
    auto body = msg.append_child("MessageBody");
    add(body, "ReceptionNumber", reception_number);
    add(body, "SegmentOfResult", error_code.empty() ? "1" : "9");
    add(body, "ProcessingResultStatus", error_code.empty() ? "1" : "2");
    add(body, "ProcessingResultCode", error_code);
    add(body, "ProcessingResultMessage", error_message);
    add(body, "ArbitraryFileIdentifier", up.file_identifier);
    return save(doc, up.encoding, lost);
}

std::string file_error_result(std::string const& request, std::string const& facility_code,
                              std::string const& file_identifier, std::string const& message,
                              std::string const& executed_at, Substitutions* lost) {
    BulkUpload up;
    up.encoding = answer_encoding(request);
    up.facility_code = facility_code;
    up.file_identifier = file_identifier;
    return bulk_upload_result(up, "", "EKY0901", message, executed_at, lost);
}

ConsentedDownload parse_consented_download(std::string const& bytes) {
    ConsentedDownload d;
    auto doc = load(bytes, d.encoding);
    auto header = doc.child("XmlMsg").child("MessageHeader");
    auto body = doc.child("XmlMsg").child("MessageBody");
    d.facility_code = text(header, "MedicalInstitutionCode");
    d.file_identifier = text(header, "ArbitraryFileIdentifier");
    d.query_date = yyyymmdd_to_iso(text(header, "QualificationConfirmationDate"), "QualificationConfirmationDate");
    std::string flag = text(body, "MedicalTreatmentFlag");
    if (flag != "2" && flag != "3")
        throw invalid("MedicalTreatmentFlag", "MedicalTreatmentFlag は 2 (訪問診療等) か 3 (オンライン診療等) です",
                      "MedicalTreatmentFlag must be 2 or 3");
    d.treatment_flag = flag == "2" ? 2 : 3;
    d.from = yyyymmdd_to_iso(text(body, "ConsentDateFrom"), "ConsentDateFrom");
    d.to = yyyymmdd_to_iso(text(body, "ConsentDateTo"), "ConsentDateTo");
    if (d.to < d.from)
        throw invalid("ConsentDateTo", "ConsentDateTo が ConsentDateFrom より前です",
                      "ConsentDateTo is before ConsentDateFrom");
    return d;
}

namespace {
constexpr std::array<std::string_view, 6> registration_children{"ReferenceNumber",     "InsurerNumber",
                                                                "InsuredCardSymbol",   "InsuredIdentificationNumber",
                                                                "InsuredBranchNumber", "Birthdate"};

RowRegistration registration_request(pugi::xml_node info) {
    RowRegistration request{text(info, "ReferenceNumber"),
                            CardFields{text(info, "InsurerNumber"), text(info, "InsuredCardSymbol"),
                                       text(info, "InsuredIdentificationNumber"), text(info, "InsuredBranchNumber"),
                                       std::nullopt},
                            {}};
    std::string birth = text(info, "Birthdate");
    if (!birth.empty()) request.card.birthdate = yyyymmdd_to_iso(birth, "Birthdate");
    return request;
}
}  // namespace

ReferenceRegistrations parse_reference_registrations(std::string const& bytes) {
    ReferenceRegistrations r;
    auto doc = load(bytes, r.encoding);
    auto header = doc.child("XmlMsg").child("MessageHeader");
    r.facility_code = text(header, "MedicalInstitutionCode");
    r.file_identifier = text(header, "ArbitraryFileIdentifier");
    for (auto info : doc.child("XmlMsg").child("MessageBody").children("ReferenceNumberRegistrationInfo")) {
        Echo echo = known_children(info, registration_children, r.requests.size() + 1);
        try {
            RowRegistration request = registration_request(info);
            request.echo = std::move(echo);
            r.requests.emplace_back(std::move(request));
        } catch (Error const& e) {
            r.requests.emplace_back(RowUnread{e.what(), std::nullopt, std::move(echo)});
        }
    }
    if (r.requests.empty())
        throw invalid("ReferenceNumberRegistrationInfo", "登録する行がありません",
                      "no ReferenceNumberRegistrationInfo");
    return r;
}

ReferenceRegistration parse_reference_registration(std::string const& bytes) {
    ReferenceRegistration r;
    auto doc = load(bytes, r.encoding);
    auto header = doc.child("XmlMsg").child("MessageHeader");
    auto info = doc.child("XmlMsg").child("MessageBody").child("ReferenceNumberRegistrationInfo");
    if (!info)
        throw invalid("ReferenceNumberRegistrationInfo", "ReferenceNumberRegistrationInfo がありません",
                      "missing ReferenceNumberRegistrationInfo");
    known_children(info, registration_children, 1);
    r.facility_code = text(header, "MedicalInstitutionCode");
    r.file_identifier = text(header, "ArbitraryFileIdentifier");
    r.reference_number = text(info, "ReferenceNumber");
    r.request = registration_request(info);
    return r;
}

std::string reference_registration_result(ReferenceRegistration const& reg, std::string const& error_code,
                                          std::string const& message, std::string const& executed_at,
                                          Substitutions* lost) {
    pugi::xml_document doc;
    auto msg = doc.append_child("XmlMsg");
    auto header = msg.append_child("MessageHeader");
    add(header, "ProcessExecutionTime", executed_at);
    add(header, "MedicalInstitutionCode", reg.facility_code);
    add(header, "ArbitraryFileIdentifier", reg.file_identifier);
    add(header, "CharacterCodeIdentifier", reg.encoding == "UTF-8" ? "0" : "1");
    auto body = msg.append_child("MessageBody");
    add(body, "ProcessingResultStatus", error_code.empty() ? "1" : "2");
    add(body, "ProcessingResultCode", error_code);
    add(body, "ProcessingResultMessage", message);
    add(body, "ReferenceNumber", reg.reference_number);
    return save(doc, reg.encoding, lost);
}

BulkDownload parse_bulk_download(std::string const& bytes) {
    BulkDownload d;
    auto doc = load(bytes, d.encoding);
    d.facility_code = text(doc.child("XmlMsg").child("MessageHeader"), "MedicalInstitutionCode");
    d.reception_number = text(doc.child("XmlMsg").child("MessageBody"), "ReceptionNumber");
    if (d.reception_number.empty())
        throw invalid("ReceptionNumber", "ReceptionNumber がありません", "ReceptionNumber is missing");
    return d;
}

namespace {
// One answer: the echoed search info, the processing result, and — when re-inquiry was allowed — the
// eligibility and the facility's 照会番号 (a BulkConfirmUnit, or the body of a single 01res).
void write_unit(pugi::xml_node unit, OqsUnit const& r) {
    if (r.registration) {  // a 照会番号 registration's result (OQSmuimm02res)
        auto info = unit.append_child("ReferenceNumberRegistrationInfo");
        for (auto const& [name, value] : r.echo) add(info, name.c_str(), value);
        bool const ok = *r.registration;
        add(unit, "ProcessingResultStatus", ok ? "1" : "2");
        add(unit, "ProcessingResultCode", ok ? "" : "EKY0001");
        add(unit, "ProcessingResultMessage", r.error);
        return;
    }
    auto info = unit.append_child("QualificationConfirmSearchInfo");
    for (auto const& [name, value] : r.echo) add(info, name.c_str(), value);
    bool const allowed = r.answer && r.answer->allowed;
    add(unit, "ProcessingResultStatus", allowed ? "1" : "2");
    add(unit, "ProcessingResultCode", allowed ? "" : r.answer ? "EKY0101" : "EKY0001");
    add(unit, "ProcessingResultMessage", allowed ? "" : r.answer ? r.answer->reason.ja : r.error);
    if (!allowed) return;
    EligibilityAnswer const& a = *r.answer;
    if (a.qualification_validity) add(unit, "QualificationValidity", std::to_string(*a.qualification_validity));
    if (a.eligibility) {
        EligibilityRecord const& e = *a.eligibility;
        auto q = unit.append_child("ResultOfQualificationConfirmation");
        add(q, "InsuredCardClassification", e.card_classification);
        add(q, "InsurerNumber", e.insurer);
        add(q, "InsuredCardSymbol", e.symbol);
        add(q, "InsuredIdentificationNumber", e.number);
        if (!e.branch.empty()) add(q, "InsuredBranchNumber", e.branch);
        add(q, "PersonalFamilyClassification", e.personal_family);
        add(q, "Name", e.name);
        add(q, "NameKana", e.name_kana);
        add(q, "Birthdate", iso_to_yyyymmdd(e.birthdate));
        add(q, "InsuredCardValidDate", iso_to_yyyymmdd(e.valid_from));
        if (e.valid_to) add(q, "InsuredCardExpirationDate", iso_to_yyyymmdd(*e.valid_to));
        if (auto lost = disqualification_date(e)) add(q, "DisqualificationDate", iso_to_yyyymmdd(*lost));
        add(q, "InsuredPartialContributionRatio", e.burden_ratio);
        if (e.valid_to && e.loss_reason) add(q, "ReasonOfLoss", *e.loss_reason);
    }
    if (r.consent_date) add(unit, "ConsentDate", iso_to_yyyymmdd(*r.consent_date));
    if (a.reference_numbers)
        for (auto const& ref : *a.reference_numbers) add(unit, "ReferenceNumber", ref);
}

// Writes `r` as a unit and, for a Shift_JIS answer, fits its texts to CP932, reporting them as unit `index`.
void write_unit_in(pugi::xml_node unit, OqsUnit const& r, std::string const& encoding, std::size_t index,
                   Substitutions* lost) {
    write_unit(unit, r);
    if (encoding == "UTF-8") return;
    if (std::size_t n = fit_subtree_cp932(unit); n && lost) lost->add(index, n);
}
}  // namespace

std::string single_result(BulkUpload const& up, OqsUnit const& row, std::string const& executed_at,
                          Substitutions* lost) {
    pugi::xml_document doc;
    auto msg = doc.append_child("XmlMsg");
    auto header = msg.append_child("MessageHeader");
    add(header, "ProcessExecutionTime", executed_at);
    add(header, "QualificationConfirmationDate", iso_to_yyyymmdd(up.query_date));
    add(header, "MedicalInstitutionCode", up.facility_code);
    add(header, "ArbitraryFileIdentifier", up.file_identifier);
    add(header, "SegmentOfResult", "1");
    add(header, "ErrorCode", "");
    add(header, "ErrorMessage", "");
    add(header, "CharacterCodeIdentifier", up.encoding == "UTF-8" ? "0" : "1");
    write_unit_in(msg.append_child("MessageBody"), row, up.encoding, 1, lost);
    return save(doc, up.encoding, lost);
}

std::string bulk_result(BulkJobInfo const& job, std::vector<OqsUnit> const& rows, std::string const& encoding,
                        std::string const& executed_at, Substitutions* lost) {
    pugi::xml_document doc;
    auto msg = doc.append_child("XmlMsg");
    auto header = msg.append_child("MessageHeader");
    add(header, "ProcessExecutionTime", executed_at);
    add(header, "QualificationConfirmationDate", iso_to_yyyymmdd(job.query_date));
    add(header, "MedicalInstitutionCode", job.facility_code);
    add(header, "ArbitraryFileIdentifier", job.file_identifier);
    add(header, "ReceptionNumber", job.reception_number);
    add(header, "SegmentOfResult", job.finished ? "1" : "2");
    add(header, "ErrorCode", "");
    add(header, "ErrorMessage", job.finished ? "" : "処理中です");
    std::size_t normal = 0;
    // A unit is normal when it carries eligibility (or a registration) — ProcessingResultStatus 1, as each unit says.
    for (auto const& r : rows)
        normal += r.registration ? *r.registration : (r.answer && r.answer->allowed);
    add(header, "NumberOfProcessingResult", std::to_string(rows.size()));
    add(header, "NumberOfNormalProcessing", std::to_string(normal));
    add(header, "NumberOfError", std::to_string(rows.size() - normal));
    add(header, "CharacterCodeIdentifier", encoding == "UTF-8" ? "0" : "1");
    auto body = msg.append_child("MessageBody");
    for (std::size_t i = 0; i < rows.size(); ++i)
        write_unit_in(body.append_child("BulkConfirmUnit"), rows[i], encoding, i + 1, lost);
    return save(doc, encoding, lost);
}

}  // namespace kyotaku::server
