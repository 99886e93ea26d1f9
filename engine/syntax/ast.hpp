// The abstract syntax tree of a rule file: plain structs, position-tagged (Spirit X3, calc9 style).
// The tree keeps literals as their source text; the checker validates them so that a bad date is reported
// with its own line and column rather than as a syntax error. Operators, units, rounding policies, slot kinds and
// binding operators are tokens (enums), decided once by the grammar's symbol tables (calc9's x3::symbols<optoken>):
// the aliases a rule file may write (day / days / 日, か月 / ヶ月 / カ月 / month / months) are one value here, and
// the checker and the formatter switch over values instead of comparing spellings.
#pragma once

#include <boost/fusion/include/adapt_struct.hpp>
#include <boost/optional.hpp>
#include <boost/spirit/home/x3/support/ast/position_tagged.hpp>
#include <boost/spirit/home/x3/support/ast/variant.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kyotaku::ast {
namespace x3 = boost::spirit::x3;

// The binary operators, loosest first: or, and, comparisons, `..`, + -, *.
enum class BinaryOp : std::uint8_t { Or, And, Eq, Ne, Lt, Le, Gt, Ge, In, NotIn, Range, Add, Sub, Mul };
enum class UnaryOp : std::uint8_t { Not, Neg };
// The unit of `date + n days` / `+ n months`; None when the operation has no unit.
enum class Unit : std::uint8_t { None, Days, Months };
// The policy for a month addition whose day does not exist: `round clamp` (the month's last day) or `round up`
// (the 1st of the next month); None when not written.
enum class Rounding : std::uint8_t { None, Clamp, Up };
// `decision`, `let`, or `export let` (a let that programs ask for by name).
enum class SlotKind : std::uint8_t { Decision, Let, ExportLet };
// A test binding: `name = value` (equals) or `reason ~ "text"` (the text contains it).
enum class BindingOp : std::uint8_t { Equals, Contains };

// The canonical spelling of each token, as the formatter writes it and messages quote it.
constexpr std::string_view spelling(BinaryOp op) {
    constexpr std::string_view names[] = {"or", "and", "==",     "!=", "<", "<=", ">",
                                          ">=", "in",  "not in", "..", "+", "-",  "*"};
    return names[static_cast<int>(op)];
}
constexpr std::string_view spelling(UnaryOp op) { return op == UnaryOp::Not ? "not" : "-"; }
constexpr std::string_view spelling(Unit u) { return u == Unit::Days ? "days" : u == Unit::Months ? "months" : ""; }
constexpr std::string_view spelling(Rounding r) {
    return r == Rounding::Clamp ? "clamp" : r == Rounding::Up ? "up" : "";
}
constexpr std::string_view spelling(SlotKind k) {
    return k == SlotKind::Decision ? "decision" : k == SlotKind::Let ? "let" : "export let";
}
constexpr std::string_view spelling(BindingOp op) { return op == BindingOp::Equals ? "=" : "~"; }
// Comparisons (==, !=, <, <=, >, >=, in, not in, ..): what a clause condition's top level may be.
constexpr bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq && op <= BinaryOp::Range; }

struct Nil {};

struct Ident : x3::position_tagged {
    Ident(std::string n = "") : name(std::move(n)) {}
    std::string name;  // may be qualified: 施設区分.医科
};
struct Number : x3::position_tagged {
    Number(long long v = 0) : value(v) {}
    long long value;
};
// A date or month literal, kept as text: 2024-04-01, 令和6年4月1日, R6.4.1, 2024-06, 令和6年6月.
struct DateText : x3::position_tagged {
    DateText(std::string t = "") : text(std::move(t)) {}
    std::string text;
};
struct Text : x3::position_tagged {
    Text(std::string v = "") : value(std::move(v)) {}
    std::string value;
};

struct Call;
struct SetLit;
struct Unary;
struct Match;
struct IfExpr;
struct Expr;

struct Operand
    : x3::variant<Nil, DateText, Number, Text, x3::forward_ast<Call>, Ident, x3::forward_ast<SetLit>,
                  x3::forward_ast<Unary>, x3::forward_ast<Match>, x3::forward_ast<IfExpr>, x3::forward_ast<Expr>> {
    using base_type::base_type;
    using base_type::operator=;
};

// One binary step `op operand`, with the unit and rounding policy of `+ 3 months round up`.
struct Operation : x3::position_tagged {
    BinaryOp op = BinaryOp::Add;
    Operand operand;
    Unit unit = Unit::None;
    Rounding rounding = Rounding::None;
};

// A flat run of one precedence level: first (op operand)*; the checker folds it to the left.
struct Expr : x3::position_tagged {
    Operand first;
    std::vector<Operation> rest;
};

struct Call : x3::position_tagged {
    Ident function;
    std::vector<Expr> args;
};
struct SetLit : x3::position_tagged {
    char open = '{';  // keeps the struct from being a one-member sequence for X3 (its attribute would collapse)
    std::vector<Expr> items;
};
struct Unary : x3::position_tagged {
    UnaryOp op = UnaryOp::Not;
    Operand operand;
};
struct MatchArm : x3::position_tagged {
    std::vector<Ident> patterns;  // `_` matches the rest
    Expr value;
};
struct Match : x3::position_tagged {
    Expr subject;
    std::vector<MatchArm> arms;
};
struct IfExpr : x3::position_tagged {
    Expr condition, then_value, else_value;
};

struct TypeRef : x3::position_tagged {
    bool is_set = false;  // set<name>
    Ident name;
};

struct EnumDecl : x3::position_tagged {
    Ident name;
    std::vector<Ident> values;
};
struct FactDecl : x3::position_tagged {
    Ident name;
    boost::optional<Text> label;  // a Japanese name for people: fact query_date "照会日" : date
    TypeRef type;
    boost::optional<Expr> default_value;  // only when the rule file states a default
};
struct ParamDecl : x3::position_tagged {
    Ident name;
    boost::optional<TypeRef> type;
    Expr value;
};
struct AsofDecl : x3::position_tagged {
    char keyword = 'a';  // keeps the struct from being a one-member sequence for X3, as SetLit::open
    Ident fact;
};
struct Clause : x3::position_tagged {
    boost::optional<Expr> condition;  // none: otherwise
    Expr value;
    boost::optional<Text> because;
};
struct Version : x3::position_tagged {
    boost::optional<Text> label;
    boost::optional<DateText> from;
    boost::optional<DateText> until;
    std::vector<Clause> clauses;
};
struct SlotDecl : x3::position_tagged {
    SlotKind kind = SlotKind::Let;
    Ident name;
    boost::optional<Text> label;  // a Japanese name for people: decision reinquiry_allowed "再照会できるか" : bool
    boost::optional<TypeRef> type;
    std::vector<Version> versions;  // a body without versions is one unlabelled version
};
struct Binding : x3::position_tagged {
    Ident name;
    BindingOp op = BindingOp::Equals;
    Expr value;
};
struct FixtureDecl : x3::position_tagged {
    Ident name;
    std::vector<Binding> facts;
};
struct TestDecl : x3::position_tagged {
    Text name;
    boost::optional<Ident> uses;
    std::vector<Binding> given;
    std::vector<Binding> expect;
};

// `invariant NAME "label": EXPR` or `invariant NAME: A implies B`: a property of the rules that kyotaku prove
// shows true for every input (a bool expression over facts, params, lets and decisions). `assume NAME: EXPR` has the
// same form: what a realistic case satisfies (kyotaku diff --corpus realistic generates only such cases).
enum class PropertyKind : std::uint8_t { Invariant, Assumption };
struct InvariantDecl : x3::position_tagged {
    PropertyKind kind = PropertyKind::Invariant;
    Ident name;
    boost::optional<Text> label;
    Expr condition;
    boost::optional<Expr> consequence;  // `condition implies consequence`; none: the condition itself must hold
};
// `horizon 2030-12-31`: the last day kyotaku prove covers.
struct HorizonDecl : x3::position_tagged {
    char keyword = 'h';  // keeps the struct from being a one-member sequence for X3, as AsofDecl::keyword
    DateText date;
};

struct Decl : x3::variant<EnumDecl, FactDecl, ParamDecl, AsofDecl, SlotDecl, FixtureDecl, TestDecl, InvariantDecl,
                          HorizonDecl> {
    using base_type::base_type;
    using base_type::operator=;
};

using File = std::vector<Decl>;

}  // namespace kyotaku::ast

BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Ident, name)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Number, value)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::DateText, text)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Text, value)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Operation, op, operand, unit, rounding)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Expr, first, rest)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Call, function, args)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::SetLit, open, items)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Unary, op, operand)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::MatchArm, patterns, value)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Match, subject, arms)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::IfExpr, condition, then_value, else_value)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::TypeRef, is_set, name)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::EnumDecl, name, values)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::FactDecl, name, label, type, default_value)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::ParamDecl, name, type, value)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::AsofDecl, keyword, fact)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Clause, condition, value, because)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Version, label, from, until, clauses)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::SlotDecl, kind, name, label, type, versions)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::Binding, name, op, value)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::FixtureDecl, name, facts)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::TestDecl, name, uses, given, expect)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::InvariantDecl, kind, name, label, condition, consequence)
BOOST_FUSION_ADAPT_STRUCT(kyotaku::ast::HorizonDecl, keyword, date)
