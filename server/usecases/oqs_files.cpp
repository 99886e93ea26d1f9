// The flows in the real system's file formats (interfaces.md §1): each file is parsed by oqs_xml, answered by the
// same desks as the JSON routes (so by the same decision path), and written back in the request's encoding.
#include "usecases/oqs_files.hpp"

#include "formats/oqs_xml.hpp"
#include "storage/consent_registry.hpp"
#include "usecases/desk_util.hpp"

#include <algorithm>
#include <map>

namespace kyotaku::server {

namespace {
Message const another_facility{"MedicalInstitutionCode が証明書の医療機関等コードと違います",
                               "the file names another facility"};

// A stored row's answer (a batch's row, a consented-patient download's, a 照会番号 registration's) as the unit of a
// result file.
OqsUnit unit_of(BatchRowAnswer const& r) {
    OqsUnit u;
    if (r.echo) u.echo = *r.echo;
    if (r.registration) {
        u.registration = *r.registration;
        u.error = r.error.value_or("");
    } else if (r.answer) {
        u.answer = *r.answer;
    } else {
        u.error = r.error.value_or("");
    }
    u.consent_date = r.consent_date;
    return u;
}

std::string category_of_flag(int flag) { return flag == 3 ? "オンライン診療等" : "訪問診療等"; }

// What a Shift_JIS answer wrote as 〓 (外字): counted, and each unit logged (the route, the reception number, the unit
// and how many characters — never the text itself). The answer went out all the same.
void report_unmappable(Context& x, char const* route, std::string const& facility, std::string const& reception,
                       Substitutions const& lost) {
    if (lost.characters == 0) return;
    x.unmappable_characters += lost.characters;
    for (auto const& [unit, n] : lost.units)
        x.events.unmappable({route, facility, reception, std::int64_t(unit), std::int64_t(n)});
}

// Parses an OQSmuquc01req / OQSsiquc01req of the caller's facility; on failure the error result to send instead.
std::optional<FileAnswer> parse_request(Context& x, Caller const& c, std::string const& xml, BulkUpload& up,
                                        bool single) {
    require_facility(c);
    try {
        up = parse_bulk_upload(xml);
        if (single && up.rows.size() != 1)
            throw invalid("QualificationConfirmSearchInfo", "単一の資格確認は1件です",
                          "a single 資格確認 has one search info");
    } catch (Error const& e) {
        return FileAnswer{file_error_result(xml, "", "", e.with_field(), x.clock.stamp_jst()), Error::Kind::invalid};
    }
    if (up.facility_code != c.facility_code)
        return FileAnswer{bulk_upload_result(up, "", "EKY0901", another_facility.text(), x.clock.stamp_jst()),
                          Error::Kind::forbidden};
    return std::nullopt;
}
}  // namespace

FileAnswer OqsDesk::bulk_upload(Caller const& c, std::string const& xml) {
    BulkUpload up;
    if (auto error = parse_request(x_, c, xml, up, false)) return *error;
    std::size_t next = 0;
    try {
        BatchAccepted job = batch_.upload(c, {category_of_flag(up.treatment_flag), up.query_date, up.file_identifier,
                                              "xml", [&](BatchRow& row) {
                                                  if (next == up.rows.size()) return false;
                                                  row = up.rows[next++];
                                                  return true;
                                              }});
        return {bulk_upload_result(up, job.reception_number, "", "", x_.clock.stamp_jst()), std::nullopt};
    } catch (Error const& e) {
        return {bulk_upload_result(up, "", "EKY0901", e.what(), x_.clock.stamp_jst()),
                e.kind == Error::Kind::too_large ? Error::Kind::too_large : Error::Kind::invalid};
    }
}

FileAnswer OqsDesk::single(Caller const& c, std::string const& xml) {
    BulkUpload up;
    if (auto error = parse_request(x_, c, xml, up, true)) return *error;
    RowQuery const& request = up.rows[0];
    OqsUnit unit;
    unit.echo = request.echo.value_or(Echo{});
    try {
        Lookup who{card_from(request.card), {}, {}};
        FacilityInfo facility = x_.facility(c);
        DbRecords records(x_.db);
        DecisionPath decisions(x_.rules(), records, x_.today());
        Logging const log{"再照会（OQSsiquc01req）", c.subject};
        unit.answer = InquiryDesk::answer_eligibility(x_, decisions, records, facility, who,
                                                      category_of_flag(up.treatment_flag), up.query_date, &log);
    } catch (Error const& e) {
        unit.error = e.what();
    }
    Substitutions lost;
    std::string answer = single_result(up, unit, x_.clock.stamp_jst(), &lost);
    report_unmappable(x_, "OQSsiquc01res", c.facility_code, "", lost);
    return {answer, std::nullopt};
}

FileAnswer OqsDesk::bulk_download(Caller const& c, std::string const& xml) {
    require_facility(c);
    BulkDownload d = parse_bulk_download(xml);
    if (d.facility_code != c.facility_code)
        throw Error(Error::Kind::forbidden, "MedicalInstitutionCode", another_facility);
    BatchStatus const st = batch_.status(c, d.reception_number);
    if (st.state == BatchStatus::State::expired) BatchDesk::require_results(st);  // 410: purged
    BulkJobInfo job{d.reception_number, c.facility_code, st.file_identifier, st.query_date, st.finished};
    std::vector<OqsUnit> rows;
    if (job.finished)
        for (auto const& [row_no, answer] : batch_.results(d.reception_number)) rows.push_back(unit_of(answer));
    Substitutions lost;
    std::string answer = bulk_result(job, rows, d.encoding, x_.clock.stamp_jst(), &lost);
    report_unmappable(x_, "OQSmuquc02res", c.facility_code, d.reception_number, lost);
    return {answer, std::nullopt};
}

FileAnswer OqsDesk::consented_upload_home_care(Caller const& c, std::string const& xml) {
    return consented_upload(c, xml, 2);
}
FileAnswer OqsDesk::consented_upload_online(Caller const& c, std::string const& xml) {
    return consented_upload(c, xml, 3);
}

FileAnswer OqsDesk::consented_upload(Caller const& c, std::string const& xml, int expected_flag) {
    require_facility(c);
    ConsentedDownload d;
    BulkUpload reply;  // the 01res shape
    try {
        d = parse_consented_download(xml);
        if (d.treatment_flag != expected_flag)
            throw invalid("MedicalTreatmentFlag",
                          expected_flag == 2 ? "OQSmuhvq は訪問診療等 (MedicalTreatmentFlag 2) のファイルです"
                                             : "OQSmuonq はオンライン診療等 (MedicalTreatmentFlag 3) のファイルです",
                          "the file name and MedicalTreatmentFlag disagree");
    } catch (Error const& e) {
        return {file_error_result(xml, "", "", e.with_field(), x_.clock.stamp_jst()), Error::Kind::invalid};
    }
    reply.encoding = d.encoding;
    reply.facility_code = d.facility_code;
    reply.file_identifier = d.file_identifier;
    if (d.facility_code != c.facility_code)
        return {bulk_upload_result(reply, "", "EKY0901", another_facility.text(), x_.clock.stamp_jst()),
                Error::Kind::forbidden};
    std::string const category = category_of_flag(d.treatment_flag);
    auto rules = x_.rules();
    // One row per person with an open consent of this facility in the 分類 whose consent date is in the range (a
    // patient with a 訪問診療 and a 往診 consent is one patient), picked by the relationship's consent — the newest of
    // a kind that starts one — else the newest single visit; each answered at once by the same eligibility answer as a
    // re-inquiry of that person (refused rows carry nothing), echoing the consent that answer rests on.
    struct Picked {
        RowConsented row;
        bool starts = false;  // its visit kind starts a relationship
    };
    std::vector<Picked> picked;
    std::map<std::string, std::size_t> row_of;  // person → its row
    for (auto const& open : ConsentRegistry(x_.db).open_between(c.facility_code, d.from, d.to)) {
        auto const* kind = rules->kind(open.visit_kind);
        if (!kind || kind->category != category) continue;
        Picked row{{open.person, open.first_visit, open.visit_kind}, kind->starts_relationship};
        auto [at, first] = row_of.emplace(open.person, picked.size());
        if (first) picked.push_back(std::move(row));
        // newer (rows come oldest first)
        else if (kind->starts_relationship || !picked[at->second].starts) picked[at->second] = std::move(row);
    }
    FacilityInfo facility = x_.facility(c);
    BatchAccepted job = transaction(x_.db, [&] {
        std::size_t next_row = 0;
        BatchAccepted j =
            batch_.upload(c, {category, d.query_date, d.file_identifier, d.treatment_flag == 2 ? "hvq" : "onq",
                              [&](BatchRow& row) {
                                  if (next_row == picked.size()) return false;
                                  row = picked[next_row++].row;
                                  return true;
                              },
                              true});
        DbRecords records(x_.db);
        DecisionPath decisions(rules, records, x_.today());
        std::vector<std::int64_t> row_nos;
        std::vector<BatchRowAnswer> answers;
        std::vector<InquiryEntry> history;  // one 資格確認履歴 entry per patient, written with the answers
        for (auto const& [row, starts] : picked) {
            Lookup who;
            who.person = row.person;
            Logging const log{.kind = "同意済資格情報一括取得",
                              .actor = c.subject,
                              .reception = j.reception_number,
                              .row = std::int64_t(row_nos.size()) + 1,
                              .consent_date = row.consent_date,
                              .visit_kind = row.visit_kind,
                              .into = &history};
            BatchRowAnswer result;
            result.answer =
                InquiryDesk::answer_eligibility(x_, decisions, records, facility, who, category, d.query_date, &log);
            // The unit echoes the consent the answer rests on (the rules' basis: a 往診 today after a lapsed 訪問診療,
            // say), which need not be the one the range picked the patient by; without a basis, the one picked.
            auto const& basis = result.answer->basis;
            result.consent_date = basis ? basis->first_visit : row.consent_date;
            std::string consent_date = *result.consent_date;
            // yyyyMMdd
            consent_date.erase(std::remove(consent_date.begin(), consent_date.end(), '-'), consent_date.end());
            result.echo =
                Echo{{"ConsentDate", consent_date}, {"VisitKind", basis ? basis->visit_kind : row.visit_kind}};
            row_nos.push_back(std::int64_t(row_nos.size()) + 1);
            answers.push_back(std::move(result));
        }
        batch_.write_answers(j.reception_number, row_nos, answers);
        batch_.finish_at_once(j.reception_number, std::int64_t(picked.size()));
        log_inquiries(x_, history);
        return j;
    });
    x_.events.batch_event({"finished", job.reception_number, c.facility_code, job.total});
    return {bulk_upload_result(reply, job.reception_number, "", "", x_.clock.stamp_jst()), std::nullopt};
}

FileAnswer OqsDesk::reference_number(Caller const& c, std::string const& xml) {
    require_facility(c);
    ReferenceRegistration reg;
    try {
        reg = parse_reference_registration(xml);
    } catch (Error const& e) {
        ReferenceRegistration bad;
        bad.encoding = answer_encoding(xml);
        return {reference_registration_result(bad, "EKY0901", e.with_field(), x_.clock.stamp_jst()),
                Error::Kind::invalid};
    }
    if (reg.facility_code != c.facility_code)
        return {reference_registration_result(reg, "EKY0901", another_facility.text(), x_.clock.stamp_jst()),
                Error::Kind::forbidden};
    try {
        inquiry_.register_reference_number(c, {reg.request.reference_number, reg.request.card});
        return {reference_registration_result(reg, "", "", x_.clock.stamp_jst()), std::nullopt};
    } catch (Error const& e) {
        // The file was understood: the refusal is its result.
        return {reference_registration_result(reg, "EKY0001", e.with_field(), x_.clock.stamp_jst()), std::nullopt};
    }
}

FileAnswer OqsDesk::reference_numbers(Caller const& c, std::string const& xml) {
    require_facility(c);
    ReferenceRegistrations regs;
    BulkUpload reply;  // the 01res shape
    try {
        regs = parse_reference_registrations(xml);
    } catch (Error const& e) {
        return {file_error_result(xml, "", "", e.with_field(), x_.clock.stamp_jst()), Error::Kind::invalid};
    }
    reply.encoding = regs.encoding;
    reply.facility_code = regs.facility_code;
    reply.file_identifier = regs.file_identifier;
    if (regs.facility_code != c.facility_code)
        return {bulk_upload_result(reply, "", "EKY0901", another_facility.text(), x_.clock.stamp_jst()),
                Error::Kind::forbidden};
    // Registered at once, each item with its own result; the results come with the common 02req download.
    BatchAccepted job = transaction(x_.db, [&] {
        std::size_t next = 0;
        BatchAccepted j = batch_.upload(c, {"訪問診療等", "", regs.file_identifier, "imm", [&](BatchRow& row) {
                                                if (next == regs.requests.size()) return false;
                                                row = regs.requests[next++];
                                                return true;
                                            }});
        std::vector<std::int64_t> row_nos;
        std::vector<BatchRowAnswer> answers;
        for (auto const& request : regs.requests) {
            BatchRowAnswer result;
            result.registration = false;
            if (auto const* unread = std::get_if<RowUnread>(&request)) {
                result.echo = unread->echo.value_or(Echo{});
                result.error = unread->text;
            } else {
                auto const& reg = std::get<RowRegistration>(request);
                result.echo = reg.echo;
                try {
                    inquiry_.register_reference_number(c, {reg.reference_number, reg.card});
                    result.registration = true;
                } catch (Error const& e) {
                    result.error = e.with_field();
                }
            }
            row_nos.push_back(std::int64_t(row_nos.size()) + 1);
            answers.push_back(std::move(result));
        }
        batch_.write_answers(j.reception_number, row_nos, answers);
        batch_.finish_at_once(j.reception_number, j.total);
        return j;
    });
    x_.events.batch_event({"finished", job.reception_number, c.facility_code, job.total});
    return {bulk_upload_result(reply, job.reception_number, "", "", x_.clock.stamp_jst()), std::nullopt};
}

}  // namespace kyotaku::server
