-- Issue 9: eligibility carries its card classification, person/family and, when it ended, the reason of loss as
-- the OQS layouts do (InsuredCardClassification, PersonalFamilyClassification, ReasonOfLoss). valid_to is the last
-- day the insurance was valid (DisqualificationDate is the day after).
ALTER TABLE insured_persons ADD COLUMN card_classification TEXT NOT NULL DEFAULT '01';
ALTER TABLE insured_persons ADD COLUMN personal_family TEXT NOT NULL DEFAULT '1';
ALTER TABLE insured_persons ADD COLUMN loss_reason TEXT;
-- consents.continuing_home_care is no longer written: whether a single visit (往診) falls in a continuing
-- relationship is derived from the facility's own consents and claims when a decision is made (decision.hpp).
