// The codecs of a batch's rows (formats/batch_rows.hpp, formats/batch_csv.hpp): the compact stored answer reads
// back what was written, field for field; answers stored as JSON by earlier versions still read; a damaged stored
// answer is refused, never read as something else; the JSON of an answer is the one the NDJSON route has always
// shown; a row's stored request reads back typed; the CSV codec makes one row per line.
#include "formats/batch_csv.hpp"
#include "formats/batch_rows.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>

using namespace kyotaku;
using namespace kyotaku::server;

namespace {

EligibilityAnswer allowed_answer() {
    EligibilityAnswer a;
    a.allowed = true;
    a.reason = Message{"継続的な関係があります (30_reinquiry.rules:63)", ""};
    a.basis = ConsentRecord{};
    a.basis->id = "never-stored";
    a.basis->visit_kind = "訪問診療";
    a.basis->first_visit = "2024-04-15";
    a.window_end = "2024-07-31";
    a.qualification_validity = 1;
    EligibilityRecord e;
    e.insurer = "06132013";
    e.symbol = "123";
    e.number = "4567";
    e.branch = "01";
    e.birthdate = "1940-05-01";
    e.name = "在宅 花子";
    e.name_kana = "ザイタク ハナコ";
    e.burden_ratio = "010";
    e.valid_from = "2024-04-01";
    e.valid_to = "2024-09-30";
    e.loss_reason = "03";
    a.eligibility = e;
    a.reference_numbers = std::vector<std::string>{"R-1", "R:2-", ""};
    a.query_date = "2024-07-01";
    return a;
}

// Every field of an answer, as text to compare (the consent's id is never stored).
std::string describe(BatchRowAnswer const& a) {
    std::string out;
    auto opt = [&](char const* name, std::optional<std::string> const& v) {
        out += std::string(name) + "=" + (v ? "[" + *v + "]" : "-") + " ";
    };
    if (a.answer) {
        auto const& e = *a.answer;
        out += "answer allowed=" + std::to_string(e.allowed) +
               " validity=" + (e.qualification_validity ? std::to_string(*e.qualification_validity) : "-") +
               " reason=[" + e.reason.ja + "|" + e.reason.en + "] ";
        if (e.basis) out += "basis=[" + e.basis->visit_kind + " " + e.basis->first_visit + "] ";
        opt("window_end", e.window_end);
        if (e.eligibility) {
            auto const& r = *e.eligibility;
            out += "eligibility=[" + r.insurer + " " + r.symbol + " " + r.number + " " + r.branch + " " + r.birthdate +
                   " " + r.name + " " + r.name_kana + " " + r.burden_ratio + " " + r.valid_from + " " +
                   r.valid_to.value_or("-") + " " + r.card_classification + " " + r.personal_family + " " +
                   r.loss_reason.value_or("-") + "] ";
        }
        if (e.reference_numbers) {
            out += "refs=";
            for (auto const& n : *e.reference_numbers) out += "[" + n + "]";
            out += " ";
        }
        opt("query_date", e.query_date);
    }
    opt("error", a.error);
    opt("field", a.field);
    out += "registration=" + (a.registration ? std::to_string(*a.registration) : std::string("-")) + " ";
    opt("arbitrary_identifier", a.arbitrary_identifier);
    if (a.echo) {
        out += "echo=";
        for (auto const& [n, v] : *a.echo) out += "[" + n + ":" + v + "]";
        out += " ";
    }
    opt("consent_date", a.consent_date);
    return out;
}

std::vector<BatchRowAnswer> samples() {
    std::vector<BatchRowAnswer> out;
    BatchRowAnswer asked;
    asked.answer = allowed_answer();
    asked.arbitrary_identifier = "患者 1,\"2\"\n";
    asked.echo = Echo{{"InsurerNumber", "06132013"}, {"Birthdate", ""}, {"ArbitraryIdentifier", "-1:-"}};
    out.push_back(asked);
    BatchRowAnswer refused;
    refused.answer = EligibilityAnswer{};
    refused.answer->reason = Message{"同意がありません", "no consent of this facility"};
    refused.arbitrary_identifier = "";
    out.push_back(refused);
    BatchRowAnswer error;
    error.error = "保険者番号が正しくありません / insurer_number is not valid";
    error.field = "";
    error.arbitrary_identifier = "p2";
    out.push_back(error);
    BatchRowAnswer malformed;
    malformed.error =
        "6列 (arbitrary_identifier,insurer_number,symbol,number,branch,birthdate) が必要です / expected 6 columns";
    out.push_back(malformed);
    BatchRowAnswer registered;
    registered.registration = true;
    registered.echo = Echo{};
    out.push_back(registered);
    BatchRowAnswer not_registered;
    not_registered.registration = false;
    not_registered.error = "登録済みです (reference_number)";
    not_registered.echo = Echo{{"ReferenceNumber", "R-1"}};
    out.push_back(not_registered);
    BatchRowAnswer consented;
    consented.answer = allowed_answer();
    consented.answer->eligibility->valid_to.reset();
    consented.answer->eligibility->loss_reason.reset();
    consented.answer->reference_numbers = std::vector<std::string>{};
    consented.consent_date = "2024-06-10";
    consented.echo = Echo{{"ConsentDate", "20240610"}, {"VisitKind", "訪問診療"}};
    out.push_back(consented);
    return out;
}

}  // namespace

TEST(StoredAnswer, ReadsBackEveryFieldItWrote) {
    for (auto const& a : samples()) {
        std::string const stored = stored_answer(a);
        EXPECT_NE(stored.front(), '{') << stored;  // not JSON: read as this form, not as an earlier version's
        EXPECT_EQ(describe(stored_answer_of(stored)), describe(a)) << stored;
    }
}

TEST(StoredAnswer, WritesTheSameJsonAsTheAnswerItStores) {
    for (auto const& a : samples())
        EXPECT_EQ(batch_answer_json(stored_answer_of(stored_answer(a))).dump(), batch_answer_json(a).dump());
}

// The lines of the NDJSON route, as earlier versions wrote them (their stored JSON with the row): the typed answer's
// JSON is the same, byte for byte, and an earlier version's stored JSON reads back as the same answer.
TEST(StoredAnswer, JsonOfEarlierVersionsReadsBackAndIsWrittenAlike) {
    std::string const earlier[] = {
        R"({"allowed":false,"arbitrary_identifier":"p1","qualification_validity":null,"reason":"同意がありません",)"
        R"("reason_en":"no consent","processing_result_status":1})",
        R"({"arbitrary_identifier":"p2","error":"番号がありません / number is empty","field":"number",)"
        R"("processing_result_status":2})",
        R"({"error":"6列 (arbitrary_identifier,insurer_number,symbol,number,branch,birthdate) が必要です / expected 6 )"
        R"(columns","processing_result_status":2})",
        R"({"echo":[["ReferenceNumber","R-1"]],"registration":false,"error":"x"})",
        R"({"allowed":true,"consent_date":"2024-06-10","echo":[["ConsentDate","20240610"],["VisitKind","訪問診療"]],)"
        R"("eligibility":{"birthdate":"1940-05-01","branch":"01","burden_ratio":"010","card_classification":"01",)"
        R"("insurer_number":"06132013","name":"在宅 花子","name_kana":"ザイタク ハナコ","number":"4567",)"
        R"("personal_family":"1","symbol":"123","valid_from":"2024-04-01","valid_to":null},"first_visit":"2024-06-10",)"
        R"("processing_result_status":1,"qualification_validity":1,"query_date":"2024-07-01","reason":"r",)"
        R"("reference_numbers":["R-1"],"visit_kind":"訪問診療","window_end":"2024-09-30"})",
    };
    for (auto const& text : earlier) {
        auto const answer = stored_answer_of(text);
        EXPECT_EQ(batch_answer_json(answer), nlohmann::json::parse(text)) << text;
        EXPECT_EQ(describe(stored_answer_of(stored_answer(answer))), describe(answer)) << text;
    }
}

TEST(StoredAnswer, TheJsonOfAnAnsweredRowIsTheRoutesLine) {
    BatchRowAnswer a = samples()[0];
    EXPECT_EQ(
        batch_answer_json(a).dump(),
        R"x({"allowed":true,"arbitrary_identifier":"患者 1,\"2\"\n","echo":[["InsurerNumber","06132013"],)x"
        R"x(["Birthdate",""],["ArbitraryIdentifier","-1:-"]],)x"
        R"x("eligibility":{"birthdate":"1940-05-01","branch":"01","burden_ratio":"010","card_classification":"01",)x"
        R"x("disqualification_date":"2024-10-01",)x"
        R"x("insurer_number":"06132013","loss_reason":"03","name":"在宅 花子","name_kana":"ザイタク ハナコ",)x"
        R"x("number":"4567","personal_family":"1",)x"
        R"x("symbol":"123","valid_from":"2024-04-01","valid_to":"2024-09-30"},"first_visit":"2024-04-15",)x"
        R"x("processing_result_status":1,)x"
        R"x("qualification_validity":1,"query_date":"2024-07-01","reason":"継続的な関係があります )x"
        R"x((30_reinquiry.rules:63)","reference_numbers":["R-1","R:2-",""],)x"
        R"x("visit_kind":"訪問診療","window_end":"2024-07-31"})x");
    EXPECT_EQ(
        batch_answer_json(samples()[2]).dump(),
        R"({"arbitrary_identifier":"p2","error":"保険者番号が正しくありません / insurer_number is not valid",)"
        R"("field":"","processing_result_status":2})");
}

TEST(StoredAnswer, ADamagedAnswerIsRefusedNotMisread) {
    std::string const good = stored_answer(samples()[0]);
    for (std::string const& bad :
         {std::string(), std::string("K1"), std::string("K2") + good.substr(2), good.substr(0, good.size() - 1),
          good + "-", std::string("K11:x"), std::string("K11:a1:1-999999999999:x"), std::string("{not json"),
          std::string("K11:e5:ab")})
        EXPECT_THROW(stored_answer_of(bad), std::runtime_error) << bad;
}

TEST(StoredRequest, EveryKindOfRowReadsBackTyped) {
    std::vector<BatchRow> const rows = {
        RowQuery{CardFields{"06132013", "", "4567", "01", "1940-05-01"}, "p1", std::nullopt},
        RowQuery{CardFields{"06132013", "123", "4567", "01", "19400501x"}, "",
                 Echo{{"InsurerNumber", "06132013"}, {"Birthdate", "19400501x"}}},
        RowUnread{"a,b,c", std::nullopt, std::nullopt},
        RowUnread{"U+202E は使えません / U+202E is refused", "arbitrary_identifier", std::nullopt},
        RowUnread{"Birthdate は yyyyMMdd です", std::nullopt, Echo{{"ReferenceNumber", "R"}}},
        RowConsented{"P1", "2024-06-10", "往診"},
        RowRegistration{"R-1", CardFields{"06132013", "123", "4567", "01", std::nullopt},
                        Echo{{"ReferenceNumber", "R-1"}}},
    };
    for (auto const& row : rows) EXPECT_TRUE(stored_request_of(stored_request(row)) == row) << stored_request(row);
    // What earlier versions stored reads the same way; a text that is no row is an unread row (its own error).
    EXPECT_TRUE(
        stored_request_of(
            R"({"arbitrary_identifier":"p1","birthdate":"1940-05-01","branch":"01","insurer_number":"06132013",)"
            R"("number":"4567","symbol":"123"})") ==
        BatchRow(RowQuery{CardFields{"06132013", "123", "4567", "01", "1940-05-01"}, "p1", std::nullopt}));
    EXPECT_TRUE(std::holds_alternative<RowUnread>(stored_request_of("not json")));
    EXPECT_TRUE(std::holds_alternative<RowUnread>(stored_request_of("[1]")));
    // Each kind as earlier versions stored it (a JSON object).
    EXPECT_TRUE(stored_request_of(R"({"malformed":"a,b,c"})") ==
                BatchRow(RowUnread{"a,b,c", std::nullopt, std::nullopt}));
    EXPECT_TRUE(stored_request_of(R"({"consent_date":"2024-06-10","person_key":"P1","visit_kind":"往診"})") ==
                BatchRow(RowConsented{"P1", "2024-06-10", "往診"}));
    EXPECT_TRUE(stored_request_of(R"({"echo":[["ReferenceNumber","R-1"]],"reference_number":"R-1","symbol":"123"})") ==
                BatchRow(RowRegistration{"R-1", CardFields{std::nullopt, "123", std::nullopt, std::nullopt,
                                                           std::nullopt},
                                         Echo{{"ReferenceNumber", "R-1"}}}));
}

TEST(StoredRequest, IsCompactAndADamagedOneIsAnUnreadRow) {
    BatchRow const row = RowQuery{CardFields{"06132013", "123", "4567", "01", "1940-05-01"}, "row12345", std::nullopt};
    std::string const stored = stored_request(row);
    EXPECT_EQ(stored, "K11:q8:061320133:1234:45672:0110:1940-05-018:row12345-");
    // Cut short, a length beyond the text, a count beyond it, an unknown kind, bytes left over: an unread row (its
    // own error), never another patient's row and never an exception out of the worker.
    for (std::string const bad : {stored.substr(0, stored.size() - 1), std::string("K11:q8:0613201"),
                                  std::string("K11:q-----8:row123459999999:"), std::string("K11:x"), stored + "-",
                                  std::string("K1"), std::string("K11:u1:a-1:")})
        EXPECT_TRUE(stored_request_of(bad) == BatchRow(RowUnread{std::string(), std::nullopt, std::nullopt})) << bad;
}

TEST(CsvRows, OneRowPerLineAndABadLineIsItsOwnRow) {
    std::istringstream in("arbitrary_identifier,insurer_number,symbol,number,branch,birthdate\r\np1,06132013,123,4567,"
                          "01,1940-05-01\r\n\na,b\n"
                          "p\xE2\x80\xAE,06132013,123,4567,01,1940-05-01\nlast,1,2,3,4,5");
    CsvRows csv(in);
    std::vector<BatchRow> rows;
    for (BatchRow row; csv.next(row);) rows.push_back(row);
    ASSERT_EQ(rows.size(), 4u);
    EXPECT_TRUE(rows[0] ==
                BatchRow(RowQuery{CardFields{"06132013", "123", "4567", "01", "1940-05-01"}, "p1", std::nullopt}));
    EXPECT_TRUE(rows[1] == BatchRow(RowUnread{"a,b", std::nullopt, std::nullopt}));
    auto const& refused = std::get<RowUnread>(rows[2]);
    EXPECT_EQ(refused.field, "arbitrary_identifier");
    EXPECT_NE(refused.text.find("U+202E"), std::string::npos) << refused.text;
    EXPECT_TRUE(rows[3] == BatchRow(RowQuery{CardFields{"1", "2", "3", "4", "5"}, "last", std::nullopt}));
}

TEST(CsvRows, ALongOrBrokenLineRefusesTheFileNamingIt) {
    std::istringstream longer("p1,06132013,123,4567,01,1940-05-01\n" + std::string(1025, 'x') + "\n");
    CsvRows a(longer);
    BatchRow row;
    EXPECT_TRUE(a.next(row));
    try {
        a.next(row);
        ADD_FAILURE() << "a line of 1025 bytes was taken";
    } catch (Error const& e) {
        EXPECT_EQ(e.field, "line 2");
    }
    std::istringstream broken("p1,\xFF,123,4567,01,1940-05-01\n");
    CsvRows b(broken);
    try {
        b.next(row);
        ADD_FAILURE() << "a line that is not UTF-8 was taken";
    } catch (Error const& e) {
        EXPECT_EQ(e.field, "line 1");
    }
}
