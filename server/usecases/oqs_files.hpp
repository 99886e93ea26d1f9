// The flows of the real system's file formats (OQS*.xml, Shift_JIS or UTF-8; interfaces.md §1): each request file is
// read by formats/oqs_xml, answered by the same desks as the JSON routes (so by the same decision path), and its
// result file written back in the request's encoding. The answer is the result file and, when the file itself was
// refused, the kind of refusal (an Error::Kind, as a thrown error would have: the edge answers it alike).
#pragma once

#include "core/error.hpp"
#include "usecases/context.hpp"

#include <optional>
#include <string>

namespace kyotaku::server {

class BatchDesk;
class InquiryDesk;

struct FileAnswer {
    std::string xml;                      // the result file, in the request's encoding
    std::optional<Error::Kind> refused;  // the file was refused (not well-formed, another facility's, too large); its
                                          // result says why. nullopt: understood (each row has its own result)
};

class OqsDesk {
public:
    OqsDesk(Context& x, BatchDesk& batch, InquiryDesk& inquiry) : x_(x), batch_(batch), inquiry_(inquiry) {}
    FileAnswer bulk_upload(Caller const& c, std::string const& xml);                  // OQSmuquc01req → 01res
    FileAnswer bulk_download(Caller const& c, std::string const& xml);                // OQSmuquc02req → 02res
    FileAnswer single(Caller const& c, std::string const& xml);                       // OQSsiquc01req → 01res
    FileAnswer reference_number(Caller const& c, std::string const& xml);             // OQSsiimm01req → 01res
    FileAnswer reference_numbers(Caller const& c, std::string const& xml);            // OQSmuimm01req → 01res
    FileAnswer consented_upload_home_care(Caller const& c, std::string const& xml);   // OQSmuhvq01req → 01res
    FileAnswer consented_upload_online(Caller const& c, std::string const& xml);      // OQSmuonq01req → 01res

private:
    FileAnswer consented_upload(Caller const& c, std::string const& xml, int expected_flag);
    Context& x_;
    BatchDesk& batch_;
    InquiryDesk& inquiry_;
};

}  // namespace kyotaku::server
