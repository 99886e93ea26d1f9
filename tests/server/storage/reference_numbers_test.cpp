// storage/reference_numbers: a facility's 照会番号 and the consenting persons a 照会番号登録 row may name.
#include "../database_fixture.hpp"
#include "storage/consent_registry.hpp"
#include "storage/facility_registry.hpp"
#include "storage/insurer_data.hpp"
#include "storage/reference_numbers.hpp"

#include <gtest/gtest.h>

using namespace kyotaku::server;

namespace {
ConsentRow consent(std::string id, std::string facility, std::string person) {
    return {std::move(id), std::move(facility), std::move(person), "訪問診療", "2024-07-01", "暗証番号", "",
            std::nullopt,  "2024-07-01T00:00:00Z"};
}
}  // namespace

TEST(ReferenceNumbers, ANumberNamesItsHolderAtItsFacilityOnly) {
    auto db = database_with_facilities();
    ReferenceNumbers numbers(*db);
    EXPECT_FALSE(numbers.holder("0110113719", "R-1"));
    numbers.add("0110113719", "R-1", "p1", "2024-07-01T00:00:00Z");
    numbers.add("2714206386", "R-1", "p2", "2024-07-01T00:00:00Z");
    EXPECT_EQ(numbers.holder("0110113719", "R-1"), "p1");
    EXPECT_EQ(numbers.holder("2714206386", "R-1"), "p2") << "the same number at another facility is another's";
    EXPECT_FALSE(numbers.holder("0110113719", "R-2"));
    EXPECT_THROW(numbers.add("0110113719", "R-1", "p3", "2024-07-02T00:00:00Z"), DatabaseError)
        << "a number is unique within its facility";
    EXPECT_EQ(numbers.holder("0110113719", "R-1"), "p1");
}

TEST(ReferenceNumbers, ConsentingPersonsAreThoseWithAnOpenConsentWhateverTheirBirthdate) {
    auto db = database_with_facilities();
    InsurerData insurer(*db);
    insurer.add_period("e1", "p1", insurance_period("100", "1950-01-01"));
    // a second period of the same card: one person
    insurer.add_period("e2", "p1", insurance_period("100", "1950-01-01"));
    insurer.add_period("e3", "p2", insurance_period("100", "1960-02-02"));  // the same card fields, another birthdate
    insurer.add_period("e4", "p3", insurance_period("100", "1970-03-03"));  // no consent at this facility
    insurer.add_period("e5", "p4", insurance_period("200", "1950-01-01"));  // another number
    ConsentRegistry consents(*db);
    consents.add(consent("c1", "0110113719", "p1"));
    consents.add(consent("c2", "0110113719", "p2"));
    consents.add(consent("c3", "2714206386", "p3"));
    consents.add(consent("c4", "0110113719", "p4"));
    auto persons = ReferenceNumbers(*db).consenting_persons("0110113719", "06139995", "123", "100", "01");
    std::sort(persons.begin(), persons.end());
    EXPECT_EQ(persons, (std::vector<std::string>{"p1", "p2"}));
    consents.withdraw("0110113719", "p2", "2024-07-02T00:00:00Z", "CN=端末1");
    EXPECT_EQ(ReferenceNumbers(*db).consenting_persons("0110113719", "06139995", "123", "100", "01"),
              (std::vector<std::string>{"p1"}))
        << "a withdrawn consent names no one";
    EXPECT_TRUE(ReferenceNumbers(*db).consenting_persons("0110113719", "06139995", "123", "100", "02").empty());
}
