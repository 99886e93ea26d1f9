// The reference verification system's operations, independent of HTTP. Every allow/deny comes from the
// compiled rule set, never from C++ conditions; every operation is scoped to the calling facility.
#pragma once

#include "database.hpp"

#include <vector>
#include "kyotaku/engine.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <string>

namespace kyotaku::server {

using json = nlohmann::json;

// Who is calling, from the TLS client certificate.
struct Caller {
    // mobile: a モバイル端末 session of the consent page, known only by the facility URL's token (header
    // X-Kyotaku-Url-Token, no certificate). Weaker than an office terminal: it can never reach medical information.
    enum class Kind { anonymous, admin, facility, mobile } kind = Kind::anonymous;
    std::string facility_code;  // for Kind::facility and Kind::mobile
    std::string subject;        // the certificate subject, for audit
};

// A client's mistake: answered with this status and a JSON body naming the field.
struct ClientError : std::runtime_error {
    ClientError(int status, std::string field, std::string message)
        : std::runtime_error(message), status(status), field(std::move(field)) {}
    int status;
    std::string field;
};

struct BatchPrefetch;

class Service {
public:
    Service(Database& db, std::shared_ptr<Program const> rules);

    // The facility a certificate names, if it is registered.
    bool facility_exists(std::string const& code);

    // Test-data set-up (テスト用データセットアップ) and administration: admin callers only.
    json create_facility(Caller const& c, json const& body);
    json add_insured_person(Caller const& c, json const& body);
    json add_consent(Caller const& c, json const& body);
    json list_consents(Caller const& c, std::string const& facility_code);

    // 環境設定 of the calling facility, and its audit trail.
    json get_settings(Caller const& c);
    json put_settings(Caller const& c, json const& body);
    json settings_audit(Caller const& c);

    // レセプト審査結果 CSV: facility_code,insurer_number,symbol,number,branch,birthdate,month,reviewed_on
    json import_claim_reviews(Caller const& c, std::string const& csv);

    // 再照会 (individual): 診療区分, 保険者番号, 記号・番号, 枝番, 生年月日, 資格確認日.
    json reinquiry(Caller const& c, json const& body);

    // Medical information (test data set-up, and the viewing gate decided by medical_info_viewable).
    json add_medical_record(Caller const& c, json const& body);
    json view_medical_info(Caller const& c, json const& body);
    json viewing_history(Caller const& c, std::string const& from, std::string const& to);

    // 同意取消照会: look the person up (to confirm), then withdraw this facility's consents.
    json withdrawal_lookup(Caller const& c, json const& body);
    json withdraw(Caller const& c, json const& body);

    // 医療機関別URL取得・変更, its QR code, and the server's URL keys.
    void set_public_url(std::string base) { public_url_ = std::move(base); }
    json facility_url(Caller const& c);
    json change_facility_url(Caller const& c);
    std::string facility_url_text(Caller const& c);
    json rotate_url_key(Caller const& c);
    // The facility a consent-page token names; nullopt (with the reason) for an unknown, tampered or revoked one.
    struct TokenCheck {
        std::optional<std::string> facility_code;
        std::string facility_name, reason;
    };
    TokenCheck check_url_token(std::string const& token);

    // Consent registration by the consent page (マイナ在宅受付Web), reached with the facility URL's token:
    // a one-time challenge, then the card's certificate and signature over it. 目視確認 needs a one-time passcode
    // that an office terminal of the facility obtained (interfaces.md §3, documented as a model).
    void set_card_ca(std::string pem_file) { card_ca_ = std::move(pem_file); }
    // What the consent page needs to know about the facility behind a URL token: name, kind, the two 環境設定
    // switches, the server's date (the page has no clock of its own for policy).
    json consent_page(std::string const& token);
    // The rules this server runs, as a bundle for the page's WebAssembly engine (made once).
    std::string const& rules_bundle();
    json issue_challenge(json const& body);
    json register_consent(json const& body, int& status);
    json visual_passcode(Caller const& c);
    json register_card(Caller const& c, json const& body);

    // 資格確認一括照会 (batch re-inquiry): upload → reception number → poll → download.
    // CSV: arbitrary_identifier,insurer_number,symbol,number,branch,birthdate (header line optional).
    json upload_batch(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                      std::string const& csv);
    // The same from a stream (the HTTP layer spools a large upload to a file and reads it from there).
    json upload_batch(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                      std::istream& csv);
    json upload_batch_rows(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                           std::string const& format, std::vector<json> const& rows);
    // The same, pulling rows one at a time (`next` returns false at the end): nothing is held whole.
    json upload_batch_stream(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                             std::string const& format, std::function<bool(json&)> const& next, bool allow_empty = false);
    json batch_status(Caller const& c, std::string const& reception_number);
    // The same flow in the real file format: OQSmuquc01req → 01res, OQSmuquc02req → 02res (Shift_JIS or UTF-8).
    std::string oqs_bulk_upload(Caller const& c, std::string const& xml, int& status);
    std::string oqs_bulk_download(Caller const& c, std::string const& xml, int& status);
    std::string oqs_single(Caller const& c, std::string const& xml, int& status);  // OQSsiquc01req → 01res
    std::string oqs_reference_number(Caller const& c, std::string const& xml, int& status);  // OQSsiimm01req → 01res
    std::string oqs_reference_numbers(Caller const& c, std::string const& xml, int& status);  // OQSmuimm01req → 01res
    // OQSmuhvq01req / OQSmuonq01req → 01res with a reception number; the results come with OQSmu…02req.
    std::string oqs_consented_upload(Caller const& c, std::string const& xml, int& status);
    // The results in row order as JSON Lines, one object per uploaded row.
    std::string batch_results(Caller const& c, std::string const& reception_number);
    // The same, page by page (NDJSON lines of up to `page_rows` rows per call; empty when done), so that a
    // 100,000-row result is never held whole. Checks the caller and the job's state before the first page.
    std::function<std::string()> batch_results_pages(Caller const& c, std::string const& reception_number, int page_rows = 2000);
    // Answers up to `max_rows` pending rows of the oldest unfinished job, for at most `max_ms` (the background
    // worker calls this); returns how many rows it answered. Each call is one transaction: a crash repeats a
    // chunk, never half of it. Large chunks pay one fsync for many rows; the time bound keeps the connection
    // free for individual requests.
    int process_batches(int max_rows = 5000, int max_ms = 100);

    // Called when a batch job changes state ("accepted", "finished"), for the server's log (issue 12).
    void on_batch_event(std::function<void(json const&)> hook) { batch_event_ = std::move(hook); }

    // Interactive requests go before the batch worker: while one is being handled, a chunk ends early (after
    // at least 50 rows) and the worker waits for the requests to finish.
    void request_begin() { ++interactive_; }
    void request_end() { --interactive_; }
    bool requests_waiting() const { return interactive_.load() > 0; }

    // 照会番号登録 (single) and 一括登録 (CSV: reference_number,insurer_number,symbol,number,branch,birthdate).
    json register_reference_number(Caller const& c, json const& body, int& status);
    json register_reference_numbers_csv(Caller const& c, std::string const& csv);

    // 台帳 (device ledger) and the mobile-device checklist (別添2).
    json add_device(Caller const& c, json const& body);
    json list_devices(Caller const& c);
    json add_device_check(Caller const& c, std::string const& device_id, json const& body);
    json device_checks(Caller const& c, std::string const& device_id);

    // A fallback verification (マイナポータル 資格情報 screen / 資格情報のお知らせ + card), recorded with its method.
    json record_fallback_verification(Caller const& c, json const& body);

    // 資格確認履歴照会 of the calling facility.
    json inquiry_history(Caller const& c, std::string const& from, std::string const& to);

private:
    Database& db_;
    std::shared_ptr<Program const> rules_;
    std::string public_url_ = "https://127.0.0.1:8443";
    std::string card_ca_;
    std::once_flag bundle_once_;
    std::string bundle_;
    std::atomic<int> interactive_{0};
    std::function<void(json const&)> batch_event_;
    void batch_event(char const* state, std::string const& reception, std::string const& facility, std::int64_t rows = -1) {
        if (!batch_event_) return;
        json e{{"state", state}, {"reception_number", reception}, {"facility", facility}};
        if (rows >= 0) e["rows"] = rows;
        batch_event_(e);
    }
    std::string facility_of_token(json const& body);
    std::map<std::string, std::string> category_by_kind_;  // 分類 of each visit kind, evaluated once from the rules
    std::string category(std::string const& visit_kind) const;
    Evaluator& evaluator();                               // one per thread, reused
    // Loads what a batch chunk needs about its persons with one query per table (see service.cpp).
    std::optional<std::string> oqs_request(Caller const& c, std::string const& xml, struct BulkUpload& up, int& status, bool single);
    BatchPrefetch load_prefetch(std::string const& facility, std::string const& query_date, std::vector<Row> const& rows);
    // One re-inquiry (individual or a batch row); `log` writes it to 資格確認履歴.
    json reinquire(Caller const& c, std::string const& category, json const& who, std::string const& query_date, bool log);
    std::pair<std::uint32_t, std::vector<unsigned char>> current_url_key();
    std::string facility_kind(std::string const& code);
    // The person a request identifies by 保険者番号, 記号・番号, 枝番 and 生年月日 (any period), or "".
    std::string find_person(json const& body);
    // This facility's latest consent for the person in the 分類, or null.
    json latest_consent(std::string const& facility, std::string const& person, std::string const& category);
    // Fills the facts the rule set needs about this facility, person and consent.
    void fill_facts(Activation& facts, Caller const& c, std::string const& person, json const& consent, std::string const& category,
                    std::string const& query_date);
};

// A random 128-bit id as hex (OpenSSL's RAND_bytes).
std::string new_id();
// Current UTC time as ISO 8601 with microseconds (YYYY-MM-DDTHH:MM:SS.ffffffZ).
std::string now_iso();
std::string today_iso();  // YYYY-MM-DD in Japan (JST)

}  // namespace kyotaku::server
