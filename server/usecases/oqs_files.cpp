// The flows in the real system's file formats (interfaces.md §1): each file is parsed by oqs_xml, answered by the
// same desks as the JSON routes (so by the same decision path), and written back in the request's encoding.
#include "usecases/desk_util.hpp"
#include "formats/oqs_xml.hpp"

#include <algorithm>
#include <map>

namespace kyotaku::server {

namespace {
Message const another_facility{"MedicalInstitutionCode が証明書の医療機関等コードと違います",
                               "the file names another facility"};

std::string category_of_flag(int flag) { return flag == 3 ? "オンライン診療等" : "訪問診療等"; }

// What a Shift_JIS answer wrote as 〓 (外字): counted, and each unit logged (the route, the reception number, the unit
// and how many characters — never the text itself). The answer went out all the same.
void report_unmappable(Context& x, char const* route, std::string const& facility, std::string const& reception, Substitutions const& lost) {
    if (lost.characters == 0) return;
    x.unmappable_characters += lost.characters;
    for (auto const& [unit, n] : lost.units) x.events.unmappable({route, facility, reception, std::int64_t(unit), std::int64_t(n)});
}

// Parses an OQSmuquc01req / OQSsiquc01req of the caller's facility; on failure the error result to send instead.
std::optional<std::string> parse_request(Context& x, Caller const& c, std::string const& xml, BulkUpload& up, int& status, bool single) {
    require_facility(c);
    try {
        up = parse_bulk_upload(xml);
        if (single && up.rows.size() != 1)
            throw invalid("QualificationConfirmSearchInfo", "単一の資格確認は1件です", "a single 資格確認 has one search info");
    } catch (Error const& e) {
        status = 400;
        return file_error_result(xml, "", "", e.with_field(), x.clock.stamp_jst());
    }
    if (up.facility_code != c.facility_code) {
        status = 403;
        return bulk_upload_result(up, "", "EKY0901", another_facility.text(), x.clock.stamp_jst());
    }
    return std::nullopt;
}
}  // namespace

std::string OqsDesk::bulk_upload(Caller const& c, std::string const& xml, int& status) {
    BulkUpload up;
    if (auto error = parse_request(x_, c, xml, up, status, false)) return *error;
    std::size_t next = 0;
    try {
        json job = batch_.upload(c, category_of_flag(up.treatment_flag), up.query_date, up.file_identifier, "xml", [&](json& row) {
            if (next == up.rows.size()) return false;
            row = up.rows[next++];
            return true;
        });
        status = 200;
        return bulk_upload_result(up, job["reception_number"], "", "", x_.clock.stamp_jst());
    } catch (Error const& e) {
        status = e.kind == Error::Kind::too_large ? 413 : 400;
        return bulk_upload_result(up, "", "EKY0901", e.what(), x_.clock.stamp_jst());
    }
}

std::string OqsDesk::single(Caller const& c, std::string const& xml, int& status) {
    BulkUpload up;
    if (auto error = parse_request(x_, c, xml, up, status, true)) return *error;
    json const& request = up.rows[0];
    json result;
    try {
        Fields f(request, {"arbitrary_identifier", "insurer_number", "symbol", "number", "branch", "birthdate", "echo"});
        Lookup who{card_from(f), {}, {}};
        FacilityInfo facility = x_.facility(c);
        DbRecords records(x_.db);
        DecisionPath decisions(x_.rules(), records, x_.today());
        Logging const log{"再照会（OQSsiquc01req）", c.subject};
        result = InquiryDesk::answer_eligibility(x_, decisions, records, facility, who, category_of_flag(up.treatment_flag), up.query_date, &log);
        result["processing_result_status"] = 1;
    } catch (Error const& e) {
        result = json{{"error", e.what()}, {"field", e.field}, {"processing_result_status", 2}};
    }
    result["echo"] = request["echo"];
    status = 200;
    Substitutions lost;
    std::string answer = single_result(up, result, x_.clock.stamp_jst(), &lost);
    report_unmappable(x_, "OQSsiquc01res", c.facility_code, "", lost);
    return answer;
}

std::string OqsDesk::bulk_download(Caller const& c, std::string const& xml, int& status) {
    require_facility(c);
    BulkDownload d = parse_bulk_download(xml);
    if (d.facility_code != c.facility_code)
        throw Error(Error::Kind::forbidden, "MedicalInstitutionCode", another_facility);
    json st = batch_.status(c, d.reception_number);
    if (st["status"] == "保存期間終了") BatchDesk::require_results(st);  // 410: purged
    BulkJobInfo job{d.reception_number, c.facility_code, st["file_identifier"], st["query_date"], st["segment_of_result"] == 1};
    std::vector<json> rows;
    if (job.finished)
        for (auto const& r : x_.db.query("SELECT result_json FROM batch_results WHERE reception_number = $1 ORDER BY row_no", {d.reception_number}))
            rows.push_back(json::parse(as_text(r[0])));
    status = 200;
    Substitutions lost;
    std::string answer = bulk_result(job, rows, d.encoding, x_.clock.stamp_jst(), &lost);
    report_unmappable(x_, "OQSmuquc02res", c.facility_code, d.reception_number, lost);
    return answer;
}

std::string OqsDesk::consented_upload_home_care(Caller const& c, std::string const& xml, int& status) { return consented_upload(c, xml, status, 2); }
std::string OqsDesk::consented_upload_online(Caller const& c, std::string const& xml, int& status) { return consented_upload(c, xml, status, 3); }

std::string OqsDesk::consented_upload(Caller const& c, std::string const& xml, int& status, int expected_flag) {
    require_facility(c);
    ConsentedDownload d;
    BulkUpload reply;  // the 01res shape
    try {
        d = parse_consented_download(xml);
        if (d.treatment_flag != expected_flag)
            throw invalid("MedicalTreatmentFlag", expected_flag == 2 ? "OQSmuhvq は訪問診療等 (MedicalTreatmentFlag 2) のファイルです" : "OQSmuonq はオンライン診療等 (MedicalTreatmentFlag 3) のファイルです",
                          "the file name and MedicalTreatmentFlag disagree");
    } catch (Error const& e) {
        status = 400;
        return file_error_result(xml, "", "", e.with_field(), x_.clock.stamp_jst());
    }
    reply.encoding = d.encoding;
    reply.facility_code = d.facility_code;
    reply.file_identifier = d.file_identifier;
    if (d.facility_code != c.facility_code) {
        status = 403;
        return bulk_upload_result(reply, "", "EKY0901", another_facility.text(), x_.clock.stamp_jst());
    }
    std::string const category = category_of_flag(d.treatment_flag);
    auto rules = x_.rules();
    // One row per person with an open consent of this facility in the 分類 whose consent date is in the range (a
    // patient with a 訪問診療 and a 往診 consent is one patient), picked by the relationship's consent — the newest of a
    // kind that starts one — else the newest single visit; each answered at once by the same eligibility answer as a
    // re-inquiry of that person (refused rows carry nothing), echoing the consent that answer rests on.
    std::vector<json> rows;
    std::map<std::string, std::size_t> row_of;  // person → its row
    for (auto const& r : x_.db.query("SELECT person_key, visit_kind, first_visit FROM consents WHERE facility_code = $1 AND withdrawn_at IS NULL "
                                     "AND first_visit >= $2 AND first_visit <= $3 ORDER BY first_visit, registered_at, id",
                                     {c.facility_code, d.from, d.to})) {
        auto const* kind = rules->kind(as_text(r[1]));
        if (!kind || kind->category != category) continue;
        json row{{"person_key", as_text(r[0])}, {"consent_date", as_text(r[2])}, {"visit_kind", as_text(r[1])}, {"starts", kind->starts_relationship}};
        auto [at, first] = row_of.emplace(as_text(r[0]), rows.size());
        if (first) rows.push_back(std::move(row));
        else if (kind->starts_relationship || !rows[at->second]["starts"].get<bool>()) rows[at->second] = std::move(row);  // newer (rows come oldest first)
    }
    for (auto& row : rows) row.erase("starts");
    FacilityInfo facility = x_.facility(c);
    json job = transaction(x_.db, [&] {
        std::size_t next_row = 0;
        json j = batch_.upload(
            c, category, d.query_date, d.file_identifier, d.treatment_flag == 2 ? "hvq" : "onq",
            [&](json& row) {
                if (next_row == rows.size()) return false;
                row = rows[next_row++];
                return true;
            },
            true);
        std::string rn = j["reception_number"];
        DbRecords records(x_.db);
        DecisionPath decisions(rules, records, x_.today());
        std::vector<std::int64_t> row_nos;
        std::vector<std::string> answers;
        std::vector<InquiryEntry> history;  // one 資格確認履歴 entry per patient, written with the answers
        for (auto const& row : rows) {
            Lookup who;
            who.person = row["person_key"].get<std::string>();
            Logging const log{"同意済資格情報一括取得", c.subject, rn,
                              json{{"row", row_nos.size() + 1}, {"patient", {{"consent_date", row["consent_date"]}, {"visit_kind", row["visit_kind"]}}}},
                              &history};
            json result = InquiryDesk::answer_eligibility(x_, decisions, records, facility, who, category, d.query_date, &log);
            result["processing_result_status"] = 1;
            // The unit echoes the consent the answer rests on (the rules' basis: a 往診 today after a lapsed 訪問診療,
            // say), which need not be the one the range picked the patient by; without a basis, the one picked.
            bool const basis = result.contains("first_visit") && result.contains("visit_kind");
            result["consent_date"] = basis ? result["first_visit"] : row["consent_date"];
            std::string consent_date = result["consent_date"].get<std::string>();
            consent_date.erase(std::remove(consent_date.begin(), consent_date.end(), '-'), consent_date.end());  // yyyyMMdd
            result["echo"] = json::array({json::array({"ConsentDate", consent_date}),
                                          json::array({"VisitKind", (basis ? result["visit_kind"] : row["visit_kind"]).get<std::string>()})});
            row_nos.push_back(std::int64_t(row_nos.size()) + 1);
            answers.push_back(result.dump());
        }
        batch_.write_answers(rn, row_nos, answers);
        x_.db.query("UPDATE batch_jobs SET total = $2, done = $2, finished_at = $3 WHERE reception_number = $1",
                    {rn, std::int64_t(rows.size()), x_.now()});
        log_inquiries(x_, history);
        return j;
    });
    x_.events.batch_event({"finished", job["reception_number"], c.facility_code, job["total"].get<std::int64_t>()});
    status = 200;
    return bulk_upload_result(reply, job["reception_number"], "", "", x_.clock.stamp_jst());
}

std::string OqsDesk::reference_number(Caller const& c, std::string const& xml, int& status) {
    require_facility(c);
    ReferenceRegistration reg;
    try {
        reg = parse_reference_registration(xml);
    } catch (Error const& e) {
        status = 400;
        ReferenceRegistration bad;
        bad.encoding = answer_encoding(xml);
        return reference_registration_result(bad, "EKY0901", e.with_field(), x_.clock.stamp_jst());
    }
    if (reg.facility_code != c.facility_code) {
        status = 403;
        return reference_registration_result(reg, "EKY0901", another_facility.text(), x_.clock.stamp_jst());
    }
    try {
        int s = 0;
        inquiry_.register_reference_number(c, reg.request, s);
        status = 200;
        return reference_registration_result(reg, "", "", x_.clock.stamp_jst());
    } catch (Error const& e) {
        status = 200;  // the file was understood: the refusal is its result
        return reference_registration_result(reg, "EKY0001", e.with_field(), x_.clock.stamp_jst());
    }
}

std::string OqsDesk::reference_numbers(Caller const& c, std::string const& xml, int& status) {
    require_facility(c);
    ReferenceRegistrations regs;
    BulkUpload reply;  // the 01res shape
    try {
        regs = parse_reference_registrations(xml);
    } catch (Error const& e) {
        status = 400;
        return file_error_result(xml, "", "", e.with_field(), x_.clock.stamp_jst());
    }
    reply.encoding = regs.encoding;
    reply.facility_code = regs.facility_code;
    reply.file_identifier = regs.file_identifier;
    if (regs.facility_code != c.facility_code) {
        status = 403;
        return bulk_upload_result(reply, "", "EKY0901", another_facility.text(), x_.clock.stamp_jst());
    }
    // Registered at once, each item with its own result; the results come with the common 02req download.
    json job = transaction(x_.db, [&] {
        std::size_t next = 0;
        json j = batch_.upload(c, "訪問診療等", "", regs.file_identifier, "imm", [&](json& row) {
            if (next == regs.requests.size()) return false;
            row = regs.requests[next++];
            return true;
        });
        std::string rn = j["reception_number"];
        std::vector<std::int64_t> row_nos;
        std::vector<std::string> answers;
        for (auto const& request : regs.requests) {
            json result{{"echo", request["echo"]}, {"registration", false}};
            if (request.contains("malformed")) {
                result["error"] = request["malformed"];
            } else {
                try {
                    json body = request;
                    body.erase("echo");
                    int s = 0;
                    inquiry_.register_reference_number(c, body, s);
                    result["registration"] = true;
                } catch (Error const& e) {
                    result["error"] = e.with_field();
                }
            }
            row_nos.push_back(std::int64_t(row_nos.size()) + 1);
            answers.push_back(result.dump());
        }
        batch_.write_answers(rn, row_nos, answers);
        x_.db.query("UPDATE batch_jobs SET done = total, finished_at = $2 WHERE reception_number = $1", {rn, x_.now()});
        return j;
    });
    x_.events.batch_event({"finished", job["reception_number"], c.facility_code, job["total"].get<std::int64_t>()});
    status = 200;
    return bulk_upload_result(reply, job["reception_number"], "", "", x_.clock.stamp_jst());
}

}  // namespace kyotaku::server
