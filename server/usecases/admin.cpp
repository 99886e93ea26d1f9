// テスト用データセットアップ and the operator's tasks: the reference system's stand-ins for what the real system
// gets from insurers, J-LIS and its own operators. Operator certificate (kyotaku-admin) only.
#include "usecases/admin.hpp"

#include "core/card_signature.hpp"
#include "storage/consent_registry.hpp"
#include "storage/facility_registry.hpp"
#include "storage/facility_urls.hpp"
#include "storage/insurer_data.hpp"
#include "storage/medical_records.hpp"
#include "usecases/desk_util.hpp"
#include "usecases/settings.hpp"

#include <nlohmann/json.hpp>

namespace kyotaku::server {

// Stored details (資格確認履歴, hand-off choices, device staff lists) are JSON text.
using json = nlohmann::json;

NewFacility AdminDesk::create_facility(Caller const& c, NewFacility const& f) {
    require_admin(c);
    std::string const& code = f.code;
    if (auto e = facility_code_error(code, "code")) throw *e;
    std::string const& name = f.name;
    if (name.empty()) throw invalid("name", "名称がありません", "name is empty");
    check_line(name, "name", 100);
    std::string kind = enum_value(*x_.rules()->program, "kind", "facility_kind", f.kind);
    FacilityRegistry registry(x_.db);
    return transaction(x_.db, [&] {
        if (registry.exists(code))
            throw conflict("code", "この医療機関等コードはすでに登録されています", "facility already exists");
        registry.add(code, name, kind, x_.now());
        return NewFacility{code, name, kind};
    });
}

InsuredPersonAdded AdminDesk::add_insured_person(Caller const& c, NewInsuredPerson const& p) {
    require_admin(c);
    Card card = card_from(p.card);
    std::string const &name = p.name, &kana = p.name_kana;
    check_line(name, "name", 100);
    check_line(kana, "name_kana", 100);
    std::string const& ratio = p.burden_ratio;
    if (ratio != "010" && ratio != "020" && ratio != "030")
        throw invalid("burden_ratio", "負担割合は 010, 020, 030 のいずれかです", "burden_ratio is 010, 020 or 030");
    std::string from = iso_date("valid_from", p.valid_from);
    std::string to = p.valid_to ? iso_date("valid_to", *p.valid_to) : std::string();
    if (!to.empty() && to < from)
        throw invalid("valid_to", "valid_to が valid_from より前です", "valid_to is before valid_from");
    // InsuredCardClassification, PersonalFamilyClassification and ReasonOfLoss as the OQS layouts carry them
    // (interfaces.md §1 code values).
    std::string classification = p.card_classification.value_or("01");
    if (classification.size() != 2 || std::string("01 02 03 04 05 06 07 A1").find(classification) == std::string::npos)
        throw invalid("card_classification", "被保険者証区分は 01〜07 か A1 です",
                      "card_classification is 01..07 or A1");
    std::string family = p.personal_family.value_or("1");
    if (family != "1" && family != "2")
        throw invalid("personal_family", "本人・家族の区分は 1 (本人) か 2 (家族) です", "personal_family is 1 or 2");
    std::string const& loss = p.loss_reason;
    if (!loss.empty() && loss != "01" && loss != "02" && loss != "03" && loss != "99")
        throw invalid("loss_reason", "資格喪失事由は 01, 02, 03, 99 のいずれかです", "loss_reason is 01, 02, 03 or 99");
    if (!loss.empty() && to.empty())
        throw invalid("loss_reason", "資格喪失事由には valid_to (喪失日の前日まで有効) が必要です",
                      "loss_reason needs valid_to");
    std::string person = p.person_key;
    check_line(person, "person_key", 64);
    if (person.empty()) person = new_id();
    std::string id = new_id();
    auto const optional_text = [](std::string const& v) {
        return v.empty() ? std::nullopt : std::optional<std::string>(v);
    };
    InsurerData(x_.db).add_period(id, person,
                                  EligibilityRecord{card.insurer, card.symbol, card.number, card.branch, card.birthdate,
                                                    name, kana, ratio, from, optional_text(to), classification, family,
                                                    optional_text(loss)});
    return {id, person};
}

std::string AdminDesk::add_consent(Caller const& c, TestConsent const& f) {
    require_admin(c);
    // Test data: a consent as if registered on `first_visit` (the real path, /api/v1/consent/register, takes the
    // server's own date). Whether it is a relationship or a single visit is derived, never stated.
    auto rules = x_.rules();
    std::string const& facility = f.facility_code;
    DbRecords records(x_.db);
    auto info = records.facility(facility);
    if (!info) throw invalid("facility_code", "施設が登録されていません", "unknown facility");
    std::string const& person = f.person_key;
    if (!InsurerData(x_.db).has_person(person)) throw invalid("person_key", "資格情報がありません", "unknown person");
    std::string kind = enum_value(*rules->program, "visit_kind", "visit_kind", f.visit_kind);
    // Like every registration path, the facility's kind must offer the visit kind (the rules' reason otherwise).
    auto offered = DecisionPath(rules, records, x_.today()).offered(*info, kind, f.preparatory_visit);
    if (!offered.ok)
        throw Error(offered.field == "visit_kind" ? Error::Kind::conflict : Error::Kind::invalid, offered.field,
                    offered.reason);
    // A consent dated after today would be the newest first visit and restart the patient's real relationship
    // when that day came: test data is dated like the real registrations, on or before today.
    std::string first = not_after_today(x_, "first_visit", f.first_visit, "初回訪問日");
    std::string const& method = f.identity_method;
    if (method != "暗証番号" && method != "目視確認" && method != "マイナポータル" && method != "資格情報のお知らせ")
        throw invalid("identity_method",
                      "本人確認の方法は 暗証番号, 目視確認, マイナポータル, 資格情報のお知らせ のいずれかです",
                      "unknown identity method");
    std::string list;
    for (auto const& item : enum_list(*rules->program, "items", "consented_items", f.items))
        list += (list.empty() ? "" : ",") + item;
    std::string appointment = f.appointment_date ? iso_date("appointment_date", *f.appointment_date) : std::string();
    // The 診療予約日 as every registration path asks it (outsider 24, F10), on the consent's own day.
    auto taken =
        DecisionPath(rules, records, x_.today())
            .appointment_taken(kind, appointment.empty() ? std::nullopt : std::optional<std::string>(appointment),
                               *parse_date(first).date);
    if (!taken.ok) throw Error(Error::Kind::invalid, taken.field, taken.reason);
    std::string id = new_id();
    ConsentRegistry(x_.db).add(ConsentRow{id, facility, person, kind, first, method, list,
                                          appointment.empty() ? std::nullopt : std::optional<std::string>(appointment),
                                          x_.now(), f.preparatory_visit});
    return id;
}

std::vector<ConsentListing> AdminDesk::list_consents(Caller const& c, std::string const& facility_code) {
    require_admin(c);
    std::vector<ConsentListing> out;
    for (auto& s : ConsentRegistry(x_.db).of_facility(facility_code))
        out.push_back({std::move(s.id), std::move(s.person), std::move(s.visit_kind), std::move(s.first_visit),
                       std::move(s.registered_at), std::move(s.withdrawn_at), std::move(s.identity_method),
                       std::move(s.items), std::move(s.appointment_date), s.preparatory_visit,
                       std::move(s.withdrawn_by)});
    return out;
}

std::string AdminDesk::add_medical_record(Caller const& c, NewMedicalRecord const& record) {
    require_admin(c);
    std::string const& person = record.person_key;
    if (!InsurerData(x_.db).has_person(person)) throw invalid("person_key", "資格情報がありません", "unknown person");
    std::string item = enum_value(*x_.rules()->program, "item", "requested_item", record.item);
    std::string on = not_after_today(x_, "recorded_on", record.recorded_on, "記録日");
    std::string id = new_id();
    MedicalRecords(x_.db).add(id, person, item, MedicalRecordEntry{on, record.content_json});
    return id;
}

std::string AdminDesk::register_card(Caller const& c, CardRegistration const& card) {
    require_admin(c);
    std::string const& person = card.person_key;
    if (!InsurerData(x_.db).has_person(person)) throw invalid("person_key", "資格情報がありません", "unknown person");
    auto fp = certificate_fingerprint(card.certificate);
    if (!fp)
        throw invalid("certificate", "証明書を読めません (base64 の DER か PEM)",
                      "the certificate does not parse (base64 DER or PEM)");
    ConsentRegistry(x_.db).register_card(*fp, person, x_.now());
    return *fp;
}

std::uint32_t AdminDesk::rotate_url_key(Caller const& c) {
    require_admin(c);
    return transaction(x_.db, [&] {
        FacilityUrls(x_.db).retire_keys(x_.now());
        SettingsDesk settings(x_);
        return settings.current_key().first;
    });
}

ClaimReviewImport AdminDesk::import_claim_reviews(Caller const& c, std::string const& csv) {
    require_admin(c);
    if (!valid_utf8(csv)) throw invalid("", "CSV が UTF-8 ではありません", "the CSV is not valid UTF-8");
    // Each bad row gets its own error; the good rows are imported, 500 rows per transaction (a large file never
    // holds the write lock for long).
    ClaimReviewImport out;
    int line_no = 0;
    std::istringstream in(csv);
    DbRecords records(x_.db);
    std::string const today = x_.today().iso();
    std::vector<ClaimReview> batch;
    InsurerData insurers(x_.db);
    auto flush = [&] {
        if (batch.empty()) return;
        transaction(x_.db, [&] { insurers.add_claim_reviews(batch); });
        out.imported += int(batch.size());
        batch.clear();
    };
    for (std::string line; std::getline(in, line);) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || (line_no == 1 && line.rfind("facility_code", 0) == 0)) continue;
        auto f = split_csv_line(line);
        auto fail = [&](std::string field, Message const& m) {
            out.errors.push_back({line_no, std::move(field), m});
        };
        if (f.size() != 8) {
            fail("", {"8列 (facility_code,insurer_number,symbol,number,branch,birthdate,month,reviewed_on) が必要です",
                      "expected 8 columns"});
            continue;
        }
        try {
            if (auto e = facility_code_error(f[0], "facility_code")) throw *e;
            if (!records.facility(f[0])) throw invalid("facility_code", "施設が登録されていません", "unknown facility");
            Card card = card_from(CardFields{f[1], f[2], f[3], f[4], f[5]});
            auto month = parse_month(f[6]);
            auto reviewed = parse_date(f[7]);
            if (!month.month) throw invalid("month", "年月 (YYYY-MM) ではありません", "month is not YYYY-MM");
            if (!reviewed.date) throw invalid("reviewed_on", "日付ではありません", "reviewed_on is not a date");
            // A claim is reviewed after its month, and no review is dated after today.
            if (reviewed.date->iso() > today)
                throw invalid("reviewed_on", "審査日が今日より後です", "reviewed_on is after today");
            if (month.month->iso() > reviewed.date->iso().substr(0, 7))
                throw invalid("month", "診療月が審査日より後です", "the month is after its review");
            std::string person = records.person_by_card(card);
            if (person.empty())
                throw invalid("insurer_number", "該当する資格情報がありません", "no matching eligibility record");
            batch.push_back({f[0], person, month.month->iso(), reviewed.date->iso()});
            if (batch.size() == 500) flush();
        } catch (Error const& e) {
            fail(e.field, e.message);
        }
    }
    flush();
    return out;
}

std::string AdminDesk::set_clock(Caller const& c, std::string const& today) {
    require_admin(c);
    std::string day = iso_date("today", today);
    if (!x_.test_clock)
        throw conflict("today", "このサーバは実際の時計で動いています (--test-clock で起動したときだけ変えられます)",
                       "the server runs on the machine's clock (only --test-clock servers can be moved)");
    x_.test_clock->set_today(*parse_iso_date_fast(day));
    return x_.today().iso();
}

}  // namespace kyotaku::server
